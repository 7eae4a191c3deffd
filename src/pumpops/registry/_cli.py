"""Command-line commands of ``pumpops.registry``: ``models ...`` (register, list, show, ...) and ``validate``.

The thin shell: resolve settings (tracking URI, store, broker, actor), build a
:class:`~pumpops.registry.Registry`, call it, print. ``validate`` gathers the
candidate's and the champion's model folders and calls
``pumpops.validation.validate_model`` (imported when the command runs).
May import: typer, rich, ``pumpops._cli_support``, settings, store, pipeline
(tracking URI), audit (actor), errors, this package, and validation lazily.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pumpops._cli_support import console, settings_from
from pumpops.audit._cli import ActorOption, resolve_actor
from pumpops.errors import ConfigError
from pumpops.registry._events import EventPublisher, EventSink, MqttEventPublisher
from pumpops.registry._registry import ModelVersionInfo, Registry, parse_ref
from pumpops.settings import EMBEDDED_BROKER, Settings
from pumpops.store import open_store

models_app = typer.Typer(
    help="The model registry: register, list, show, promote, archive model versions; alias history.",
    no_args_is_help=True,
)

TrackingOption = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (default: $PUMPOPS_MLFLOW_URI or sqlite:///<workspace>/mlflow.db).",
        show_default=False,
    ),
]
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Store URL (default: from the workspace settings).", show_default=False),
]
BrokerOption = Annotated[
    str | None,
    typer.Option(
        "--broker",
        help="Where events are published: mqtt://host:port, or 'embedded'/'none' to store them only "
        "(default: the settings' broker_url).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root ``pumpops`` command."""
    app.add_typer(models_app, name="models")
    app.command("validate")(validate_cmd)


def _publisher(settings: Settings, broker: str | None) -> EventPublisher | None:
    url = broker if broker is not None else settings.broker_url
    if url in (EMBEDDED_BROKER, "none", ""):
        return None
    return MqttEventPublisher(url)


@contextmanager
def _registry(
    ctx: typer.Context, *, tracking_uri: str | None, db: str | None, broker: str | None
) -> Iterator[tuple[Registry, Settings]]:
    from pumpops.pipeline._tracking import resolve_tracking_uri

    settings = settings_from(ctx, database_url=db)
    store = open_store(settings.resolved_database_url)
    try:
        store.upgrade()
        sink = EventSink(store, _publisher(settings, broker), topic_prefix=settings.topic_prefix)
        yield Registry(resolve_tracking_uri(settings.workspace, cli=tracking_uri), sink), settings
    finally:
        store.close()


def _time(ms_or_us: int, *, us: bool = False) -> str:
    seconds = ms_or_us / (1_000_000 if us else 1000)
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="seconds")


def _summary(info: ModelVersionInfo) -> dict[str, Any]:
    return {
        "model": info.ref,
        "group": info.group,
        "detector_kind": info.tags.get("pumpops.detector_kind", ""),
        "aliases": list(info.aliases),
        "validation": info.validation,
        "archived": info.archived,
        "run_id": info.run_id,
        "created": _time(info.created_ms),
    }


@models_app.command("register")
def models_register(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    model_dir: Path | None = typer.Option(
        None,
        "--model-dir",
        help="The pipeline's model folder (default: the latest run's).",
        show_default=False,
    ),
    run_id: str | None = typer.Option(
        None, "--run-id", help="The MLflow run (default: the run that logged the folder).", show_default=False
    ),
    name: str | None = typer.Option(
        None, "--name", help="Registered model name (default: pumpops-<group>).", show_default=False
    ),
    tracking_uri: TrackingOption = None,
    db: DbOption = None,
    broker: BrokerOption = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a trained model as a model version with its lineage tags."""
    with _registry(ctx, tracking_uri=tracking_uri, db=db, broker=broker) as (registry, settings):
        who = resolve_actor(settings, actor)
        if model_dir is None:
            run = run_id or registry.latest_run_id()
            with tempfile.TemporaryDirectory(prefix="pumpops-register-") as tmp:
                folder = registry.download_run_model(run, Path(tmp))
                info = registry.register(model_dir=folder, run_id=run, name=name, actor=who)
        else:
            info = registry.register(model_dir=model_dir, run_id=run_id, name=name, actor=who)
    if as_json:
        typer.echo(json.dumps(info.lineage()))
    else:
        parent = info.tags.get("pumpops.parent")
        console.print(f"registered {info.ref} (group {info.group}, run {info.run_id}, parent {parent})")


@models_app.command("list")
def models_list(
    ctx: typer.Context,
    group: str | None = typer.Option(
        None, "--group", "-g", help="Only this device group.", show_default=False
    ),
    tracking_uri: TrackingOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List model versions with their group, aliases and validation status."""
    with _registry(ctx, tracking_uri=tracking_uri, db=db, broker="none") as (registry, _):
        rows = [_summary(v) for v in registry.list_versions(group=group)]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("model", "group", "detector", "aliases", "validation", "archived", "created")
    for r in rows:
        table.add_row(
            r["model"], r["group"], r["detector_kind"], ", ".join(r["aliases"]) or "-",
            r["validation"], "yes" if r["archived"] else "", r["created"],
        )  # fmt: skip
    console.print(table)


@models_app.command("show")
def models_show(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="<name>/<version>, e.g. pumpops-skab/3."),
    tracking_uri: TrackingOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a version's lineage: run, dataset digest, config hash, code, parent, validation, releases."""
    name, version = parse_ref(ref)
    with _registry(ctx, tracking_uri=tracking_uri, db=db, broker="none") as (registry, _):
        info = registry.get(name, version)
        lineage = {**info.lineage(), "releases": registry.releases_of(info)}
    if as_json:
        typer.echo(json.dumps(lineage))
        return
    for key, value in lineage.items():
        if key == "metrics":
            shown = ", ".join(f"{k}={float(v):.4g}" for k, v in value.items()) or "-"
        elif key == "releases":
            shown = (
                "; ".join(f"{r['release']} ({', '.join(r['targets'])}, {r['created']})" for r in value)
                or "none"
            )
        elif isinstance(value, list):
            shown = ", ".join(value) or "-"
        else:
            shown = str(value) if value not in ("", None) else "-"
        console.print(f"{key:>20}: {shown}", highlight=False, markup=False)


@models_app.command("promote")
def models_promote(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="<name>/<version>."),
    group: str = typer.Option(..., "--group", "-g", help="The device group whose champion it becomes."),
    force: bool = typer.Option(
        False, "--force", help="Promote without a passed validation (needs --reason)."
    ),
    reason: str | None = typer.Option(
        None, "--reason", help="Why (required with --force).", show_default=False
    ),
    tracking_uri: TrackingOption = None,
    db: DbOption = None,
    broker: BrokerOption = None,
    actor: ActorOption = None,
) -> None:
    """Make a validated version the champion of a group (<group>-champion)."""
    name, version = parse_ref(ref)
    if force and not (reason or "").strip():
        raise ConfigError("--force needs a --reason (it is written to the audit trail)")
    with _registry(ctx, tracking_uri=tracking_uri, db=db, broker=broker) as (registry, settings):
        info = registry.promote(
            name, version, group, actor=resolve_actor(settings, actor), force=force, reason=reason
        )
    console.print(f"{info.ref} is now {group}-champion" + (" (forced)" if force else ""))


@models_app.command("archive")
def models_archive(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="<name>/<version>."),
    reason: str | None = typer.Option(
        None, "--reason", help="Why (kept in the audit trail).", show_default=False
    ),
    tracking_uri: TrackingOption = None,
    db: DbOption = None,
    broker: BrokerOption = None,
    actor: ActorOption = None,
) -> None:
    """Archive a version: remove its aliases; it can no longer be promoted."""
    name, version = parse_ref(ref)
    with _registry(ctx, tracking_uri=tracking_uri, db=db, broker=broker) as (registry, settings):
        info = registry.archive(name, version, actor=resolve_actor(settings, actor), reason=reason)
    console.print(f"archived {info.ref}")


@models_app.command("history")
def models_history(
    ctx: typer.Context,
    group: str = typer.Option(..., "--group", "-g", help="The device group."),
    tracking_uri: TrackingOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show every alias change of a group: which version held which alias, from when to when, set by whom."""
    settings = settings_from(ctx, database_url=db)
    with open_store(settings.resolved_database_url) as store:
        store.upgrade()
        periods = store.alias_history(group=group)
    rows = [
        {
            "alias": p.alias,
            "model": f"{p.model_name}/{p.version}",
            "from": _time(p.from_us, us=True),
            "to": None if p.to_us is None else _time(p.to_us, us=True),
            "set_by": p.set_by,
            "reason": p.reason,
        }
        for p in periods
    ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("alias", "model", "from", "to", "set by", "reason")
    for r in rows:
        table.add_row(
            r["alias"], r["model"], r["from"], r["to"] or "(current)", r["set_by"], r["reason"] or ""
        )
    console.print(table)


def validate_cmd(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="<name>/<version> of the candidate."),
    against: str = typer.Option(
        "champion", "--against", help="'champion' (the group's current one) or 'none'."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="Validation settings (tolerances, budgets) file.", show_default=False
    ),
    data: str | None = typer.Option(
        None,
        "--data",
        help="Held-out data: a folder of SKAB-format files, or a simulator seed (default: the gates').",
        show_default=False,
    ),
    tracking_uri: TrackingOption = None,
    db: DbOption = None,
    broker: BrokerOption = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the validation gates on a version (against its group's champion) and store the report.

    A pass makes it its group's challenger (<group>-challenger). Exit code 1 when it failed.
    """
    name, version = parse_ref(ref)
    if against not in ("champion", "none"):
        raise ConfigError(f"--against must be 'champion' or 'none', not {against!r}")
    # imported here: the measurement layer loads the pipeline and scikit-learn
    from pumpops.validation import load_validation_config, validate_model

    gate_config = None
    if config is not None:
        gate_config = load_validation_config(config)
    gate_data: Path | int | None = None
    if data is not None:
        gate_data = int(data) if data.isdigit() else Path(data)
    with _registry(ctx, tracking_uri=tracking_uri, db=db, broker=broker) as (registry, settings):
        who = resolve_actor(settings, actor)
        candidate = registry.get(name, version)
        champion = registry.champion(candidate.group) if against == "champion" and candidate.group else None
        if champion is not None and champion.ref == candidate.ref:
            champion = None
        with tempfile.TemporaryDirectory(prefix="pumpops-validate-") as tmp:
            candidate_dir = registry.download_model(candidate, Path(tmp) / "candidate")
            champion_dir = (
                None if champion is None else registry.download_model(champion, Path(tmp) / "champion")
            )
            report = validate_model(
                candidate_dir,
                champion_dir=champion_dir,
                config=gate_config,
                data=gate_data,
                subject=candidate.ref,
            )
        report_json = report.to_json()
        if isinstance(report_json, bytes):
            report_json = report_json.decode("utf-8")
        stored = registry.store_validation(
            candidate, passed=bool(report.passed), report_json=str(report_json), against=champion, actor=who
        )
    if as_json:
        typer.echo(str(report_json))
    else:
        console.print(report.to_text(), highlight=False, markup=False)
        console.print(
            f"{stored.ref}: validation {stored.validation}"
            + (f"; now {stored.group}-challenger" if report.passed else ""),
            highlight=False,
        )
    if not report.passed:
        raise typer.Exit(1)
