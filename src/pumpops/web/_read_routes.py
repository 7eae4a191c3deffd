"""The API's read endpoints (role ``viewer``): fleet, devices, telemetry, alarms, models, rollouts, audit.

Also releases, aliases, drift and feedback.
Each route parses and bounds its parameters (FastAPI answers 422 with the
reason for a malformed one), calls one function of ``_queries`` or of the part
that owns the data, and returns JSON. Page sizes and point budgets are clamped,
never refused: ``limit`` to 1..500, ``points`` to at most 10,000 per series.
May import: fastapi, monitoring, audit, store, registry, rollout, errors, this part.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query

from pumpops.audit import verify_chain
from pumpops.errors import NotFoundError, PumpopsError
from pumpops.monitoring import MonitoringService
from pumpops.web import _queries as q
from pumpops.web._context import ApiContext, Ctx, Viewer

__all__ = ["fleet_view", "read_router"]

read_router = APIRouter(prefix="/api")

Limit = Annotated[int, Query(ge=1, description="Rows per page (values above 500 are clamped).")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip.")]
TimeUs = Annotated[int | None, Query(ge=0, le=2**62, description="Microseconds since the Unix epoch (UTC).")]
_DAY_US = 86_400_000_000
_VIEW_TTL_S = 2.0
_view_lock = threading.Lock()
_log = logging.getLogger("pumpops.web")


def _clamp(limit: int) -> int:
    return min(limit, 500)


def _compute_view(context: ApiContext) -> Any:
    started = time.monotonic()
    view = MonitoringService(context.store, context.sink, context.settings.monitoring).view(
        context.clock_us()
    )
    ranked = q.rank_devices(view)
    context.cache["fleet_view_cost"] = (time.monotonic() - started, None)
    context.cache["fleet_ranked"] = (started, (view, ranked))
    context.cache["fleet_view"] = (started, view)
    return view


def ranked_devices(context: ApiContext, view: Any) -> Any:
    """:func:`~pumpops.web._queries.rank_devices` of ``view``, computed once per view."""
    cached = context.cache.get("fleet_ranked")
    if cached is not None and cached[1][0] is view:
        return cached[1][1]
    return q.rank_devices(view)


def _refresh(context: ApiContext) -> None:
    try:
        _compute_view(context)
    except PumpopsError as exc:  # the store is down: keep serving the last view; the next request retries
        _log.warning("fleet view refresh failed: %s", exc)
    finally:
        context.cache.pop("fleet_view_refreshing", None)


def fleet_view(context: ApiContext) -> Any:
    """The fleet view (:class:`~pumpops.monitoring.FleetView`), shared by every request of a context.

    The first request computes it; later ones get the newest computed view at
    once, and an old one starts a recomputation in the background (stale while
    revalidating): a page never waits for the whole fleet to be read again, and
    concurrent requests share one computation. "Old" is 2 s, or four times the
    last computation's duration if that is longer (so that recomputing takes at
    most a quarter of the process's time, however large the fleet).
    """
    with _view_lock:
        cached = context.cache.get("fleet_view")
        if cached is None:
            return _compute_view(context)
        cost = context.cache.get("fleet_view_cost", (0.0, None))[0]
        stale_after_s = max(_VIEW_TTL_S, 4 * cost)
        if time.monotonic() - cached[0] >= stale_after_s and "fleet_view_refreshing" not in context.cache:
            context.cache["fleet_view_refreshing"] = (time.monotonic(), None)
            threading.Thread(target=_refresh, args=(context,), name="fleet-view", daemon=True).start()
        return cached[1]


# -- fleet and devices ------------------------------------------------------------------------


@read_router.get("/fleet", tags=["fleet"], summary="Fleet counts by condition, site and group")
def get_fleet(ctx: Ctx, _: Viewer) -> dict[str, Any]:
    """Devices by condition (worst first), by site, and per group its models, health and drift verdict."""
    return q.fleet_summary(fleet_view(ctx))


@read_router.get("/devices", tags=["fleet"], summary="Devices, worst condition first, one page")
def list_devices(  # noqa: PLR0917 - one query parameter each
    ctx: Ctx,
    _: Viewer,
    condition: Annotated[str | None, Query(description=f"One of {', '.join(q.CONDITIONS)}.")] = None,
    group: str | None = None,
    site: str | None = None,
    search: Annotated[str | None, Query(max_length=64, description="Part of a device id.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Status, model and version, health, stale/offline, outbox depth and drift of each device."""
    view = fleet_view(ctx)
    return q.fleet_page(
        view,
        ranked=ranked_devices(ctx, view),
        condition=condition,
        group=group,
        site=site,
        search=search,
        limit=_clamp(limit),
        offset=offset,
    )


@read_router.get("/devices/{device_id}", tags=["fleet"], summary="One device")
def get_device(ctx: Ctx, _: Viewer, device_id: str) -> dict[str, Any]:
    """The device's row, its registration and its newest state message as sent."""
    view = fleet_view(ctx)
    device = next((d for d in view.devices if d.device_id == device_id), None)
    if device is None:
        raise NotFoundError(f"device {device_id!r} is neither registered nor reporting")
    newest = ctx.store.agent_messages(device_id=device_id, kind="state", limit=1)
    return {
        **q.device_row(device),
        "state": newest[-1].body() if newest else None,
        "state_ts_us": newest[-1].ts_us if newest else None,
    }


@read_router.get("/devices/{device_id}/telemetry", tags=["telemetry"], summary="Readings, downsampled")
def get_telemetry(  # noqa: PLR0917 - one query parameter each
    ctx: Ctx,
    _: Viewer,
    device_id: str,
    sensor: Annotated[list[str] | None, Query(description="Canonical sensor names (default: all).")] = None,
    since_us: TimeUs = None,
    until_us: TimeUs = None,
    points: Annotated[
        int, Query(ge=2, description="Most points per series (min/max per bucket); clamped to 10,000.")
    ] = 2000,
) -> dict[str, Any]:
    """Readings of ``[since_us, until_us)`` (default: the last 24 h) in SI units, at most ``points`` each."""
    q.require_device(ctx.store, device_id)
    until = ctx.clock_us() if until_us is None else until_us
    since = until - _DAY_US if since_us is None else since_us
    return q.telemetry_series(
        ctx.store, device_id, sensors=sensor, since_us=since, until_us=until, points=points
    )


# -- alarms -----------------------------------------------------------------------------------


@read_router.get("/alarms", tags=["alarms"], summary="Alarm messages, newest first")
def list_alarms(  # noqa: PLR0917 - one query parameter each
    ctx: Ctx,
    _: Viewer,
    device_id: str | None = None,
    since_us: TimeUs = None,
    until_us: TimeUs = None,
    limit: Limit = 50,
    offset: Offset = 0,
    after: Annotated[
        str | None, Query(max_length=200, description="The previous page's 'next': the page after it.")
    ] = None,
) -> dict[str, Any]:
    """Alarms raised and cleared, each with its acknowledgement and verdict; page on with ``after=<next>``."""
    return q.alarm_page(
        ctx.store,
        device_id=device_id,
        since_us=since_us,
        until_us=until_us,
        limit=_clamp(limit),
        offset=offset,
        after=after,
    )


@read_router.get("/feedback", tags=["alarms"], summary="Technicians' verdicts on alarms")
def list_feedback(
    ctx: Ctx, _: Viewer, device_id: str | None = None, since_us: TimeUs = None
) -> list[dict[str, Any]]:
    """The verdicts the retrain chain counts (the newest per alarm), oldest first."""
    return [
        {"alarm_id": f.alarm_id, "device_id": f.device_id, "verdict": f.verdict, "actor": f.actor,
         "note": f.note, "at_us": f.at_us}
        for f in ctx.store.feedback(device_id=device_id, since_us=since_us)
    ]  # fmt: skip


# -- models and releases ----------------------------------------------------------------------


def _version(info: Any, devices: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "model": info.ref,
        "name": info.name,
        "version": info.version,
        "group": info.group,
        "aliases": list(info.aliases),
        "validation": info.validation,
        "archived": info.archived,
        "run_id": info.run_id,
        "created_ms": info.created_ms,
        "devices": len(devices.get(f"{info.name}/{info.version}", [])),
    }


def _devices_by_model(ctx: ApiContext) -> dict[str, list[str]]:
    return {f"{m.model_name}/{m.model_version}": list(m.device_ids) for m in fleet_view(ctx).models}


@read_router.get("/models", tags=["models"], summary="Model versions with aliases and device counts")
def list_models(ctx: Ctx, _: Viewer, group: str | None = None) -> list[dict[str, Any]]:
    """Every registered model version (of one group), its aliases, validation and the devices running it."""
    devices = _devices_by_model(ctx)
    return [_version(info, devices) for info in ctx.registry().list_versions(group=group)]


@read_router.get("/models/{name}/{version}", tags=["models"], summary="One model version and its lineage")
def get_model(ctx: Ctx, _: Viewer, name: str, version: int) -> dict[str, Any]:
    """The version, its tags (dataset and config digests, code revision), its releases and devices."""
    registry = ctx.registry()
    info = registry.get(name, version)
    devices = _devices_by_model(ctx)
    return {
        **_version(info, devices),
        "tags": dict(info.tags),
        "source": info.source,
        "releases": registry.releases_of(info),
        "device_ids": devices.get(info.ref, []),
    }


@read_router.get("/aliases/{group}", tags=["models"], summary="Alias history of a group")
def alias_history(ctx: Ctx, _: Viewer, group: str) -> list[dict[str, Any]]:
    """Every period an alias of the group pointed at a version, oldest first."""
    return [
        {"alias": a.alias, "model": f"{a.model_name}/{a.version}", "from_us": a.from_us, "to_us": a.to_us,
         "set_by": a.set_by, "reason": a.reason}
        for a in ctx.store.alias_history(group=group)
    ]  # fmt: skip


@read_router.get("/releases", tags=["releases"], summary="Releases")
def list_releases(ctx: Ctx, _: Viewer, group: str | None = None) -> list[dict[str, Any]]:
    """Every release (of one group), oldest first, with what was built per target."""
    return [
        {"release_id": r.release_id, "model": f"{r.model_name}/{r.version}", "group": r.group,
         "targets": list(r.targets), "created_us": r.created_us, "created_by": r.created_by,
         "record": json.loads(r.record_json)}
        for r in ctx.store.releases(group=group)
    ]  # fmt: skip


# -- rollouts ---------------------------------------------------------------------------------


def rollout_summary(row: Any, state: Any) -> dict[str, Any]:
    """A rollout as a row: release, group, status, wave, sizes."""
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
        "created_at_us": row.created_at_us,
        "updated_at_us": row.updated_at_us,
    }


@read_router.get("/rollouts", tags=["rollouts"], summary="Rollouts, oldest first")
def list_rollouts(
    ctx: Ctx, who: Viewer, group: str | None = None, active_only: bool = False
) -> list[dict[str, Any]]:
    """Every rollout (of one group, or only active ones) with its wave and status."""
    service = ctx.rollouts(who.name)
    return [
        rollout_summary(row, state) for row, state in service.rollouts(group=group, active_only=active_only)
    ]


@read_router.get("/rollouts/{rollout_id}", tags=["rollouts"], summary="One rollout, its gate and history")
def get_rollout(ctx: Ctx, who: Viewer, rollout_id: str) -> dict[str, Any]:
    """The rollout's state, what the current wave's gate says now, and its history."""
    service = ctx.rollouts(who.name)
    state = service.get(rollout_id)
    verdict = service.verdict(rollout_id)
    return {
        **rollout_summary(service.record(rollout_id), state),
        "policy": state.policy.to_dict(),
        "gate_now": None if verdict is None else verdict.to_dict(),
        "history": state.to_dict()["history"],
    }


# -- drift ------------------------------------------------------------------------------------


@read_router.get("/drift", tags=["drift"], summary="Drift per group, and fleet drift alerts")
def get_drift(ctx: Ctx, _: Viewer, group: str | None = None) -> dict[str, Any]:
    """Each group's drift verdict now, its drifting devices, and its drift alerts (open and closed)."""
    view = fleet_view(ctx)
    groups = [g for g in view.groups if group is None or g.group == group]
    return {
        "window_s": view.window_s,
        "groups": [
            {
                **g.drift.to_dict(),
                "verdict": g.drift.verdict,
                "drifting_devices": list(g.drift.drifting_devices),
            }
            for g in groups
        ],
        "alerts": [
            {"alert_id": a.alert_id, "group": a.group, "kind": a.kind, "opened_at_us": a.opened_at_us,
             "closed_at_us": a.closed_at_us, "detail": json.loads(a.detail_json)}
            for a in ctx.store.fleet_alerts(group=group)
        ],
    }  # fmt: skip


@read_router.get("/drift/{device_id}", tags=["drift"], summary="A pump's drift reports over time")
def get_device_drift(
    ctx: Ctx, _: Viewer, device_id: str, since_us: TimeUs = None, limit: Limit = 200
) -> dict[str, Any]:
    """The device's drift reports (PSI per sensor, change test), oldest first, the newest ``limit``."""
    reports = ctx.store.agent_messages(
        device_id=device_id, kind="drift", since_us=since_us, limit=_clamp(limit)
    )
    return {"device_id": device_id, "reports": [{"ts_us": r.ts_us, **r.body()} for r in reports]}


# -- audit ------------------------------------------------------------------------------------


@read_router.get("/audit", tags=["audit"], summary="Audit entries")
def list_audit(
    ctx: Ctx,
    _: Viewer,
    subject: str | None = None,
    since_seq: Annotated[int | None, Query(ge=1)] = None,
    since_us: TimeUs = None,
    limit: Limit = 100,
) -> list[dict[str, Any]]:
    """The newest ``limit`` entries selected, oldest first, with their hashes."""
    entries = ctx.store.audit_entries(
        since_seq=since_seq, since_us=since_us, subject=subject, limit=_clamp(limit)
    )
    return [
        {"seq": e.seq, "time_us": e.time_us, "actor": e.actor, "action": e.action, "subject": e.subject,
         "payload": json.loads(e.payload_json), "prev_hash": e.prev_hash, "hash": e.hash}
        for e in entries
    ]  # fmt: skip


@read_router.get("/audit/verify", tags=["audit"], summary="Verify the audit chain")
def verify_audit(
    ctx: Ctx, _: Viewer, head: Annotated[str | None, Query(pattern="^[0-9a-f]{64}$")] = None
) -> dict[str, Any]:
    """Walk the whole chain (as ``pumpops audit verify``); ``ok`` false names the first bad entry."""
    report = verify_chain(ctx.store.audit_entries(), expected_head=head)
    return {
        "ok": report.ok,
        "count": report.count,
        "head_seq": report.head_seq,
        "head_hash": report.head_hash,
        "bad_seq": report.bad_seq,
        "kind": None if report.kind is None else str(report.kind),
        "summary": report.summary(),
    }
