"""Command-line commands of ``pumpops.pipeline``: ``train`` and ``pipeline init|show-config|calibrate``.

``train`` logs the run to the workspace's tracking URI and registers it with
the registry on the same URI (``tracking_uri`` in ``pumpops.toml``,
``$PUMPOPS_TRACKING_URI`` or ``--tracking-uri``), so ``pumpops models list``
shows what ``train`` registered. It shows each step on stderr while it runs;
Ctrl-C (or SIGTERM) stops it: nothing is registered, exit code 130.

May import at module level: typer, stdlib, ``pumpops.cli._support``, errors and
this package's light modules; the pipeline, MLflow and the store are imported
inside the commands, after the arguments are checked.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pumpops.cli._support import (
    DatabaseUrlOption,
    JsonFlag,
    OutputFormat,
    OutputOption,
    TrackingUriOption,
    emit_record,
    err_console,
    output_format,
    parse_time_us,
    settings_from,
)
from pumpops.errors import ConfigError
from pumpops.hub import open_registry, open_workspace_store
from pumpops.pipeline import InterruptGuard

if TYPE_CHECKING:
    from rich.status import Status

    from pumpops.pipeline import RunResult
    from pumpops.settings import Settings

pipeline_app = typer.Typer(
    help="Training pipelines: write a starting pipeline.toml, inspect one, calibrate a new pump.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="The pipeline file (pipeline.toml).", exists=False, dir_okay=False),
]

#: What each step of ``train`` is doing, as shown while it runs.
STEP_TEXT = {
    "load": "reading the data",
    "snapshot": "writing the dataset snapshot",
    "features": "computing features",
    "fit": "fitting the detector",
    "calibrate": "calibrating each device's threshold",
    "evaluate": "evaluating on the holdout",
    "export": "exporting the ONNX model",
    "log": "logging the run to MLflow",
    "audit": "recording the run in the audit trail",
    "register": "registering the model version",
}


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root ``pumpops`` command."""
    app.command("train")(train)
    app.add_typer(pipeline_app, name="pipeline")


def _check_config_file(config: Path) -> None:
    if not config.is_file():
        what = "is not a file" if config.exists() else "does not exist"
        raise ConfigError(f"--config {config}: {what} (write a starting one with `pumpops pipeline init`)")


class TrainProgress:
    """Shows the step ``train`` is in on stderr: a spinner on a terminal, one line a step elsewhere.

    Each step is also a checkpoint of the :class:`InterruptGuard`: an interrupt
    that a library swallowed stops the run at the next step.
    """

    def __init__(self, guard: InterruptGuard) -> None:
        self._guard = guard
        self._start = time.monotonic()
        self._status: Status | None = None

    def __enter__(self) -> TrainProgress:
        if err_console.is_terminal:
            self._status = err_console.status("train: starting")
            self._status.start()
        return self

    def step(self, name: str) -> None:
        """A step starts (or raise KeyboardInterrupt if an interrupt arrived)."""
        self._guard.check()
        text = f"train: {STEP_TEXT.get(name, name)} ({time.monotonic() - self._start:.0f} s)"
        if self._status is not None:
            self._status.update(text)
        else:
            err_console.print(text, highlight=False, markup=False)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._status is not None:
            self._status.stop()


def train(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    config: ConfigOption,
    no_cache: bool = typer.Option(False, "--no-cache", help="Recompute every step (replace cached results)."),
    tracking_uri: TrackingUriOption = None,
    database_url: DatabaseUrlOption = None,
    actor: str | None = typer.Option(
        None,
        "--actor",
        help="Who runs it, for the audit trail (default: settings' actor).",
        show_default=False,
    ),
    register_model: bool = typer.Option(
        True, "--register/--no-register", help="Register the logged model as an MLflow model version."
    ),
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Run a training pipeline: snapshot, features, fit, calibrate, evaluate, export ONNX, log to MLflow.

    The run is logged to the workspace's tracking URI and the model registered
    there as a version of its group (`pumpops models list`); a model identical
    to a registered version (same bytes, config and data) reuses that version.
    The dataset snapshot and the run are recorded in the audit trail.
    Ctrl-C stops it: nothing is registered, exit code 130.
    """
    _check_config_file(config)
    fmt = output_format(output, as_json)
    from pumpops.audit import resolve_actor
    from pumpops.pipeline import load_config

    cfg = load_config(config)
    settings = settings_from(ctx, database_url=database_url, tracking_uri=tracking_uri)
    who = resolve_actor(settings, actor)
    uri = settings.resolved_tracking_uri
    with InterruptGuard() as guard, TrainProgress(guard) as progress:
        from pumpops.pipeline import run_pipeline

        result = run_pipeline(
            cfg,
            workspace=settings.workspace,
            database_url=settings.resolved_database_url,
            use_cache=not no_cache,
            tracking_uri=uri,
            progress=progress.step,
        )
        progress.step("audit")
        _audit_run(settings, who, config, result)
        info = None
        if register_model and result.run_id is not None:
            progress.step("register")
            with open_registry(settings, broker=None) as registry:
                guard.check()  # the last moment an interrupt stops it before anything is registered
                info = registry.register(result, actor=who)
    if info is not None and info.reused:
        err_console.print(f"version {info.version} reused: identical model ({info.ref})", highlight=False)
    _print_summary(result, None if info is None else info.ref, uri, fmt)


def _print_summary(result: RunResult, model_ref: str | None, uri: str, fmt: OutputFormat) -> None:
    summary: dict[str, Any] = {
        "run_id": result.run_id,
        "model": model_ref,
        "tracking_uri": uri if result.run_id else None,
        "dataset_digest": result.dataset_digest,
        "config_hash": result.config_hash,
        "onnx": str(result.onnx_path),
        "onnx_sha256": result.onnx_sha256,
        "model_dir": str(result.model_dir),
        "devices": len(result.devices),
        "skipped_devices": result.skipped_devices,
        "steps": dict(result.steps),
        "metrics": {k: (v if math.isfinite(v) else None) for k, v in sorted(result.metrics.items())},
        "split": None if result.split is None else result.split.to_dict(),
        "evaluation": {k: v for k, v in result.evaluation.items() if k != "split"},
    }
    if fmt is not OutputFormat.TABLE:
        emit_record(summary, output=fmt)
        return
    # Plain "key: value" lines: hashes and paths stay whole for copying and grep.
    lines = [
        f"run id:          {result.run_id or '(not logged)'}",
        f"model version:   {model_ref or '(not registered)'}",
        f"tracking uri:    {uri if result.run_id else '(not logged)'}",
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
    if result.split is not None:
        lines.append(f"split:           {result.split.reason}")
        if result.split.holdout:
            lines.append(f"held-out pumps:  {', '.join(result.split.holdout)}")
    held = result.split is not None and result.split.mode == "by_device"
    for key in ("f1", "far", "mar", "events", "events_missed", "mean_delay_s", "alarm_rate", "test_rows"):
        if key in result.metrics:
            value = _number(result.metrics[key])
            if held and f"insample_{key}" in result.metrics:
                value += f"   (held-out pumps; fitted pumps: {_number(result.metrics[f'insample_{key}'])})"
            lines.append(f"{key + ':':<17}{value}")
    lines += _breakdown_lines(result.evaluation)
    typer.echo("\n".join(lines))


def _breakdown_lines(evaluation: dict[str, Any]) -> list[str]:
    """Per fault kind and per make: held-out figures, and the fitted pumps' beside them."""
    held, fitted = evaluation.get("heldout") or {}, evaluation.get("insample") or {}
    main, other = (held, fitted) if held else (fitted, {})
    if not main.get("kind") and not main.get("make"):
        return []
    title = "held-out pumps" + (" (fitted pumps in brackets)" if other else "") if held else "fitted pumps"
    out = [
        "",
        f"by fault kind and make — {title}:",
        f"  {'':<30}{'F1':>18}{'FAR':>18}{'MAR':>18}{'delay s':>20}",
    ]
    for group in ("kind", "make"):
        for name, m in sorted(main.get(group, {}).items()):
            o = other.get(group, {}).get(name, {}) if other else {}
            cells = []
            for key in ("f1", "far", "mar", "mean_delay_s"):
                cell = _number(m[key]) if m.get(key) is not None else "n/a"
                if other:
                    cell += f" ({_number(o[key]) if o.get(key) is not None else 'n/a'})"
                cells.append(cell)
            out.append(
                f"  {group + ' ' + name:<30}" + "".join(f" {c:>17}" for c in cells[:3]) + f" {cells[3]:>19}"
            )
    return out


def _audit_run(settings: Settings, actor: str, config: Path, result: RunResult) -> None:
    """Append the dataset snapshot and the training run to the audit trail."""
    how = dict(result.steps).get("snapshot", "unknown")
    with open_workspace_store(settings, upgrade=True) as store:
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


@pipeline_app.command("init")
def init_cmd(
    path: Path = typer.Argument(
        Path("pipeline.toml"), help="The file to write (a folder: FOLDER/pipeline.toml)."
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="A folder of SKAB-format CSV files to train on (default: ./data beside the file).",
        show_default=False,
    ),
) -> None:
    """Write a commented starting pipeline.toml that `pumpops train --config` accepts as it is."""
    from pumpops.pipeline import pipeline_template

    target = path / "pipeline.toml" if path.is_dir() else path
    if target.exists():
        raise ConfigError(f"{target} exists; not replaced (remove it or name another file)")
    if data is not None and not data.is_dir():
        raise ConfigError(f"--data {data}: no such folder")
    if not target.parent.is_dir():
        raise ConfigError(f"{target.parent}: no such folder")
    data_path = str(data.resolve()) if data is not None else "data"
    with target.open("x", encoding="utf-8") as fh:  # "x": never replace a file written meanwhile
        fh.write(pipeline_template(data_path))
    typer.echo(f"wrote {target}; train with: pumpops train --config {target}")


@pipeline_app.command("show-config")
def show_config(
    config: ConfigOption,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Validate a pipeline file (detector included); print it with every default filled in, and its hash.

    The default (table) prints the config as indented JSON and then its hash on a
    line of its own; --output json prints one JSON object with a config_hash key.
    """
    _check_config_file(config)
    import json

    from pumpops.pipeline import check_detector, load_config

    cfg = load_config(config)
    check_detector(cfg)
    fmt = output_format(output, as_json)
    if fmt is OutputFormat.TABLE:
        typer.echo(json.dumps(cfg.model_dump(mode="json"), indent=2, sort_keys=True))
        typer.echo(f"config hash: {cfg.config_hash}")
        return
    emit_record({**cfg.model_dump(mode="json"), "config_hash": cfg.config_hash}, output=fmt)


def _utc_time(text: str, option: str) -> datetime:
    return datetime.fromtimestamp(parse_time_us(text, option=option) / 1e6, tz=UTC)


@pipeline_app.command("calibrate")
def calibrate(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    model_dir: Path = typer.Option(..., "--model-dir", help="A model folder written by `pumpops train`."),
    device: str = typer.Option(
        ..., "--device", help="The pump to calibrate (a device of the model's group)."
    ),
    since: str = typer.Option(
        ..., "--since", help="Start of its normal period: ISO 8601 (naive = UTC) or a duration ago (2d)."
    ),
    until: str = typer.Option(..., "--until", help="End of its normal period (exclusive), same forms."),
    ground_truth: Path | None = typer.Option(
        None,
        "--ground-truth",
        help="Fault records to leave out (default: the training config's).",
        show_default=False,
    ),
    database_url: DatabaseUrlOption = None,
) -> None:
    """Calibrate a new pump against its group's model from its own normal period (into calibrations.json)."""
    start, end = _utc_time(since, "--since"), _utc_time(until, "--until")
    if not (model_dir / "calibrations.json").is_file():
        raise ConfigError(f"--model-dir {model_dir}: not a model folder of `pumpops train`")
    from pumpops.pipeline import calibrate_new_device

    settings = settings_from(ctx, database_url=database_url)
    with open_workspace_store(settings) as store:
        cal = calibrate_new_device(
            model_dir, store, device, since=start, until=end, ground_truth=ground_truth
        )
    typer.echo(
        f"calibrated {device} from {cal.n_rows} normal rows: threshold {cal.threshold:.6g}; "
        f"written to {model_dir / 'calibrations.json'}"
    )
