"""Command-line commands of ``pumpops.pipeline``: ``train``, ``pipeline show-config``, ``pipeline calibrate``.

May import: typer, rich, ``pumpops._cli_support``, ``pumpops.errors`` and this package.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pumpops._cli_support import settings_from
from pumpops.errors import ConfigError

if TYPE_CHECKING:
    from pumpops.pipeline._run import RunResult

pipeline_app = typer.Typer(
    help="Training pipelines: inspect a pipeline.toml, calibrate a new pump.", no_args_is_help=True
)

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="The pipeline file (pipeline.toml).", exists=False, dir_okay=False),
]


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root ``pumpops`` command."""
    app.command("train")(train)
    app.add_typer(pipeline_app, name="pipeline")


def train(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    config: ConfigOption,
    no_cache: bool = typer.Option(False, "--no-cache", help="Recompute every step (replace cached results)."),
    tracking_uri: str | None = typer.Option(
        None,
        "--tracking-uri",
        help="MLflow tracking URI (default: $PUMPOPS_MLFLOW_URI, output.tracking_uri, "
        "or sqlite:///<workspace>/mlflow.db).",
        show_default=False,
    ),
    db: str | None = typer.Option(
        None, "--db", help="Store URL for a store source (default: workspace settings).", show_default=False
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
    actor: str | None = typer.Option(
        None,
        "--actor",
        help="Who runs it, for the audit trail (default: settings' actor).",
        show_default=False,
    ),
    register_model: bool = typer.Option(
        True, "--register/--no-register", help="Register the logged model as an MLflow model version."
    ),
) -> None:
    """Run a training pipeline: snapshot, features, fit, calibrate, evaluate, export ONNX, log to MLflow.

    The dataset snapshot and the run are recorded in the workspace's audit trail,
    and the model is registered as a model version of its group (`pumpops models`).
    """
    from pumpops.audit._cli import resolve_actor
    from pumpops.pipeline._config import load_config
    from pumpops.pipeline._run import run_pipeline

    cfg = load_config(config)
    settings = settings_from(ctx, database_url=db)
    who = resolve_actor(settings, actor)
    result = run_pipeline(
        cfg,
        workspace=settings.workspace,
        database_url=settings.resolved_database_url,
        use_cache=not no_cache,
        tracking_uri=tracking_uri,
    )
    _audit_run(settings.resolved_database_url, who, config, result)
    model_ref = None
    if register_model and result.run_id is not None:
        from pumpops.registry._cli import _registry

        with _registry(ctx, tracking_uri=tracking_uri, db=db, broker=None) as (registry, _):
            model_ref = registry.register(result, actor=who).ref
    summary = {
        "run_id": result.run_id,
        "dataset_digest": result.dataset_digest,
        "config_hash": result.config_hash,
        "onnx": str(result.onnx_path),
        "onnx_sha256": result.onnx_sha256,
        "model_dir": str(result.model_dir),
        "devices": len(result.devices),
        "skipped_devices": result.skipped_devices,
        "steps": dict(result.steps),
        "metrics": {k: (v if math.isfinite(v) else None) for k, v in sorted(result.metrics.items())},
        "model": model_ref,
    }
    if as_json:
        typer.echo(json.dumps(summary, sort_keys=True))
        return
    # Plain "key: value" lines: hashes and paths stay whole for copying and grep.
    lines = [
        f"run id:          {result.run_id or '(not logged)'}",
        f"model version:   {model_ref or '(not registered)'}",
        f"dataset digest:  {result.dataset_digest}",
        f"config hash:     {result.config_hash}",
        f"onnx:            {result.onnx_path}",
        f"onnx sha256:     {result.onnx_sha256}",
        f"devices:         {len(result.devices)} calibrated"
        + (
            f", skipped (too little normal data): {', '.join(result.skipped_devices)}"
            if result.skipped_devices
            else ""
        ),
        "steps:           " + ", ".join(f"{step} {how}" for step, how in result.steps),
    ]
    for key in ("f1", "far", "mar", "events", "events_missed", "mean_delay_s", "alarm_rate", "test_rows"):
        if key in result.metrics:
            lines.append(f"{key + ':':<17}{_number(result.metrics[key])}")
    typer.echo("\n".join(lines))


def _audit_run(database_url: str, actor: str, config: Path, result: RunResult) -> None:
    """Append the dataset snapshot and the training run to the audit trail."""
    from pumpops.store import open_store

    how = dict(result.steps).get("snapshot", "unknown")
    with open_store(database_url) as store:
        store.upgrade()
        store.append_audit(
            actor,
            "dataset.snapshot",
            f"dataset/{result.dataset_digest}",
            {"written": how == "written", "config": str(config), "config_hash": result.config_hash},
        )
        store.append_audit(
            actor,
            "training.run",
            f"run/{result.run_id or 'not-logged'}",
            {
                "config": str(config),
                "config_hash": result.config_hash,
                "dataset_digest": result.dataset_digest,
                "onnx_sha256": result.onnx_sha256,
                "model_dir": str(result.model_dir),
                "steps": dict(result.steps),
                "metrics": {k: v for k, v in sorted(result.metrics.items()) if math.isfinite(v)},
            },
        )


def _number(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.4f}"


@pipeline_app.command("show-config")
def show_config(config: ConfigOption) -> None:
    """Validate a pipeline file (detector included); print it with every default filled in, and its hash."""
    from pumpops.pipeline._config import load_config
    from pumpops.pipeline._run import check_detector

    cfg = load_config(config)
    check_detector(cfg)
    typer.echo(json.dumps(cfg.model_dump(mode="json"), indent=2, sort_keys=True))
    typer.echo(f"config hash: {cfg.config_hash}")


def _utc_time(text: str, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"{option}: not an ISO-8601 time: {text!r}") from exc
    if value.tzinfo is None:
        raise ConfigError(f"{option}: give a time zone, e.g. {text}Z")
    return value


@pipeline_app.command("calibrate")
def calibrate(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    model_dir: Path = typer.Option(..., "--model-dir", help="A model folder written by `pumpops train`."),
    device: str = typer.Option(
        ..., "--device", help="The pump to calibrate (a device of the model's group)."
    ),
    since: str = typer.Option(..., "--since", help="Start of its normal period, ISO-8601 with zone."),
    until: str = typer.Option(..., "--until", help="End of its normal period (exclusive)."),
    ground_truth: Path | None = typer.Option(
        None,
        "--ground-truth",
        help="Fault records to leave out (default: the training config's).",
        show_default=False,
    ),
    db: str | None = typer.Option(
        None, "--db", help="Store URL (default: workspace settings).", show_default=False
    ),
) -> None:
    """Calibrate a new pump against its group's model from its own normal period (into calibrations.json)."""
    from pumpops.pipeline._calibrate import calibrate_new_device
    from pumpops.store import open_store

    settings = settings_from(ctx, database_url=db)
    with open_store(settings.resolved_database_url) as store:
        cal = calibrate_new_device(
            model_dir,
            store,
            device,
            since=_utc_time(since, "--since"),
            until=_utc_time(until, "--until"),
            ground_truth=ground_truth,
        )
    typer.echo(
        f"calibrated {device} from {cal.n_rows} normal rows: threshold {cal.threshold:.6g}; "
        f"written to {model_dir / 'calibrations.json'}"
    )
