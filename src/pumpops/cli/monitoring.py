"""Command-line commands of ``pumpops.monitoring``: ``fleet status|evaluate``, ``drift status``, ``feedback``.

The thin shell: resolve settings (store, broker, actor, ``[monitoring]``),
build a :class:`~pumpops.monitoring.MonitoringService`, call it, print a
table, JSON or CSV (``--output``). ``fleet alerts`` and ``fleet feedback``
list the fleet alerts and the technicians' verdicts. ``fleet evaluate`` is one monitoring step
(for cron and tests; ``--now`` replays an instant). ``feedback`` records a
technician's verdict on an alarm the hub received.

A verdict needs evidence: a group none of whose devices reported in the
window (or said a drift word) is ``no data``, never ``ok``.

Only typer, the standard library and ``pumpops.cli._support`` load with this
module; the store, registry and settings load inside the commands (``pumpops
--help`` stays fast). May import: typer, ``pumpops.cli._support``, settings,
store, registry (events), audit (actor), errors and this package.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pumpops.audit import resolve_actor
from pumpops.cli._shift_rows import (
    device_shift_json,
    device_shift_row,
    group_shift_row,
    group_shift_words,
    shift_json,
)
from pumpops.cli._support import (
    DatabaseUrlOption,
    JsonFlag,
    OutputFormat,
    OutputOption,
    console,
    emit_rows,
    err_console,
    format_duration,
    format_time,
    output_format,
    parse_duration,
    parse_time_us,
    settings_from,
)
from pumpops.cli.audit import ActorOption
from pumpops.errors import NotFoundError
from pumpops.hub import event_publisher, event_sink, monitoring_service, open_workspace_store
from pumpops.monitoring import NO_DATA

if TYPE_CHECKING:
    from pumpops.monitoring import DeviceView, FleetView, MonitoringService
    from pumpops.registry import EventSink
    from pumpops.settings import Settings
    from pumpops.store import FleetAlertRecord

__all__ = ["drift_app", "fleet_app", "register"]

fleet_app = typer.Typer(
    help="Fleet monitoring: per group and device, what the agents report; one monitoring step.",
    no_args_is_help=True,
)
drift_app = typer.Typer(
    help="Fleet-level drift: per device PSI and alerts, per group verdict.", no_args_is_help=True
)

_TOP_PSI = 3  # sensors shown per device in `drift status`

FLEET_GROUP_COLUMNS = (
    "group", "devices", "reporting", "model_versions", "healthy", "stale",
    "alarms_per_h", "p95_max", "drift", "drifting", "open_alerts",
)  # fmt: skip
FLEET_DEVICE_COLUMNS = (
    "device", "group", "last_seen", "reporting", "status", "model", "health", "stale",
    "alarms_per_h", "drift",
)  # fmt: skip
DRIFT_DEVICE_COLUMNS = (
    "device", "group", "reporting", "drift", "word", "from", "word_at", "shift", "sensors", "since",
    f"top_{_TOP_PSI}_psi",
)  # fmt: skip
DRIFT_GROUP_COLUMNS = (
    "group", "verdict", "reporting", "judged", "drifting", "shared", "since", "local", "faults",
    "open_alerts", "reason",
)  # fmt: skip
ALERT_COLUMNS = ("alert", "group", "kind", "opened", "closed", "reason")
FEEDBACK_COLUMNS = ("alarm_id", "device_id", "verdict", "actor", "note", "at")

GroupOption = Annotated[
    str | None, typer.Option("--group", "-g", help="Only this device group.", show_default=False)
]
NowOption = Annotated[
    str | None,
    typer.Option(
        "--now",
        help="Evaluate at this instant: ISO 8601 (no zone = UTC) or a duration before now (1h); "
        "default: now. The window is measured in the agents' message time.",
        show_default=False,
    ),
]
WindowOption = Annotated[
    str | None,
    typer.Option(
        "--window",
        help="Look-back in which a device counts as reporting, e.g. 30m, 6h, 2d "
        "(default: [monitoring] window_s).",
        show_default=False,
    ),
]
DevicesFlag = Annotated[
    bool,
    typer.Option("--devices", help="One row per device instead of per group.", show_default=False),
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


def register(app: typer.Typer) -> None:
    """Add ``fleet``, ``drift`` and ``feedback`` to the root ``pumpops`` command."""
    app.add_typer(fleet_app, name="fleet")
    app.add_typer(drift_app, name="drift")
    app.command("feedback")(feedback_cmd)


def _now_us(text: str | None) -> int | None:
    return None if text is None else parse_time_us(text, option="--now")


def _window_s(text: str | None) -> float | None:
    if text is None:
        return None
    from pumpops.errors import ConfigError

    try:
        return parse_duration(text)
    except ConfigError as exc:
        raise ConfigError(f"--window {text}: {exc}") from None


def _time(ms: int | None) -> str:
    if ms is None:
        return "never"
    return format_time(ms * 1000, zulu=True)


@contextmanager
def _service(
    ctx: typer.Context,
    *,
    db: str | None,
    broker: str | None = "none",
    actor: str | None = None,
    window_s: float | None = None,
) -> Iterator[tuple[MonitoringService, EventSink, Settings, str]]:

    settings = settings_from(ctx, database_url=db)
    who = resolve_actor(settings, actor)
    policy = settings.monitoring
    if window_s is not None:
        from pumpops.errors import ConfigError

        if window_s > 30 * 86_400:
            raise ConfigError(f"--window {format_duration(window_s)}: at most 30 days")
        policy = policy.model_copy(update={"window_s": window_s})
    with open_workspace_store(settings, upgrade=True) as store:
        sink = event_sink(settings, store, event_publisher(settings, broker))
        yield monitoring_service(settings, store, sink, actor=who, policy=policy), sink, settings, who


def _alert_json(alert: FleetAlertRecord) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "group": alert.group,
        "kind": alert.kind,
        "opened_at_us": alert.opened_at_us,
        "closed_at_us": alert.closed_at_us,
        "detail": json.loads(alert.detail_json),
    }


def _check_group(view: FleetView, group: str | None) -> None:
    if group is not None and view.group(group) is None:
        known = ", ".join(g.group for g in view.groups) or "none"
        raise NotFoundError(f"group {group!r} has no registered or reporting device (groups: {known})")


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _tabled(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as the table shows them: – for nothing, yes/no, DRIFT in capitals, rates to 2 places."""

    def cell(key: str, value: Any) -> Any:
        if value is None or value == "":
            return "–"
        if isinstance(value, bool):
            return "yes" if value else "no"
        if key in ("drift", "verdict") and value == "drift":
            return "DRIFT"
        if key == "alarms_per_h":
            return _rate(value)
        if key == "p95_max":
            return f"{value:.3g}"
        return value

    return [{k: cell(k, v) for k, v in row.items()} for row in rows]


def device_verdict(device: DeviceView) -> str:
    """``drift``, ``ok`` or ``no data`` for a device in the window (an older word is no evidence)."""
    if device.drifting:
        return "drift"
    if device.reporting and device.drift.drifting is False:
        return "ok"
    return NO_DATA


def _device_rows(view: FleetView, group: str | None) -> list[dict[str, Any]]:
    return [
        {
            "device": d.device_id,
            "group": d.group,
            "last_seen": _time(d.last_seen_ms),
            "reporting": d.reporting,
            "status": d.status,
            "model": d.model,
            "health": d.health if d.health is not None else NO_DATA,
            "stale": d.stale,
            "alarms_per_h": d.alarms.rate_per_h,
            "drift": device_verdict(d),
        }
        for d in view.devices
        if group is None or d.group == group
    ]


@fleet_app.command("status")
def fleet_status(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    group: GroupOption = None,
    devices: DevicesFlag = False,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
    now: NowOption = None,
    window: WindowOption = None,
    db: DatabaseUrlOption = None,
) -> None:
    """Per group: devices, model versions, healthy, stale, alarm rate, drift verdict, open alerts.

    A group none of whose devices reported in the window says ``no data``, not ok.
    JSON holds the groups and their devices; ``--devices`` lists devices (table, CSV).
    """
    fmt = output_format(output, as_json)
    now_us, window_s = _now_us(now), _window_s(window)
    with _service(ctx, db=db, window_s=window_s) as (service, _, _, _):
        view = service.view(now_us)
        alerts = service.open_alerts(group)
    _check_group(view, group)
    if fmt is OutputFormat.JSON:
        data = view.to_dict()
        verdicts = {g.group: g.drift.verdict for g in view.groups}
        data["groups"] = [
            {
                **g,
                "drift": {**g["drift"], "verdict": verdicts[g["group"]]},
                "open_alerts": [_alert_json(a) for a in alerts if a.group == g["group"]],
            }
            for g in data["groups"]
            if group is None or g["group"] == group
        ]
        words = {d.device_id: device_verdict(d) for d in view.devices}
        data["devices"] = [
            {**d, "verdict": words[d["device_id"]]}
            for d in data["devices"]
            if group is None or d["group"] == group
        ]
        typer.echo(json.dumps(data, indent=2))
        return
    table = fmt is OutputFormat.TABLE
    device_rows = _device_rows(view, group)
    if devices:
        emit_rows(
            _tabled(device_rows) if table else device_rows,
            output=fmt,
            columns=FLEET_DEVICE_COLUMNS,
            title=f"Devices at {_time(view.now_ms)} "
            f"(window {format_duration(view.window_s)} of message time)",
            empty="no device registered or reporting",
        )
        return
    rows = [
        {
            "group": g.group,
            "devices": len(g.device_ids),
            "reporting": g.reporting,
            "model_versions": ", ".join(f"{label} ×{n}" for label, n in g.model_versions.items()),
            "healthy": g.healthy,
            "stale": g.stale,
            "alarms_per_h": g.alarms.rate_per_h,
            "p95_max": g.scores.p95_max,
            "drift": g.drift.verdict,
            "drifting": len(g.drift.drifting_devices),
            "open_alerts": " ".join(a.alert_id for a in alerts if a.group == g.group),
        }
        for g in view.groups
        if group is None or g.group == group
    ]
    title = f"Fleet at {_time(view.now_ms)} (window {format_duration(view.window_s)} of message time)"
    if not table:
        emit_rows(rows, output=fmt, columns=FLEET_GROUP_COLUMNS)
        return
    emit_rows(
        _tabled(rows),
        output=fmt,
        columns=FLEET_GROUP_COLUMNS,
        title=title,
        empty="no device registered or reporting",
    )
    if group is not None:
        emit_rows(_tabled(device_rows), output=fmt, columns=FLEET_DEVICE_COLUMNS, title=f"Devices of {group}")


@fleet_app.command("evaluate")
def fleet_evaluate(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    now: NowOption = None,
    as_json: JsonFlag = False,
    db: DatabaseUrlOption = None,
    broker: BrokerOption = None,
    actor: ActorOption = None,
) -> None:
    """One monitoring step: open a drift alert for each group that starts drifting, close those that stop.

    A group with no data keeps its open alert: nothing says it stopped drifting.
    """
    now_us = _now_us(now)
    with _service(ctx, db=db, broker=broker, actor=actor) as (service, _, _, _):
        result = service.evaluate(now_us)
    if as_json:
        changes = result.to_dict()["changes"]
        typer.echo(json.dumps({"now_ms": result.view.now_ms, "changes": changes}, indent=2))
        return
    if not result.changes:
        err_console.print("no change: no group started or stopped drifting", highlight=False)
    for change in result.changes:
        line = f"{change.action} {change.alert_id}: {change.detail.get('reason', '')}"
        console.print(line, highlight=False, markup=False)


@drift_app.command("status")
def drift_status(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    group: GroupOption = None,
    devices: DevicesFlag = False,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
    now: NowOption = None,
    window: WindowOption = None,
    db: DatabaseUrlOption = None,
) -> None:
    """Per device: the newest drift word and shift; per group: what changed, since when, and open alerts.

    With shift tests on the devices, a group's verdict is ``drift`` when sensors
    shifted on enough of its devices (``shared``, since when), and each device is
    ``group_drift`` (retrain the group), ``device_local`` (recalibrate it),
    ``fault`` (keep alarming), ``pending`` (one report, not confirmed) or ``ok``.
    Without them: ``drift``, ``ok``, or ``no data`` when no device of the group
    reported a drift word in the window. CSV lists groups (``--devices``: devices).
    """
    fmt = output_format(output, as_json)
    now_us, window_s = _now_us(now), _window_s(window)
    with _service(ctx, db=db, window_s=window_s) as (service, _, _, _):
        view = service.view(now_us)
        shifts = service.shift_verdicts(now_us)
        alerts = service.open_alerts(group)
        policy = service.policy
    word_of = {g: (s if s.verdict != NO_DATA else None) for g, s in shifts.items()}
    _check_group(view, group)
    device_list = [d for d in view.devices if group is None or d.group == group]
    groups = [g for g in view.groups if group is None or g.group == group]
    if fmt is OutputFormat.JSON:
        data = {
            "now_ms": view.now_ms,
            "policy": {
                "window_s": policy.window_s,
                "min_fraction": policy.min_fraction,
                "min_devices": policy.min_devices,
            },
            "devices": [
                {
                    "device_id": d.device_id,
                    "group": d.group,
                    "reporting": d.reporting,
                    "drifting": d.drifting,
                    "verdict": device_verdict(d),
                    "top_psi": [{"sensor": s, "psi": v} for s, v in d.drift.top_psi(_TOP_PSI)],
                    "drift": asdict(d.drift),
                    "shift": device_shift_json(word_of.get(d.group), d.device_id),
                }
                for d in device_list
            ],
            "groups": [
                {
                    **g.drift.to_dict(),
                    **group_shift_words(word_of.get(g.group)),
                    "shift": shift_json(word_of.get(g.group)),
                    "open_alerts": [_alert_json(a) for a in alerts if a.group == g.group],
                }
                for g in groups
            ],
        }
        typer.echo(json.dumps(data, indent=2))
        return
    table = fmt is OutputFormat.TABLE
    device_rows = [
        {
            "device": d.device_id,
            "group": d.group,
            "reporting": d.reporting,
            "drift": device_verdict(d),
            "word": None if d.drift.drifting is None else ("drift" if d.drift.drifting else "ok"),
            "from": d.drift.source or None,
            "word_at": None if d.drift.drift_ms is None else _time(d.drift.drift_ms),
            **device_shift_row(word_of.get(d.group), d.device_id),
            f"top_{_TOP_PSI}_psi": ", ".join(f"{s} {v:.2f}" for s, v in d.drift.top_psi(_TOP_PSI)),
        }
        for d in device_list
    ]
    group_rows = [
        {
            "group": g.group,
            "verdict": g.drift.verdict,
            "reporting": g.drift.reporting,
            "judged": g.drift.judged,
            "drifting": " ".join(g.drift.drifting_devices),
            "shared": None,
            "since": None,
            "local": None,
            "faults": None,
            "open_alerts": " ".join(a.alert_id for a in alerts if a.group == g.group),
            "reason": g.drift.reason,
            **group_shift_row(word_of.get(g.group)),
        }
        for g in groups
    ]
    if table:
        device_rows, group_rows = _tabled(device_rows), _tabled(group_rows)
    if devices or table:
        emit_rows(
            device_rows,
            output=fmt,
            columns=DRIFT_DEVICE_COLUMNS,
            title=f"Drift per device at {_time(view.now_ms)}",
            empty="no device registered or reporting",
        )
    if not devices:
        emit_rows(
            group_rows,
            output=fmt,
            columns=DRIFT_GROUP_COLUMNS,
            title=f"Groups (drifting: ≥ {policy.min_devices} devices and ≥ {policy.min_fraction:g} of "
            f"those reporting in {format_duration(policy.window_s)}; no data: no device said a drift word)",
            empty="no group",
        )


def _us_time(us: int | None) -> str | None:
    return None if us is None else _time(us // 1000)


@fleet_app.command("alerts")
def fleet_alerts(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    group: GroupOption = None,
    all_alerts: Annotated[
        bool, typer.Option("--all", help="Closed alerts too (default: open ones).", show_default=False)
    ] = False,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
    db: DatabaseUrlOption = None,
) -> None:
    """List fleet alerts (drifting groups), oldest first: open ones, or with --all every one."""
    fmt = output_format(output, as_json)
    with _service(ctx, db=db) as (_, sink, _, _):
        alerts = sink.store.fleet_alerts(group=group, open_only=not all_alerts)
    if fmt is OutputFormat.JSON:
        typer.echo(json.dumps([_alert_json(a) for a in alerts], indent=2))
        return
    rows = [
        {
            "alert": a.alert_id,
            "group": a.group,
            "kind": a.kind,
            "opened": _us_time(a.opened_at_us),
            "closed": _us_time(a.closed_at_us),
            "reason": json.loads(a.detail_json).get("reason"),
        }
        for a in alerts
    ]
    emit_rows(
        _tabled(rows) if fmt is OutputFormat.TABLE else rows,
        output=fmt,
        columns=ALERT_COLUMNS,
        title="Fleet alerts" if all_alerts else "Open fleet alerts",
        empty="no fleet alert" if all_alerts else "no open fleet alert",
    )


@fleet_app.command("feedback")
def fleet_feedback(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    device: Annotated[
        str | None, typer.Option("--device", "-d", help="Only this device's alarms.", show_default=False)
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only verdicts given from this time on: ISO 8601 or a duration before now (2d).",
            show_default=False,
        ),
    ] = None,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
    db: DatabaseUrlOption = None,
) -> None:
    """List technicians' verdicts on alarms (`pumpops feedback` records them), oldest first."""
    fmt = output_format(output, as_json)
    since_us = None if since is None else parse_time_us(since, option="--since")
    with _service(ctx, db=db) as (_, sink, _, _):
        verdicts = sink.store.feedback(device_id=device, since_us=since_us)
    rows = [
        {
            "alarm_id": f.alarm_id,
            "device_id": f.device_id,
            "verdict": f.verdict,
            "actor": f.actor,
            "note": f.note,
            "at": _us_time(f.at_us),
        }
        for f in verdicts
    ]
    emit_rows(rows, output=fmt, columns=FEEDBACK_COLUMNS, title="Alarm feedback", empty="no feedback yet")


def feedback_cmd(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    alarm_id: str = typer.Argument(..., help="The alarm: <device_id>:<started_ms>, as in its messages."),
    confirmed: bool = typer.Option(False, "--confirmed", help="The alarm was a real fault."),
    false_alarm: bool = typer.Option(False, "--false-alarm", help="The alarm was a false alarm."),
    note: str = typer.Option("", "--note", help="Free text kept with the verdict."),
    as_json: JsonFlag = False,
    db: DatabaseUrlOption = None,
    broker: BrokerOption = None,
    actor: ActorOption = None,
) -> None:
    """Record a technician's verdict on an alarm: --confirmed or --false-alarm (audited, an event)."""
    if confirmed == false_alarm:
        raise typer.BadParameter("give exactly one of --confirmed and --false-alarm", param_hint="verdict")
    from pumpops.monitoring import record_feedback

    verdict = "confirmed" if confirmed else "false_alarm"
    with _service(ctx, db=db, broker=broker, actor=actor) as (_, sink, _, who):
        stored = record_feedback(sink.store, sink, alarm_id, verdict=verdict, actor=who, note=note)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "alarm_id": stored.alarm_id,
                    "device_id": stored.device_id,
                    "verdict": stored.verdict,
                    "actor": stored.actor,
                    "note": stored.note,
                    "at_us": stored.at_us,
                }
            )
        )
        return
    console.print(f"{stored.alarm_id}: {stored.verdict} (by {stored.actor})", highlight=False, markup=False)
