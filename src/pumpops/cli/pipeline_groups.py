"""Command-line command ``pumpops pipeline run-groups``: many pipeline files trained at once on Dask.

Each ``--config`` is one group's ``pipeline.toml``; they run as tasks on the
scheduler of ``[training]`` in ``pumpops.toml`` (``local``: a cluster of worker
processes for this command; ``sequential``; or ``tcp://host:8786``), or the one
given with ``--scheduler``. The runs are logged to MLflow by the workers; the
audit entries and the model versions are written here, one group at a time,
after all have finished. Exit 0 when every group trained, 1 when one or more
failed (the others are still registered).

May import at module level: typer, stdlib, ``pumpops.cli._support`` and the
pipeline commands' group; the pipeline, MLflow and Dask load inside the command.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pumpops.cli._support import (
    DatabaseUrlOption,
    ExitCode,
    JsonFlag,
    OutputFormat,
    OutputOption,
    TrackingUriOption,
    emit_rows,
    err_console,
    output_format,
    settings_from,
)
from pumpops.cli.pipeline import pipeline_app
from pumpops.errors import ConfigError
from pumpops.hub import open_registry, open_workspace_store

if TYPE_CHECKING:
    from pumpops.pipeline import GroupOutcome, PipelineConfig, RunResult
    from pumpops.settings import Settings
    from pumpops.store import TelemetryStore

__all__ = ["register", "run_groups"]


def register(app: typer.Typer) -> None:
    """Add ``run-groups`` to the ``pumpops pipeline`` group (registered by ``pumpops.cli.pipeline``)."""
    del app  # the command joins the pipeline group, which the root already has
    pipeline_app.command("run-groups")(run_groups)


def _names(paths: list[Path]) -> dict[str, Path]:
    """A name per config file: its stem, or its path when two stems are the same."""
    stems = [p.stem for p in paths]
    named: dict[str, Path] = {}
    for path, stem in zip(paths, stems, strict=True):
        name = stem if stems.count(stem) == 1 else str(path)
        if name in named:
            raise ConfigError(f"--config {path}: given twice")
        named[name] = path
    return named


def run_groups(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    config: Annotated[
        list[Path],
        typer.Option(
            "--config", "-c", help="A group's pipeline file (repeat for each group).", dir_okay=False
        ),
    ],
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="local (worker processes for this run), sequential, or a Dask scheduler address "
            "(tcp://host:8786); default: the training.scheduler setting.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Local cluster processes (0 = one per core); default: the training.workers setting.",
            show_default=False,
        ),
    ] = None,
    no_cache: bool = typer.Option(False, "--no-cache", help="Recompute every step (replace cached results)."),
    register_models: bool = typer.Option(
        True, "--register/--no-register", help="Register each logged model as an MLflow model version."
    ),
    actor: str | None = typer.Option(
        None,
        "--actor",
        help="Who runs it, for the audit trail (default: settings' actor).",
        show_default=False,
    ),
    tracking_uri: TrackingUriOption = None,
    database_url: DatabaseUrlOption = None,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Train one model per pipeline file, the files as tasks on Dask; report each group, register the trained.

    A group that fails is reported with its error and does not stop the others.
    """
    for path in config:
        if not path.is_file():
            raise ConfigError(f"--config {path}: {'is not a file' if path.exists() else 'does not exist'}")
    named = _names(config)
    fmt = output_format(output, as_json)
    from pumpops.audit import resolve_actor
    from pumpops.pipeline import check_scheduler, load_config, train_groups

    settings = settings_from(ctx, database_url=database_url, tracking_uri=tracking_uri)
    how = check_scheduler(scheduler or settings.training.scheduler)
    configs = {name: load_config(path) for name, path in named.items()}
    who = resolve_actor(settings, actor)

    def say(outcome: GroupOutcome) -> None:
        state = "trained" if outcome.ok else f"FAILED ({outcome.error})"
        err_console.print(
            f"{outcome.name}: {state} on {outcome.worker} in {outcome.elapsed_s:.1f} s",
            highlight=False,
            markup=False,
        )

    err_console.print(f"training {len(configs)} group(s) on {how}", highlight=False, markup=False)
    report = train_groups(
        configs,
        workspace=settings.workspace,
        database_url=settings.resolved_database_url,
        tracking_uri=settings.resolved_tracking_uri,
        use_cache=not no_cache,
        scheduler=how,
        workers=settings.training.workers if workers is None else workers,
        progress=say,
    )
    refs = _record(settings, who, named, configs, report.outcomes, register_models)
    rows = [
        {
            "group": o.name,
            "status": "trained" if o.ok else "failed",
            "model": refs.get(o.name),
            "onnx_sha256": None if o.result is None else o.result.onnx_sha256[:12],
            "worker": o.worker,
            "seconds": round(o.elapsed_s, 2),
            "error": o.error,
        }
        for o in report.outcomes
    ]
    emit_rows(
        rows,
        output=fmt,
        title=f"{len(configs) - len(report.failed)} of {len(configs)} trained on {report.scheduler} "
        f"({report.workers} worker(s), {report.wall_s:.1f} s)",
    )
    if report.orphan_runs:
        err_console.print(
            f"deleted {len(report.orphan_runs)} duplicate run(s) of a lost worker: "
            + ", ".join(report.orphan_runs),
            highlight=False,
            markup=False,
        )
    if report.failed:
        raise typer.Exit(ExitCode.FAILED)


def _record(  # noqa: PLR0917 - the command's state, passed on
    settings: Settings,
    actor: str,
    named: dict[str, Path],
    configs: dict[str, PipelineConfig],
    outcomes: list[GroupOutcome],
    register_models: bool,
) -> dict[str, str]:
    """Audit every trained group's snapshot and run and register its model, here, one at a time."""
    refs: dict[str, str] = {}
    trained = [(o.name, o.result) for o in outcomes if o.result is not None]
    if not trained:
        return refs
    with open_workspace_store(settings, upgrade=True) as store:
        for name, result in trained:
            _audit(store, actor, named[name], configs[name].config_hash, result)
    if register_models:
        with open_registry(settings, broker=None) as registry:
            for name, result in trained:
                if result.run_id is not None:
                    refs[name] = registry.register(result, actor=actor).ref
    return refs


def _audit(store: TelemetryStore, actor: str, path: Path, config_hash: str, result: RunResult) -> None:
    how = dict(result.steps).get("snapshot", "unknown")
    store.append_audit(
        actor,
        "dataset.snapshot",
        f"dataset/{result.dataset_digest}",
        {"written": how == "written", "config": str(path), "config_hash": config_hash},
    )
    store.append_audit(
        actor,
        "training.run",
        f"run/{result.run_id or 'not-logged'}",
        {
            "config": str(path),
            "config_hash": result.config_hash,
            "dataset_digest": result.dataset_digest,
            "onnx_sha256": result.onnx_sha256,
            "model_dir": str(result.model_dir),
            "steps": dict(result.steps),
            "metrics": {k: v for k, v in sorted(result.metrics.items()) if math.isfinite(v)},
        },
    )
