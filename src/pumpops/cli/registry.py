"""Command-line commands of ``pumpops.registry``: ``models ...`` (register, list, show, ...) and ``validate``.

The thin shell: check the arguments, resolve settings (tracking URI, store,
broker, actor), build a :class:`~pumpops.registry.Registry`, call it, print.
``validate`` gathers the candidate's and the champion's model folders and calls
``pumpops.validation.validate_model`` (imported when the command runs).

A model is named ``<name>/<version>`` or ``<name>@<alias>`` everywhere. MLflow,
the store and the settings are imported inside the commands, after the
arguments are checked, so that ``--help`` and usage errors answer at once.

May import at module level: typer, stdlib, ``pumpops.cli._support``, errors.
Inside commands: settings, store, pipeline (tracking URI), audit (actor), this
package, and validation.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pumpops.cli._support import (
    DatabaseUrlOption,
    ExitCode,
    JsonFlag,
    OutputFormat,
    OutputOption,
    TrackingUriOption,
    console,
    emit_record,
    emit_rows,
    err_console,
    format_time,
    output_format,
    parse_time_us,
    settings_from,
)
from pumpops.errors import ConfigError
from pumpops.hub import open_registry, open_workspace_store

if TYPE_CHECKING:
    from pumpops.registry import ModelVersionInfo, Registry
    from pumpops.settings import Settings

models_app = typer.Typer(
    help="The model registry: register, list, show, promote, archive model versions; alias history.",
    no_args_is_help=True,
)

BrokerOption = Annotated[
    str | None,
    typer.Option(
        "--broker",
        help="Where events are published: mqtt://host:port, or 'embedded'/'none' to store them only "
        "(default: the settings' broker_url).",
        show_default=False,
    ),
]
ActorOption = Annotated[
    str | None,
    typer.Option(
        "--actor", help="Who does it, for the audit trail (default: the settings' actor).", show_default=False
    ),
]
REF_HELP = "<name>/<version> or <name>@<alias>, e.g. pumpops-skab-testbed/3 or pumpops-acme-ansi@champion."

#: Columns of ``models list``, in order.
LIST_COLUMNS = ("model", "group", "detector_kind", "aliases", "validation", "archived", "run_id", "created")


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root ``pumpops`` command."""
    app.add_typer(models_app, name="models")
    app.command("validate")(validate_cmd)


def _check_ref(ref: str) -> None:
    from pumpops.registry import parse_model_ref

    parse_model_ref(ref)


@contextmanager
def _registry(
    ctx: typer.Context, *, tracking_uri: str | None, database_url: str | None, broker: str | None
) -> Iterator[tuple[Registry, Settings]]:
    settings = settings_from(ctx, database_url=database_url, tracking_uri=tracking_uri)
    with open_registry(settings, broker=broker) as registry:
        yield registry, settings


def _actor(settings: Settings, actor: str | None) -> str:
    from pumpops.audit import resolve_actor

    return resolve_actor(settings, actor)


def _time(ms_or_us: int, *, us: bool = False) -> str:
    return format_time(ms_or_us if us else ms_or_us * 1000)


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


def registered_message(info: ModelVersionInfo) -> str:
    """What ``train`` and ``models register`` say about the version they registered or reused."""
    if info.reused:
        return f"version {info.version} reused: identical model ({info.ref}, run {info.run_id})"
    parent = info.tags.get("pumpops.parent")
    return f"registered {info.ref} (group {info.group}, run {info.run_id}, parent {parent})"


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
    tracking_uri: TrackingUriOption = None,
    database_url: DatabaseUrlOption = None,
    broker: BrokerOption = None,
    actor: ActorOption = None,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Register a trained model as a model version with its lineage tags.

    A model identical to a registered version (same ONNX digest, config hash
    and dataset digest) is not registered again: that version is reused.
    """
    if model_dir is not None and not (model_dir / "lineage.json").is_file():
        raise ConfigError(f"--model-dir {model_dir}: not a model folder of `pumpops train` (no lineage.json)")
    with _registry(ctx, tracking_uri=tracking_uri, database_url=database_url, broker=broker) as (
        registry,
        settings,
    ):
        who = _actor(settings, actor)
        if model_dir is None:
            run = run_id or registry.latest_run_id()
            with tempfile.TemporaryDirectory(prefix="pumpops-register-") as tmp:
                folder = registry.download_run_model(run, Path(tmp))
                info = registry.register(model_dir=folder, run_id=run, name=name, actor=who)
        else:
            info = registry.register(model_dir=model_dir, run_id=run_id, name=name, actor=who)
    fmt = output_format(output, as_json)
    if fmt is OutputFormat.TABLE:
        console.print(registered_message(info), highlight=False, markup=False)
    else:
        emit_record({**info.lineage(), "reused": info.reused}, output=fmt)


@models_app.command("list")
def models_list(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    group: str | None = typer.Option(
        None, "--group", "-g", help="Only this device group.", show_default=False
    ),
    tracking_uri: TrackingUriOption = None,
    database_url: DatabaseUrlOption = None,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """List model versions with their group, aliases and validation status."""
    with _registry(ctx, tracking_uri=tracking_uri, database_url=database_url, broker="none") as (
        registry,
        _,
    ):
        rows = [_summary(v) for v in registry.list_versions(group=group)]
    fmt = output_format(output, as_json)
    if fmt is not OutputFormat.JSON:  # one cell: "a, b"
        rows = [{**r, "aliases": ", ".join(r["aliases"])} for r in rows]
    emit_rows(
        rows,
        output=fmt,
        columns=LIST_COLUMNS,
        title="model versions",
        empty="no model version"
        + (f" of group {group}" if group else "")
        + "; train one with `pumpops train`",
    )


@models_app.command("show")
def models_show(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    ref: str = typer.Argument(..., help=REF_HELP),
    tracking_uri: TrackingUriOption = None,
    database_url: DatabaseUrlOption = None,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Show a version's lineage: run, dataset digest, config hash, code, parent, validation, releases."""
    _check_ref(ref)
    with _registry(ctx, tracking_uri=tracking_uri, database_url=database_url, broker="none") as (
        registry,
        _,
    ):
        info = registry.resolve(ref)
        lineage = {**info.lineage(), "releases": registry.releases_of(info)}
    fmt = output_format(output, as_json)
    if fmt is OutputFormat.TABLE:
        lineage["metrics"] = ", ".join(f"{k}={float(v):.4g}" for k, v in lineage["metrics"].items()) or "-"
        lineage["releases"] = (
            "; ".join(
                f"{r['release']} ({', '.join(r['targets'])}, {r['created']})" for r in lineage["releases"]
            )
            or "none"
        )
        lineage["aliases"] = ", ".join(lineage["aliases"]) or "-"
    emit_record(lineage, output=fmt, title=info.ref)


@models_app.command("promote")
def models_promote(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    ref: str = typer.Argument(..., help=REF_HELP),
    group: str | None = typer.Option(
        None,
        "--group",
        "-g",
        help="The device group whose champion it becomes (default: the one it was trained for).",
        show_default=False,
    ),
    force: bool = typer.Option(
        False, "--force", help="Promote without a passed validation (needs --reason)."
    ),
    reason: str | None = typer.Option(
        None, "--reason", help="Why (required with --force).", show_default=False
    ),
    tracking_uri: TrackingUriOption = None,
    database_url: DatabaseUrlOption = None,
    broker: BrokerOption = None,
    actor: ActorOption = None,
) -> None:
    """Make a validated version the champion of a group (<group>-champion)."""
    _check_ref(ref)
    if force and not (reason or "").strip():
        raise ConfigError("--force needs a --reason (it is written to the audit trail)")
    with _registry(ctx, tracking_uri=tracking_uri, database_url=database_url, broker=broker) as (
        registry,
        settings,
    ):
        found = registry.resolve(ref)
        target = group or found.group
        if not target:
            raise ConfigError(f"{found.ref} names no device group: give --group")
        info = registry.promote(
            found.name,
            found.version,
            target,
            actor=_actor(settings, actor),
            force=force,
            reason=reason,
        )
    console.print(f"{info.ref} is now {target}-champion" + (" (forced)" if force else ""), highlight=False)


@models_app.command("archive")
def models_archive(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    ref: str = typer.Argument(..., help=REF_HELP),
    reason: str | None = typer.Option(
        None, "--reason", help="Why (kept in the audit trail).", show_default=False
    ),
    tracking_uri: TrackingUriOption = None,
    database_url: DatabaseUrlOption = None,
    broker: BrokerOption = None,
    actor: ActorOption = None,
) -> None:
    """Archive a version: remove its aliases; it can no longer be promoted."""
    _check_ref(ref)
    with _registry(ctx, tracking_uri=tracking_uri, database_url=database_url, broker=broker) as (
        registry,
        settings,
    ):
        found = registry.resolve(ref)
        info = registry.archive(found.name, found.version, actor=_actor(settings, actor), reason=reason)
    console.print(f"archived {info.ref}", highlight=False)


@models_app.command("history")
def models_history(
    ctx: typer.Context,
    group: str = typer.Option(..., "--group", "-g", help="The device group."),
    database_url: DatabaseUrlOption = None,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Show every alias change of a group: which version held which alias, from when to when, set by whom."""
    settings = settings_from(ctx, database_url=database_url)
    with open_workspace_store(settings, upgrade=True) as store:
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
    fmt = output_format(output, as_json)
    if fmt is OutputFormat.TABLE:
        rows = [{**r, "to": r["to"] or "(current)"} for r in rows]
    emit_rows(
        rows,
        output=fmt,
        columns=("alias", "model", "from", "to", "set_by", "reason"),
        title=f"alias history of {group}",
        empty=f"no alias was ever set in group {group}",
    )


@models_app.command("events")
def models_events(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    kind: str | None = typer.Option(
        None, "--kind", help="Only this kind, e.g. model.promoted.", show_default=False
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Only events of this registered model (a name) or version (<name>/<version>).",
        show_default=False,
    ),
    since: str | None = typer.Option(
        None,
        "--since",
        help="Only events from then on: ISO 8601 (naive = UTC) or a duration before now (1h, 2d).",
        show_default=False,
    ),
    limit: int = typer.Option(100, "--limit", min=1, help="At most this many, the newest."),
    database_url: DatabaseUrlOption = None,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Show the stored lifecycle events (registered, validated, promoted, archived, ...), oldest first."""
    since_us = None if since is None else parse_time_us(since, option="--since")
    import json

    settings = settings_from(ctx, database_url=database_url)
    with open_workspace_store(settings, upgrade=True) as store:
        records = store.events(kind=kind)
    selected = [
        e
        for e in records
        if (since_us is None or e.time_us >= since_us)
        and (model is None or e.subject == model or e.subject.startswith(f"{model}/"))
    ][-limit:]
    fmt = output_format(output, as_json)
    rows = [
        {
            "seq": e.seq,
            "time": _time(e.time_us, us=True),
            "kind": e.kind,
            "subject": e.subject,
            "payload": json.loads(e.payload_json) if fmt is OutputFormat.JSON else e.payload_json,
        }
        for e in selected
    ]
    emit_rows(
        rows,
        output=fmt,
        columns=("seq", "time", "kind", "subject", "payload"),
        title="lifecycle events",
        empty="no event" + (" matches" if kind or model or since else " stored yet"),
    )


def _gate_data(data: str | None) -> Path | int | None:
    """``--data``: a simulator seed (digits) or an existing folder of SKAB files (else a usage error)."""
    if data is None:
        return None
    if data.isdigit():
        return int(data)
    path = Path(data)
    if not path.is_dir():
        raise ConfigError(
            f"--data {data}: {'is not a folder' if path.exists() else 'no such folder'} "
            "(give a folder of SKAB-format files or a simulator seed)"
        )
    return path


def validate_cmd(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="The candidate: " + REF_HELP),
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
    tracking_uri: TrackingUriOption = None,
    database_url: DatabaseUrlOption = None,
    broker: BrokerOption = None,
    actor: ActorOption = None,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Run the validation gates on a version (against its group's champion) and store the report.

    A pass makes it its group's challenger (<group>-challenger). Exit code 1 when it failed.
    """
    _check_ref(ref)
    if against not in ("champion", "none"):
        raise ConfigError(f"--against must be 'champion' or 'none', not {against!r}")
    gate_data = _gate_data(data)
    if config is not None and not config.is_file():
        raise ConfigError(f"--config {config}: no such file")
    # imported here: the measurement layer loads the pipeline and scikit-learn
    from pumpops.cli.validation import print_report
    from pumpops.validation import load_validation_config, rival_champion, validate_candidate

    gate_config = None if config is None else load_validation_config(config)
    with _registry(ctx, tracking_uri=tracking_uri, database_url=database_url, broker=broker) as (
        registry,
        settings,
    ):
        who = _actor(settings, actor)
        candidate = registry.resolve(ref)
        champion = rival_champion(registry, candidate.group if against == "champion" else None, candidate)
        done = validate_candidate(
            registry,
            candidate,
            champion=champion,
            actor=who,
            config=gate_config,
            data=gate_data,
            measuring=lambda: err_console.status(
                f"validating {candidate.ref}: parity, champion, behaviour, budgets"
            ),
        )
    report, stored = done.report, done.stored
    fmt = output_format(output, as_json)
    print_report(report, fmt)
    if fmt is OutputFormat.TABLE:
        console.print(
            f"{stored.ref}: validation {stored.validation}"
            + (f"; now {stored.group}-challenger" if report.passed else ""),
            highlight=False,
        )
    if not report.passed:
        raise typer.Exit(ExitCode.FAILED)
