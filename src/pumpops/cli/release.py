"""Command-line commands of packaging: ``targets list|show`` and ``release create|list|show``.

The thin shell: resolve settings, the registry and the store, call
:func:`~pumpops.release._release.create_release`, print a table, JSON or CSV
(``--output``). A model is named ``<name>/<version>`` or ``<name>@<alias>``.
Only typer, the standard library and ``pumpops.cli._support`` load with this
module; packaging (onnx, onnxruntime, the validation helpers), the store and
the registry load when a command runs. ``release create`` tells its steps on
stderr. May import: typer, ``pumpops.cli._support``, settings, store,
registry, audit (actor), fleet, errors, this package.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from pumpops.audit import resolve_actor
from pumpops.cli._support import (
    DatabaseUrlOption,
    JsonFlag,
    OutputFormat,
    OutputOption,
    TrackingUriOption,
    console,
    emit_record,
    emit_rows,
    err_console,
    output_format,
    settings_from,
)
from pumpops.cli.audit import ActorOption
from pumpops.errors import ConfigError, NotFoundError
from pumpops.hub import event_sink, open_workspace_store, registry_for

if TYPE_CHECKING:
    from pumpops.settings import Settings

targets_app = typer.Typer(help="Target platform profiles: what each class of edge computer runs.")
release_app = typer.Typer(help="Releases: a model version packaged per target as verified bundles.")

DbOption = DatabaseUrlOption


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root ``pumpops`` command."""
    app.add_typer(targets_app, name="targets")
    app.add_typer(release_app, name="release")


def _target_dirs(settings: Settings) -> list[Path]:
    folder = settings.workspace / "targets"
    return [folder] if folder.is_dir() else []


def _settings(ctx: typer.Context, db: str | None = None, tracking_uri: str | None = None) -> Settings:
    return settings_from(ctx, database_url=db, tracking_uri=tracking_uri)


@targets_app.command("list")
def targets_list(
    ctx: typer.Context, output: OutputOption = OutputFormat.TABLE, as_json: JsonFlag = False
) -> None:
    """List the target profiles: shipped ones and the workspace's ``targets/*.toml``."""
    from pumpops.fleet import load_targets

    fmt = output_format(output, as_json)
    targets = load_targets(_target_dirs(_settings(ctx)))
    if fmt is OutputFormat.JSON:
        typer.echo(json.dumps([t.model_dump(mode="json") for t in targets.values()]))
        return
    rows = [
        {
            "target": t.id,
            "arch": t.arch,
            "onnxruntime": f"{t.onnxruntime_min}-{t.onnxruntime_max}",
            "opset": t.max_opset,
            "ir": t.max_ir_version,
            "int8": t.int8_allowed,
            "max_bytes": t.budgets.max_model_bytes,
            "max_ms": t.budgets.max_latency_ms,
            "max_mb": t.budgets.max_peak_memory_mb,
        }
        for t in targets.values()
    ]
    emit_rows(rows, output=fmt, title="Target profiles", empty="no target profile")


@targets_app.command("show")
def targets_show(
    ctx: typer.Context,
    target: str = typer.Argument(..., help="Target id, e.g. armv7-controller."),
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Show one target profile in full, with its digest."""
    from pumpops.fleet import get_target

    profile = get_target(target, _target_dirs(_settings(ctx)))
    emit_record(
        {**profile.model_dump(mode="json"), "sha256": profile.digest()},
        output=output_format(output, as_json),
        title=f"Target {target}",
    )


def _progress(line: str) -> None:
    err_console.print(f"[dim]…[/] {line}", highlight=False)


@release_app.command("create")
def release_create(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    ref: str = typer.Argument(
        ..., help="A validated model version: <name>/<version> or <name>@<alias> (e.g. @champion)."
    ),
    targets: str = typer.Option(..., "--targets", "-t", help="Comma-separated target ids."),
    group: str | None = typer.Option(None, "--group", "-g", help="Device group (default: the model's)."),
    data: Path | None = typer.Option(
        None, "--data", help="SKAB-format folder for the float-vs-int8 check (default: simulated suite)."
    ),
    simulate_seed: int = typer.Option(0, "--simulate-seed", min=0, help="Seed of the simulated suite."),
    int8_tolerance: float = typer.Option(
        0.05,
        "--int8-tolerance",
        min=0.0,
        help="Largest int8 score deviation (fraction of the threshold).",
    ),
    out: Path | None = typer.Option(None, "--out", help="Bundle root (default: <workspace>/bundles)."),
    tracking_uri: TrackingUriOption = None,
    db: DbOption = None,
    actor: ActorOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Package a validated model version for each target; record and audit the release.

    Its steps (download, held-out windows, each target built and measured) are told on stderr.
    """
    ids = [t.strip() for t in targets.split(",") if t.strip()]
    if not ids:
        raise ConfigError(f"--targets {targets!r} names no target")
    if data is not None and not data.is_dir():
        raise NotFoundError(f"--data {data}: no such folder")
    settings = _settings(ctx, db, tracking_uri)
    who = resolve_actor(settings, actor)
    from pumpops.fleet import get_target
    from pumpops.release import PackageSettings, create_release, release_summary, resolve_model_ref

    profiles = [get_target(t, _target_dirs(settings)) for t in ids]
    with open_workspace_store(settings, upgrade=True) as store:
        name, version = resolve_model_ref(ref, tracking_uri=settings.resolved_tracking_uri, store=store)
        sink = event_sink(settings, store, None)
        registry = registry_for(settings, sink)
        _progress(f"releasing {name}/{version} for {', '.join(ids)}")
        release = create_release(
            registry,
            sink,
            name=name,
            version=version,
            targets=profiles,
            out=out or settings.workspace / "bundles",
            data=data if data is not None else simulate_seed,
            actor=who,
            group=group,
            settings=PackageSettings(int8_tolerance=int8_tolerance),
            progress=_progress,
        )
    summary = release_summary(release)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    console.print(f"release {release.release_id}: {summary['model']} for group {release.group}")
    for target, rec in summary["record"]["targets"].items():
        b = rec["budgets"]
        console.print(
            f"  {target}: {rec['precision']}, opset {rec['opset']}, {rec['model_bytes']} bytes, "
            f"{b['latency_ms']} ms/window, peak {b['peak_memory_mb']} MB (build machine, one thread) "
            f"-> {rec['bundle']}",
            highlight=False,
            markup=False,
        )
        for line in rec["decisions"]:
            console.print(f"      {line}", highlight=False, markup=False)


def _created(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat(timespec="seconds")


@release_app.command("list")
def release_list(
    ctx: typer.Context,
    group: str | None = typer.Option(None, "--group", "-g", help="Only this device group."),
    db: DbOption = None,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """List releases, oldest first."""
    from pumpops.release import release_summary

    fmt = output_format(output, as_json)
    settings = _settings(ctx, db)
    with open_workspace_store(settings, upgrade=True) as store:
        summaries = [release_summary(r) for r in store.releases(group=group)]
    if fmt is OutputFormat.JSON:
        typer.echo(json.dumps(summaries))
        return
    rows: list[dict[str, Any]] = [
        {
            "release": r["release"],
            "model": r["model"],
            "group": r["group"],
            "targets": " ".join(r["targets"]),
            "precision": " ".join(f"{t}:{v['precision']}" for t, v in r["record"]["targets"].items()),
            "created": _created(r["created_us"]),
            "by": r["created_by"],
        }
        for r in summaries
    ]
    emit_rows(
        rows,
        output=fmt,
        columns=("release", "model", "group", "targets", "precision", "created", "by"),
        title="Releases",
        empty="no releases yet (`pumpops release create`)",
    )


@release_app.command("show")
def release_show(
    ctx: typer.Context,
    release_id: int = typer.Argument(..., help="Release number (from `release list`)."),
    db: DbOption = None,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Show a release: what was built per target and why (--json: the whole record)."""
    from pumpops.release import release_summary

    fmt = output_format(output, as_json)
    settings = _settings(ctx, db)
    with open_workspace_store(settings, upgrade=True) as store:
        release = store.get_release(release_id)
    if release is None:
        raise NotFoundError(f"no release {release_id}; `pumpops release list` lists them")
    summary = release_summary(release)
    if fmt is OutputFormat.JSON:
        typer.echo(json.dumps(summary, indent=2))
        return
    if fmt is OutputFormat.CSV:
        emit_record(summary, output=fmt)
        return
    record = summary["record"]
    emit_record(
        {
            "release": summary["release"],
            "model": summary["model"],
            "group": summary["group"],
            "created": _created(summary["created_us"]),
            "created_by": summary["created_by"],
            "bundle_root": summary["bundle_root"],
            "held_out": record.get("held_out"),
        },
        output=fmt,
        title=f"Release {release_id}",
    )
    emit_rows(
        [
            {
                "target": target,
                "precision": rec.get("precision"),
                "opset": rec.get("opset"),
                "model_bytes": rec.get("model_bytes"),
                "latency_ms": (rec.get("budgets") or {}).get("latency_ms"),
                "peak_memory_mb": (rec.get("budgets") or {}).get("peak_memory_mb"),
                "bundle": rec.get("bundle"),
                "decisions": "; ".join(rec.get("decisions") or ()),
            }
            for target, rec in record.get("targets", {}).items()
        ],
        output=fmt,
        title="Per target",
    )
