"""Command-line commands of packaging: ``targets list|show`` and ``release create|list|show``.

The thin shell: resolve settings, the registry and the store, call
:func:`~pumpops.release._release.create_release`, print. Packaging (onnx,
onnxruntime, the validation helpers) loads when a command runs, not at every
``pumpops`` start. May import: typer, rich, ``pumpops._cli_support``, settings,
store, registry, audit (actor), fleet, errors, this package.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pumpops._cli_support import console, settings_from
from pumpops.audit._cli import ActorOption, resolve_actor
from pumpops.errors import ConfigError, NotFoundError
from pumpops.fleet import get_target, load_targets
from pumpops.settings import Settings
from pumpops.store import open_store

targets_app = typer.Typer(help="Target platform profiles: what each class of edge computer runs.")
release_app = typer.Typer(help="Releases: a model version packaged per target as verified bundles.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Store URL (default: from the workspace settings).", show_default=False),
]


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root ``pumpops`` command."""
    app.add_typer(targets_app, name="targets")
    app.add_typer(release_app, name="release")


def _target_dirs(settings: Settings) -> list[Path]:
    folder = settings.workspace / "targets"
    return [folder] if folder.is_dir() else []


def _settings(ctx: typer.Context, db: str | None = None) -> Settings:
    return settings_from(ctx, database_url=db) if db else settings_from(ctx)


@targets_app.command("list")
def targets_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the target profiles: shipped ones and the workspace's ``targets/*.toml``."""
    targets = load_targets(_target_dirs(_settings(ctx)))
    if as_json:
        typer.echo(json.dumps([t.model_dump(mode="json") for t in targets.values()]))
        return
    table = Table("target", "arch", "onnxruntime", "opset", "IR", "int8", "max bytes", "max ms", "max MB")
    for t in targets.values():
        b = t.budgets
        table.add_row(
            t.id, t.arch, f"{t.onnxruntime_min}-{t.onnxruntime_max}", str(t.max_opset),
            str(t.max_ir_version), "yes" if t.int8_allowed else "no", str(b.max_model_bytes),
            f"{b.max_latency_ms:g}", f"{b.max_peak_memory_mb:g}",
        )  # fmt: skip
    console.print(table)


@targets_app.command("show")
def targets_show(
    ctx: typer.Context,
    target: str = typer.Argument(..., help="Target id, e.g. armv7-controller."),
) -> None:
    """Show one target profile in full (JSON), with its digest."""
    profile = get_target(target, _target_dirs(_settings(ctx)))
    typer.echo(json.dumps({**profile.model_dump(mode="json"), "sha256": profile.digest()}, indent=2))


@release_app.command("create")
def release_create(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="<name>/<version> of a validated model version."),
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
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help="MLflow tracking URI."),
    db: DbOption = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Package a validated model version for each target; record and audit the release."""
    from pumpops.pipeline._tracking import resolve_tracking_uri
    from pumpops.registry import EventSink, Registry, parse_ref
    from pumpops.release._package import PackageSettings
    from pumpops.release._release import create_release, release_summary

    name, version = parse_ref(ref)
    settings = _settings(ctx, db)
    who = resolve_actor(settings, actor)
    ids = [t.strip() for t in targets.split(",") if t.strip()]
    if not ids:
        raise ConfigError("--targets names no target")
    profiles = [get_target(t, _target_dirs(settings)) for t in ids]
    with open_store(settings.resolved_database_url) as store:
        store.upgrade()
        sink = EventSink(store, None, topic_prefix=settings.topic_prefix)
        registry = Registry(resolve_tracking_uri(settings.workspace, cli=tracking_uri), sink)
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


@release_app.command("list")
def release_list(
    ctx: typer.Context,
    group: str | None = typer.Option(None, "--group", "-g", help="Only this device group."),
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List releases, oldest first."""
    from pumpops.release._release import release_summary

    settings = _settings(ctx, db)
    with open_store(settings.resolved_database_url) as store:
        store.upgrade()
        rows = [release_summary(r) for r in store.releases(group=group)]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("release", "model", "group", "targets", "precision", "created", "by")
    for r in rows:
        when = datetime.fromtimestamp(r["created_us"] / 1e6, tz=UTC).isoformat(timespec="seconds")
        precision = ", ".join(f"{t}:{v['precision']}" for t, v in r["record"]["targets"].items())
        table.add_row(
            str(r["release"]),
            r["model"],
            r["group"],
            ", ".join(r["targets"]),
            precision,
            when,
            r["created_by"],
        )
    console.print(table)


@release_app.command("show")
def release_show(
    ctx: typer.Context,
    release_id: int = typer.Argument(..., help="Release number (from `release list`)."),
    db: DbOption = None,
) -> None:
    """Show a release: what was built per target and why (JSON)."""
    from pumpops.release._release import release_summary

    settings = _settings(ctx, db)
    with open_store(settings.resolved_database_url) as store:
        store.upgrade()
        release = store.get_release(release_id)
    if release is None:
        raise NotFoundError(f"no release {release_id}")
    typer.echo(json.dumps(release_summary(release), indent=2))
