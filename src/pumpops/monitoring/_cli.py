"""Command-line commands of ``pumpops.monitoring``: ``fleet status|evaluate``, ``drift status``, ``feedback``.

The thin shell: resolve settings (store, broker, actor, ``[monitoring]``),
build a :class:`~pumpops.monitoring.MonitoringService`, call it, print a Rich
table or JSON. ``fleet evaluate`` is one monitoring step (for cron and
tests; ``--now`` replays an instant). ``feedback`` records a technician's
verdict on an alarm the hub received.
May import: typer, rich, ``pumpops._cli_support``, settings, store, registry
(events), audit (actor), errors and this package.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from pumpops._cli_support import console, err_console, settings_from
from pumpops.audit._cli import ActorOption, resolve_actor
from pumpops.errors import NotFoundError
from pumpops.monitoring._drift import _duration
from pumpops.monitoring._fleet import FleetView
from pumpops.monitoring._service import MonitoringService, record_feedback
from pumpops.registry import EventPublisher, EventSink, MqttEventPublisher
from pumpops.settings import EMBEDDED_BROKER, Settings
from pumpops.store import FleetAlertRecord, open_store

__all__ = ["drift_app", "fleet_app", "register"]

fleet_app = typer.Typer(
    help="Fleet monitoring: per group and device, what the agents report; one monitoring step.",
    no_args_is_help=True,
)
drift_app = typer.Typer(
    help="Fleet-level drift: per device PSI and alerts, per group verdict.", no_args_is_help=True
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TOP_PSI = 3  # sensors shown per device in `drift status`

GroupOption = Annotated[
    str | None, typer.Option("--group", "-g", help="Only this device group.", show_default=False)
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: from the workspace settings).", show_default=False),
]
NowOption = Annotated[
    str | None,
    typer.Option(
        "--now",
        help="Evaluate at this instant, ISO-8601 (no zone = UTC; default: now). "
        "The window is measured in the agents' message time.",
        show_default=False,
    ),
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


def _parse_time(text: str | None) -> int | None:
    """ISO-8601 to microseconds since the epoch; a time without zone is UTC."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO-8601 time (e.g. 2026-01-31T12:00)", param_hint="--now"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _time(ms: int | None) -> str:
    if ms is None:
        return "never"
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="seconds").replace("+00:00", "Z")


def _publisher(settings: Settings, broker: str | None) -> EventPublisher | None:
    url = broker if broker is not None else settings.broker_url
    if url in (EMBEDDED_BROKER, "none", ""):
        return None
    return MqttEventPublisher(url)


@contextmanager
def _service(
    ctx: typer.Context, *, db: str | None, broker: str | None = "none", actor: str | None = None
) -> Iterator[tuple[MonitoringService, EventSink, Settings, str]]:
    settings = settings_from(ctx, database_url=db)
    who = resolve_actor(settings, actor)
    with open_store(settings.resolved_database_url) as store:
        store.upgrade()
        sink = EventSink(store, _publisher(settings, broker), topic_prefix=settings.topic_prefix)
        yield MonitoringService(store, sink, settings.monitoring, actor=who), sink, settings, who


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


@fleet_app.command("status")
def fleet_status(
    ctx: typer.Context,
    group: GroupOption = None,
    as_json: JsonOption = False,
    now: NowOption = None,
    db: DbOption = None,
) -> None:
    """Per group: devices, model versions, healthy, stale, alarm rate, drifting devices, open alerts."""
    now_us = _parse_time(now)
    with _service(ctx, db=db) as (service, _, _, _):
        view = service.view(now_us)
        alerts = service.open_alerts(group)
    _check_group(view, group)
    groups = [g for g in view.groups if group is None or g.group == group]
    if as_json:
        data = view.to_dict()
        data["groups"] = [
            {**g, "open_alerts": [_alert_json(a) for a in alerts if a.group == g["group"]]}
            for g in data["groups"]
            if group is None or g["group"] == group
        ]
        data["devices"] = [d for d in data["devices"] if group is None or d["group"] == group]
        typer.echo(json.dumps(data, indent=2))
        return
    table = Table(title=f"Fleet at {_time(view.now_ms)} (window {_duration(view.window_s)} of message time)")
    columns = ("group", "devices", "reporting", "model versions", "healthy", "stale", "alarms/h", "p95 max")
    for name in columns:
        table.add_column(name, justify="left" if name in ("group", "model versions") else "right")
    table.add_column("drifting")
    table.add_column("open alerts")
    for g in groups:
        versions = ", ".join(f"{label} ×{n}" for label, n in g.model_versions.items()) or "–"
        drifting = f"{len(g.drift.drifting_devices)}" + (" DRIFT" if g.drift.drifting else "")
        open_ids = ", ".join(a.alert_id for a in alerts if a.group == g.group) or "–"
        p95 = "–" if g.scores.p95_max is None else f"{g.scores.p95_max:.3g}"
        table.add_row(
            g.group,
            str(len(g.device_ids)),
            str(g.reporting),
            versions,
            str(g.healthy),
            str(g.stale),
            _rate(g.alarms.rate_per_h),
            p95,
            drifting,
            open_ids,
        )
    console.print(table, highlight=False)
    if group is not None:
        devices = Table(title=f"Devices of {group}")
        for name in ("device", "last seen (UTC)", "status", "model", "health", "stale", "alarms/h", "drift"):
            devices.add_column(name, justify="right" if name == "alarms/h" else "left")
        for d in view.devices_of(group):
            devices.add_row(
                d.device_id,
                _time(d.last_seen_ms),
                d.status or "–",
                d.model or "–",
                d.health or "–",
                "yes" if d.stale else "no",
                _rate(d.alarms.rate_per_h),
                "DRIFT" if d.drifting else ("ok" if d.drift.drifting is False else "–"),
            )
        console.print(devices, highlight=False)


@fleet_app.command("evaluate")
def fleet_evaluate(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    now: NowOption = None,
    as_json: JsonOption = False,
    db: DbOption = None,
    broker: BrokerOption = None,
    actor: ActorOption = None,
) -> None:
    """One monitoring step: open a drift alert for each group that starts drifting, close those that stop."""
    now_us = _parse_time(now)
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
def drift_status(
    ctx: typer.Context,
    group: GroupOption = None,
    as_json: JsonOption = False,
    now: NowOption = None,
    db: DbOption = None,
) -> None:
    """Per device: the newest drift word, top PSI sensors; per group: the verdict and open alerts."""
    now_us = _parse_time(now)
    with _service(ctx, db=db) as (service, _, _, _):
        view = service.view(now_us)
        alerts = service.open_alerts(group)
        policy = service.policy
    _check_group(view, group)
    devices = [d for d in view.devices if group is None or d.group == group]
    groups = [g for g in view.groups if group is None or g.group == group]
    if as_json:
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
                    "top_psi": [{"sensor": s, "psi": v} for s, v in d.drift.top_psi(_TOP_PSI)],
                    "drift": asdict(d.drift),
                }
                for d in devices
            ],
            "groups": [
                {**g.drift.to_dict(), "open_alerts": [_alert_json(a) for a in alerts if a.group == g.group]}
                for g in groups
            ],
        }
        typer.echo(json.dumps(data, indent=2))
        return
    per_device = Table(title=f"Drift per device at {_time(view.now_ms)}")
    for name in ("device", "group", "reporting", "drift", "from", "word at (UTC)", f"top {_TOP_PSI} PSI"):
        per_device.add_column(name)
    for d in devices:
        word = "–" if d.drift.drifting is None else ("DRIFT" if d.drift.drifting else "ok")
        top = ", ".join(f"{s} {v:.2f}" for s, v in d.drift.top_psi(_TOP_PSI)) or "–"
        per_device.add_row(
            d.device_id,
            d.group,
            "yes" if d.reporting else "no",
            word,
            d.drift.source or "–",
            _time(d.drift.drift_ms),
            top,
        )
    console.print(per_device, highlight=False)
    per_group = Table(
        title=f"Groups (drifting: ≥ {policy.min_devices} devices and ≥ {policy.min_fraction:g} of those "
        f"reporting in {_duration(policy.window_s)})"
    )
    for name in ("group", "verdict", "reporting", "drifting", "open alerts", "reason"):
        per_group.add_column(name)
    for g in groups:
        per_group.add_row(
            g.group,
            "DRIFT" if g.drift.drifting else "ok",
            str(g.drift.reporting),
            ", ".join(g.drift.drifting_devices) or "–",
            ", ".join(a.alert_id for a in alerts if a.group == g.group) or "–",
            g.drift.reason,
        )
    console.print(per_group, highlight=False)


def feedback_cmd(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    alarm_id: str = typer.Argument(..., help="The alarm: <device_id>:<started_ms>, as in its messages."),
    confirmed: bool = typer.Option(False, "--confirmed", help="The alarm was a real fault."),
    false_alarm: bool = typer.Option(False, "--false-alarm", help="The alarm was a false alarm."),
    note: str = typer.Option("", "--note", help="Free text kept with the verdict."),
    as_json: JsonOption = False,
    db: DbOption = None,
    broker: BrokerOption = None,
    actor: ActorOption = None,
) -> None:
    """Record a technician's verdict on an alarm: --confirmed or --false-alarm (audited, an event)."""
    if confirmed == false_alarm:
        raise typer.BadParameter("give exactly one of --confirmed and --false-alarm", param_hint="verdict")
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
