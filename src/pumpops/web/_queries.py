"""The API's read queries as plain functions over a store: what the routes (and dashboard pages) show.

Each function takes the store (or a fleet view) and returns JSON-ready dicts
and lists; the routes only parse parameters and call them, so a server-rendered
page can call the same function for the same rows. A device's one-word
condition (:func:`device_condition`) orders the fleet worst first.
May import: numpy, store, monitoring, audit, errors, this part.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from pumpops.errors import InputError, NotFoundError

if TYPE_CHECKING:
    from pumpops.monitoring import DeviceView, FleetView
    from pumpops.store import TelemetryStore

__all__ = [
    "CONDITIONS",
    "alarm_page",
    "device_condition",
    "device_row",
    "fleet_page",
    "fleet_summary",
    "rank_devices",
    "telemetry_series",
]

#: A device's condition, worst first: the fleet list's default order.
CONDITIONS: Final = ("offline", "unhealthy", "alarming", "stale", "drifting", "ok", "never_seen")

#: The most points per series the telemetry endpoint returns, whatever is asked.
MAX_POINTS: Final = 10_000


def device_condition(device: DeviceView) -> str:  # noqa: PLR0911 - one return per condition
    """One word for a device, worst first in :data:`CONDITIONS`.

    ``never_seen``: registered, no message ever; ``offline``: silent in the
    window; ``unhealthy``: its model's health check is not ``ok``; ``alarming``:
    it raised alarms in the window; ``stale``: its model is past its maximum
    age without an update check; ``drifting``: its drift test fires; else ``ok``.
    """
    if device.last_seen_ms is None:
        return "never_seen"
    if not device.reporting:
        return "offline"
    if device.health is not None and device.health != "ok":
        return "unhealthy"
    if device.alarms.alarms_raised > 0:
        return "alarming"
    if device.stale:
        return "stale"
    if device.drifting:
        return "drifting"
    return "ok"


def device_row(device: DeviceView) -> dict[str, Any]:
    """A device as a row: identity, condition, model and slot facts, outbox, drift."""
    return {
        "device_id": device.device_id,
        "site": device.site,
        "group": device.group,
        "registered": device.registered,
        "condition": device_condition(device),
        "status": device.status,
        "last_seen_ms": device.last_seen_ms,
        "reporting": device.reporting,
        "model": device.model,
        "model_name": device.model_name,
        "model_version": device.model_version,
        "health": device.health,
        "stale": device.stale,
        "calibration": device.calibration,
        "outbox_depth": device.outbox_depth,
        "last_update_error": device.last_update_error,
        "alarms_raised": device.alarms.alarms_raised,
        "alarms_per_h": device.alarms.rate_per_h,
        "score_p95_max": device.scores.p95_max,
        "drifting": device.drifting,
        "drift": {
            "drifting": device.drift.drifting,
            "drift_ms": device.drift.drift_ms,
            "source": device.drift.source,
            "drifted_sensors": list(device.drift.drifted),
            "psi": device.drift.psi,
            "change_fired": device.drift.change_fired,
        },
    }


def fleet_summary(view: FleetView) -> dict[str, Any]:
    """Counts of the fleet by condition, site and group, and per group its models and drift verdict."""
    conditions = Counter(device_condition(d) for d in view.devices)
    return {
        "now_ms": view.now_ms,
        "window_s": view.window_s,
        "devices": len(view.devices),
        "by_condition": {c: conditions.get(c, 0) for c in CONDITIONS},
        "by_site": dict(sorted(Counter(d.site for d in view.devices).items())),
        "groups": [
            {
                "group": g.group,
                "devices": len(g.device_ids),
                "reporting": g.reporting,
                "healthy": g.healthy,
                "stale": g.stale,
                "model_versions": g.model_versions,
                "alarms_per_h": g.alarms.rate_per_h,
                "drift": g.drift.verdict,
                "drift_reason": g.drift.reason,
            }
            for g in view.groups
        ],
    }


def rank_devices(view: FleetView) -> list[tuple[str, DeviceView]]:
    """Every device with its condition, worst condition first, then by id (what a page is cut from)."""
    rank = {c: i for i, c in enumerate(CONDITIONS)}
    conditioned = [(device_condition(d), d) for d in view.devices]
    conditioned.sort(key=lambda c: (rank[c[0]], c[1].device_id))
    return conditioned


def fleet_page(
    view: FleetView,
    *,
    ranked: Sequence[tuple[str, DeviceView]] | None = None,
    condition: str | None = None,
    group: str | None = None,
    site: str | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """One page of devices, worst condition first (then by id), with the total that matched.

    Args:
        view: the fleet view.
        ranked: :func:`rank_devices` of ``view``, if already computed (it is the costly part).
        condition: only devices in this condition.
        group: only this group's.
        site: only this site's.
        search: only devices whose id contains this (any case).
        limit: the page's size.
        offset: devices skipped before the page.

    Raises:
        InputError: ``condition`` is not one of :data:`CONDITIONS`.
    """
    if condition is not None and condition not in CONDITIONS:
        raise InputError(f"condition {condition!r}: must be one of {', '.join(CONDITIONS)}")
    needle = None if search is None else search.lower()
    chosen = [
        d
        for c, d in (rank_devices(view) if ranked is None else ranked)
        if (condition is None or c == condition)
        and (group is None or d.group == group)
        and (site is None or d.site == site)
        and (needle is None or needle in d.device_id.lower())
    ]
    return {
        "total": len(chosen),
        "limit": limit,
        "offset": offset,
        "devices": [device_row(d) for d in chosen[offset : offset + limit]],
    }


def telemetry_series(
    store: TelemetryStore,
    device_id: str,
    *,
    sensors: Sequence[str] | None,
    since_us: int,
    until_us: int,
    points: int,
) -> dict[str, Any]:
    """A device's readings in ``[since_us, until_us)``, each sensor downsampled to ``points`` (min/max).

    Raises:
        InputError: the range is empty or reversed, or ``points`` is below 2.
        NotFoundError: the device is not registered, or a sensor has no reading in the store at all.
    """
    if until_us <= since_us:
        raise InputError(f"time range: 'until' ({until_us} µs) must be after 'since' ({since_us} µs)")
    if points < 2:
        raise InputError("points: at least 2")
    budget = min(points, MAX_POINTS)
    # min/max per bucket computed by the database (same points as :func:`minmax` on every row).
    cut = store.query_minmax(device_id, sensors=sensors, since_us=since_us, until_us=until_us, points=budget)
    series = []
    raw = 0
    for sensor, ts, kept, readings in cut:
        raw += readings
        series.append(
            {"sensor": sensor, "ts_us": ts.astype(np.int64).tolist(), "values": kept.astype(float).tolist()}
        )
    return {
        "device_id": device_id,
        "since_us": since_us,
        "until_us": until_us,
        "points_per_series": budget,
        "clamped": budget != points,
        "raw_readings": raw,
        "series": series,
    }


def alarm_page(
    store: TelemetryStore,
    *,
    device_id: str | None = None,
    since_us: int | None = None,
    until_us: int | None = None,
    limit: int = 50,
    offset: int = 0,
    after: str | None = None,
) -> dict[str, Any]:
    """One page of alarm messages, newest first, each with its acknowledgement and technician verdict.

    ``after`` is the ``next`` of the previous page (``<ts_us>:<msg_id>`` of its
    last row): the page that follows it, at the same cost at any depth.

    Raises:
        InputError: the time range is reversed, or ``after`` is not a ``next`` this function gave.
    """
    if since_us is not None and until_us is not None and until_us <= since_us:
        raise InputError("time range: 'until' must be after 'since'")
    before = None
    if after is not None:
        ts_text, sep, msg_id = after.partition(":")
        if not sep or not ts_text.isdigit() or not msg_id or len(ts_text) > 19:
            raise InputError(f"after {after!r}: give the 'next' of the previous page (<ts_us>:<msg_id>)")
        before = (int(ts_text), msg_id)
    rows = store.alarm_messages(
        device_id=device_id, since_us=since_us, until_us=until_us, limit=limit, offset=offset, before=before
    )
    alarms = []
    for row in rows:
        body = _object(row.body)
        alarms.append(
            {
                "msg_id": row.msg_id,
                "alarm_id": body.get("alarm_id"),
                "device_id": row.device_id,
                "site": row.site,
                "ts_us": int(row.ts_us),
                "received_at_us": int(row.received_at_us),
                "event": body.get("event"),
                "started_ms": body.get("started_ms"),
                "ended_ms": body.get("ended_ms"),
                "peak_score": body.get("peak_score"),
                "threshold": body.get("threshold"),
                "model_name": body.get("model_name"),
                "model_version": body.get("model_version"),
            }
        )
    ids = [str(a["alarm_id"]) for a in alarms if a["alarm_id"]]
    acks = store.alarm_acks(ids)
    oldest = min(
        (int(a["started_ms"]) * 1000 for a in alarms if isinstance(a["started_ms"], int)), default=None
    )
    verdicts = {f.alarm_id: f for f in store.feedback(since_us=oldest)} if alarms else {}
    for alarm in alarms:
        ack = acks.get(str(alarm["alarm_id"]))
        verdict = verdicts.get(str(alarm["alarm_id"]))
        alarm["acknowledged"] = (
            None if ack is None else {"by": ack.actor, "at_us": ack.at_us, "note": ack.note}
        )
        alarm["feedback"] = (
            None
            if verdict is None
            else {
                "verdict": verdict.verdict,
                "by": verdict.actor,
                "at_us": verdict.at_us,
                "note": verdict.note,
            }
        )
    last = rows[-1] if len(rows) == limit and rows else None
    return {
        "limit": limit,
        "offset": offset,
        "alarms": alarms,
        "next": None if last is None else f"{int(last.ts_us)}:{last.msg_id}",
    }


def require_device(store: TelemetryStore, device_id: str) -> None:
    """Raise :class:`NotFoundError` unless ``device_id`` is registered."""
    if store.device(device_id) is None:
        raise NotFoundError(f"device {device_id!r} is not registered (see GET /api/devices)")


def _object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
