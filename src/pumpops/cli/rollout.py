"""Command-line commands of rollouts: ``pumpops rollout start|status|pause|resume|abort|tick|run``.

The thin shell around :class:`~pumpops.rollout._service.RolloutService`:
resolve settings, the store, the broker and the actor, call the service,
print. The broker is only contacted when a desired state is written, so
``status`` works without one.

``status``/``list`` print a table, JSON or CSV (``--output``). Durations are
written ``90s``, ``10m``, ``2h`` (``--gate deadline=2h``, ``--interval 30s``);
a release is named ``<model>/<version>`` or ``<model>@<alias>`` (resolved
through the registry). Only typer, the standard library and
``pumpops.cli._support`` load with this module; the rest loads in the commands.

May import: typer, rich, ``pumpops.cli._support``, settings, store, registry
(the event sink), telemetry (broker addresses), audit (actor), errors, this package.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pumpops.audit import resolve_actor
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
    format_time,
    output_format,
    parse_duration,
    settings_from,
)
from pumpops.cli.audit import ActorOption
from pumpops.errors import ConfigError
from pumpops.hub import open_workspace_store, rollout_publishers, rollout_service

if TYPE_CHECKING:
    from pumpops.rollout import (
        GatePolicy,
        RolloutRow,
        RolloutService,
        RolloutState,
        StepResult,
    )

rollout_app = typer.Typer(
    help="Staged rollouts of a release to a device group, wave by wave, with a health gate.",
    no_args_is_help=True,
)

DbOption = DatabaseUrlOption
BrokerOption = Annotated[
    str | None,
    typer.Option(
        "--broker",
        help="Broker of the desired states: mqtt://host:port, or 'embedded' (127.0.0.1 and the "
        "settings' embedded_broker_port; events are then stored only). Default: the settings' broker_url.",
        show_default=False,
    ),
]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why, for the audit trail.")]


DEFAULT_WAVES = "1,10,50,100"  # rollout._plan.DEFAULT_WAVES_PERCENT, without loading it
_ON_FAIL = ("pause", "rollback")


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root ``pumpops`` command."""
    app.add_typer(rollout_app, name="rollout")


def parse_gate(items: list[str], on_fail: str | None) -> GatePolicy:
    """Build the gate from ``--gate key=value`` options and ``--on-fail``.

    Keys ending in ``_s`` take a duration (``600``, ``10m``, ``2h``) and may be
    written without the suffix (``deadline=2h``). Errors name the option as typed.

    Raises:
        ConfigError: an option is not ``key=value``, a key is unknown, or a value is out of range.

    >>> parse_gate(["min_soak_s=0", "max_crash_loops=1"], "pause").on_fail
    'pause'
    >>> parse_gate(["deadline=2h", "min_soak=10m"], None).deadline_s
    7200.0
    """
    from pumpops.rollout import GatePolicy

    values: dict[str, Any] = {}
    typed: dict[str, str] = {}  # field -> the option as the user wrote it
    defaults = GatePolicy().to_dict()
    for item in items:
        key, sep, text = item.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or not key:
            raise ConfigError(f"--gate {item}: give key=value, e.g. min_soak=10m or max_crash_loops=0")
        field = key if key in defaults or f"{key}_s" not in defaults else f"{key}_s"
        if field not in defaults or field == "on_fail":
            known = ", ".join(sorted(k.removesuffix("_s") for k in defaults if k != "on_fail"))
            raise ConfigError(f"--gate {key}: unknown setting; known: {known} (and --on-fail)")
        typed[field] = f"--gate {key}={text}"
        kind = type(defaults[field])
        try:
            values[field] = _seconds(text) if field.endswith("_s") else kind(text)
        except (ValueError, ConfigError):
            what = {int: "a whole number", float: "a number"}.get(kind, kind.__name__)
            if field.endswith("_s"):
                what = "a duration such as 90s, 10m or 2h"
            raise ConfigError(f"--gate {key}={text}: must be {what}") from None
    if on_fail is not None:
        if on_fail not in _ON_FAIL:
            raise ConfigError(f"--on-fail {on_fail}: must be pause or rollback")
        values["on_fail"] = on_fail
    try:
        return GatePolicy.from_dict(values)
    except ConfigError as exc:
        # "gate min_soak_s: ..." names a field: name the option the user typed instead
        message = str(exc)
        for field, option in typed.items():
            if message.startswith(f"gate {field}:"):
                raise ConfigError(option + message.removeprefix(f"gate {field}")) from None
        raise ConfigError(f"--gate: {message.removeprefix('gate ')}") from None


def _seconds(text: str) -> float:
    """A gate duration: plain seconds (0 included: no soak) or 90s, 10m, 2h."""
    try:
        return float(text)
    except ValueError:
        return parse_duration(text)


def _waves(text: str) -> tuple[int, ...]:
    from pumpops.rollout import parse_waves

    try:
        return parse_waves(text)
    except ConfigError as exc:
        raise ConfigError(f"--waves {text}: {str(exc).removeprefix('waves: ')}") from None


@contextmanager
def _service(
    ctx: typer.Context, *, db: str | None, broker: str | None, actor: str | None
) -> Iterator[RolloutService]:
    settings = settings_from(ctx, database_url=db)
    desired, events = rollout_publishers(settings, broker)
    try:
        with open_workspace_store(settings, upgrade=True) as store:
            yield rollout_service(settings, store, desired, events, actor=resolve_actor(settings, actor))
    finally:
        desired.close()


def _time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return format_time(round(seconds * 1_000_000))


def _summary(row: RolloutRow, state: RolloutState) -> dict[str, Any]:
    return {
        "rollout_id": row.rollout_id,
        "release": row.release,
        "group": state.group,
        "version": state.version,
        "previous_version": state.previous_version,
        "status": state.status,
        "wave": state.current_wave + 1,
        "waves": len(state.waves),
        "wave_sizes": [len(w) for w in state.waves],
        "devices_sent": len(state.sent_devices),
        "wave_started": _time(state.wave_started_s),
        "created_at_us": row.created_at_us,
        "updated_at_us": row.updated_at_us,
    }


@rollout_app.command("start")
def start_cmd(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    release: Annotated[
        str,
        typer.Argument(help="The release: <model>/<version> or <model>@<alias> (e.g. @champion)."),
    ],
    group: Annotated[str, typer.Option("--group", "-g", help="The device group.")],
    waves: Annotated[
        str,
        typer.Option(help="Cumulative percentages of the group per wave."),
    ] = DEFAULT_WAVES,
    gate: Annotated[
        list[str] | None,
        typer.Option(
            "--gate",
            help="A gate setting key=value (repeatable), e.g. min_soak=10m, deadline=2h, max_crash_loops=0.",
        ),
    ] = None,
    on_fail: Annotated[
        str | None,
        typer.Option("--on-fail", help="pause or rollback (default: rollback).", show_default=False),
    ] = None,
    previous: Annotated[
        str | None,
        typer.Option(
            "--previous",
            help="Version to roll back to (default: what the group runs now).",
            show_default=False,
        ),
    ] = None,
    reason: ReasonOption = "",
    db: DbOption = None,
    tracking_uri: TrackingUriOption = None,
    broker: BrokerOption = None,
    actor: ActorOption = None,
) -> None:
    """Start a rollout: the first wave's devices get the release as their desired model."""
    policy = parse_gate(gate or [], on_fail)
    percents = _waves(waves)
    ref = _release_ref(ctx, release, db=db, tracking_uri=tracking_uri)
    with _service(ctx, db=db, broker=broker, actor=actor) as service:
        rid = service.start(ref, group, percents, policy, previous_version=previous, reason=reason)
        state = service.get(rid)
    typer.echo(
        f"rollout {rid}: {ref} to group {group} in {len(state.waves)} wave(s) "
        f"of {', '.join(str(len(w)) for w in state.waves)} device(s); wave 1 started "
        f"(roll back to: {state.previous_version or 'none'}). "
        "`pumpops rollout run` (or `tick`, or `pumpops hub serve --services`) moves it on."
    )


def _release_ref(ctx: typer.Context, text: str, *, db: str | None, tracking_uri: str | None) -> str:
    """``<model>/<version>``: as given, or what ``<model>@<alias>`` points at in the registry."""
    if "@" not in text:
        return text
    from pumpops.release import resolve_model_ref

    settings = settings_from(ctx, database_url=db, tracking_uri=tracking_uri)
    with open_workspace_store(settings, upgrade=True) as store:
        name, version = resolve_model_ref(text, tracking_uri=settings.resolved_tracking_uri, store=store)
    return f"{name}/{version}"


_LIST_COLUMNS = ("rollout_id", "release", "group", "status", "wave", "waves", "devices_sent", "wave_started")


def _list(ctx: typer.Context, db: str | None, fmt: OutputFormat) -> None:
    with _service(ctx, db=db, broker="embedded", actor="status") as service:
        rows = [_summary(row, state) for row, state in service.rollouts()]
    if fmt is OutputFormat.JSON:
        typer.echo(json.dumps(rows, indent=1))
        return
    emit_rows(rows, output=fmt, columns=_LIST_COLUMNS, title="Rollouts", empty="no rollouts yet")


@rollout_app.command("list")
def list_cmd(
    ctx: typer.Context,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
    db: DbOption = None,
) -> None:
    """List the rollouts, oldest first (the same as `rollout status` without an id)."""
    _list(ctx, db, output_format(output, as_json))


@rollout_app.command("status")
def status_cmd(
    ctx: typer.Context,
    rollout_id: Annotated[str | None, typer.Argument(help="One rollout (default: all).")] = None,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
    db: DbOption = None,
) -> None:
    """Show rollouts; with an id, the whole state, its history and what the current wave waits for."""
    fmt = output_format(output, as_json)
    if rollout_id is None:
        _list(ctx, db, fmt)
        return
    with _service(ctx, db=db, broker="embedded", actor="status") as service:
        state = service.get(rollout_id)
        row = service.record(rollout_id)
        verdict = service.verdict(rollout_id)
    doc = {
        **_summary(row, state),
        "policy": state.policy.to_dict(),
        "gate_now": None if verdict is None else verdict.to_dict(),
        "history": state.to_dict()["history"],
    }
    if fmt is OutputFormat.JSON:
        typer.echo(json.dumps(doc, indent=1))
        return
    if fmt is OutputFormat.CSV:
        emit_record(doc, output=fmt)
        return
    console.print(
        f"[bold]{rollout_id}[/]: {row.release} → {state.group}, [bold]{state.status}[/], "
        f"wave {state.current_wave + 1}/{len(state.waves)} (sizes {doc['wave_sizes']}), "
        f"previous {state.previous_version or '-'}"
    )
    if verdict is not None:
        console.print(
            f"gate now: {verdict.outcome} ({verdict.healthy} healthy, {verdict.responders} responded "
            f"of {verdict.wave_size})"
        )
        for reason in verdict.reasons:
            console.print(f"  - {reason}", markup=False)
    for t in state.history:
        console.print(
            f"  {_time(t.at_s)}  {t.action}: {t.from_status} → {t.to_status} (wave {t.wave_index + 1})"
        )


def _command(ctx: typer.Context, what: str, rollout_id: str, **kwargs: Any) -> None:
    db, broker, actor = kwargs.pop("db"), kwargs.pop("broker"), kwargs.pop("actor")
    with _service(ctx, db=db, broker=broker, actor=actor) as service:
        state = getattr(service, what)(rollout_id, **kwargs)
    typer.echo(f"rollout {rollout_id} is {state.status} (wave {state.current_wave + 1}/{len(state.waves)})")


@rollout_app.command("pause")
def pause_cmd(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    rollout_id: Annotated[str, typer.Argument(help="The rollout.")],
    reason: ReasonOption = "",
    db: DbOption = None,
    broker: BrokerOption = None,
    actor: ActorOption = None,
) -> None:
    """Stop moving on to further waves; devices keep their desired state."""
    _command(ctx, "pause", rollout_id, reason=reason, db=db, broker=broker, actor=actor)


@rollout_app.command("resume")
def resume_cmd(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    rollout_id: Annotated[str, typer.Argument(help="The rollout.")],
    reason: ReasonOption = "",
    db: DbOption = None,
    broker: BrokerOption = None,
    actor: ActorOption = None,
) -> None:
    """Continue a paused rollout; the current wave's gate clock starts again."""
    _command(ctx, "resume", rollout_id, reason=reason, db=db, broker=broker, actor=actor)


@rollout_app.command("abort")
def abort_cmd(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    rollout_id: Annotated[str, typer.Argument(help="The rollout.")],
    roll_back: Annotated[
        bool,
        typer.Option("--roll-back", help="Make the previous release desired again on every sent device."),
    ] = False,
    reason: ReasonOption = "",
    db: DbOption = None,
    broker: BrokerOption = None,
    actor: ActorOption = None,
) -> None:
    """End a rollout for good (devices keep what they were sent, unless --roll-back)."""
    _command(ctx, "abort", rollout_id, roll_back=roll_back, reason=reason, db=db, broker=broker, actor=actor)


def _print_results(results: list[StepResult]) -> None:
    for r in results:
        typer.echo(f"rollout {r.rollout_id}: {r.actions_summary or r.after + ', nothing to do yet'}")


@rollout_app.command("tick")
def tick_cmd(
    ctx: typer.Context,
    db: DbOption = None,
    broker: BrokerOption = None,
    actor: ActorOption = None,
) -> None:
    """One controller step over every active rollout (for cron and tests).

    Exits 5 if a step could not reach the database or broker, 1 if a step failed otherwise
    (a failed step is tried again at the next tick).
    """
    with _service(ctx, db=db, broker=broker, actor=actor) as service:
        results = service.tick()
    if not results:
        typer.echo("no active rollouts")
    _print_results(results)
    if any(r.unreachable for r in results):
        raise typer.Exit(ExitCode.UNREACHABLE)
    if any(r.error for r in results):
        raise typer.Exit(ExitCode.FAILED)


@rollout_app.command("run")
def run_cmd(
    ctx: typer.Context,
    interval: Annotated[
        str,
        typer.Option("--interval", "--interval-s", help="Time between controller steps: 30s, 5m, ..."),
    ] = "30s",
    db: DbOption = None,
    broker: BrokerOption = None,
    actor: ActorOption = None,
) -> None:
    """The rollout controller: a step every --interval until interrupted (Ctrl-C, SIGTERM).

    `pumpops hub serve --services` runs the same controller beside ingest and monitoring.
    """
    try:
        interval_s = parse_duration(interval)
    except ConfigError as exc:
        raise ConfigError(f"--interval {interval}: {exc}") from None
    if interval_s < 0.1:
        raise ConfigError(f"--interval {interval}: at least 0.1s")
    from pumpops.telemetry import stop_on_signals

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    with _service(ctx, db=db, broker=broker, actor=actor) as service, stop_on_signals(stop):
        typer.echo(f"rollout controller: a step every {interval_s:g} s; Ctrl-C stops it")
        service.run(stop, interval_s=interval_s)
    typer.echo("rollout controller stopped")


__all__ = ["parse_gate", "register", "rollout_app"]
