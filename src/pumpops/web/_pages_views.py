"""The dashboard's pages (GET): fleet, pump, alarms, models and lineage, rollouts, drift, audit.

Each page calls the API's own read functions (``_queries`` and the read routes
called as plain functions, as the logged-in token's owner), so a page shows the
rows the API returns. Every table is also CSV (``?format=csv&table=<name>``).
May import: fastapi, store, schema, registry, rollout, errors, this part.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from pumpops.errors import PumpopsError
from pumpops.schema import CANONICAL_SENSORS
from pumpops.web import _queries as q
from pumpops.web import _read_routes as reads
from pumpops.web._context import context_of
from pumpops.web._pages_core import PREFIX, PageError, Table, csv_response, render, user_of
from pumpops.web._pages_core import when_ms as _ms

__all__ = ["page_router"]

page_router = APIRouter(prefix=PREFIX, include_in_schema=False)

_PAGE = 50
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Fmt = Annotated[str | None, Query(pattern="^(html|csv)$", alias="format")]
Name = Annotated[str | None, Query(max_length=40)]
Text = Annotated[str | None, Query(max_length=128)]


def _login(request: Request) -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/login?next={request.url.path}", status_code=303)


def _out(
    request: Request,
    user: Any,
    template: str,
    tables: list[Table],
    *,
    fmt: str | None,
    table: str | None,
    **values: Any,
) -> Response:
    if fmt == "csv":
        return csv_response(tables, table)
    return render(request, template, user, tables={t.name: t for t in tables}, **values)


@page_router.get("/")
def fleet(  # noqa: PLR0917 - one query parameter each
    request: Request,
    condition: Name = None,
    group: Text = None,
    site: Text = None,
    search: Text = None,
    offset: Offset = 0,
    fmt: Fmt = None,
    table: Name = None,
) -> Response:
    """Counts by condition, site and group; the devices worst first, one page at a time."""
    user = user_of(request)
    if user is None:
        return _login(request)
    ctx = context_of(request)
    view = reads.fleet_view(ctx)
    size = _PAGE if fmt != "csv" else max(1, len(view.devices))  # the CSV: every device that matches
    try:
        page = q.fleet_page(view, ranked=reads.ranked_devices(ctx, view), condition=condition or None,
                            group=group or None, site=site or None, search=search or None,
                            limit=size, offset=offset)  # fmt: skip
    except PumpopsError as exc:
        raise PageError(400, str(exc)) from exc
    summary = q.fleet_summary(view)
    devices = Table(
        "devices",
        (("device_id", "device"), ("condition", "condition"), ("site", "site"), ("group", "group"),
         ("model", "model"), ("health", "health"), ("last_seen", "last seen (UTC)"),
         ("alarms_raised", "alarms"), ("outbox_depth", "outbox"), ("drift", "drift")),
        [{**d, "last_seen": _ms(d["last_seen_ms"]), "drift": "drifting" if d["drifting"] else "",
          "_links": {"device_id": f"{PREFIX}/pumps/{d['device_id']}"}} for d in page["devices"]],
        total=page["total"],
    )  # fmt: skip
    groups = Table(
        "groups",
        (("group", "group"), ("devices", "devices"), ("reporting", "reporting"), ("healthy", "healthy"),
         ("stale", "stale"), ("versions", "model versions"), ("alarms_per_h", "alarms/h"),
         ("drift", "drift")),
        [_group_row(g) for g in summary["groups"]],
    )  # fmt: skip
    sites = Table("sites", (("site", "site"), ("devices", "devices")),
                  [{"site": s, "devices": n} for s, n in summary["by_site"].items()])  # fmt: skip
    return _out(request, user, "fleet.html", [devices, groups, sites], fmt=fmt, table=table, summary=summary,
                page=page, filters={"condition": condition or "", "group": group or "", "site": site or "",
                                    "search": search or ""}, conditions=q.CONDITIONS)  # fmt: skip


@page_router.get("/pumps/{device_id}")
def pump(request: Request, device_id: str, fmt: Fmt = None, table: Name = None) -> Response:
    """A pump: its state, model and slot, sensors in SI units, score against threshold, alarms, drift."""
    user = user_of(request)
    if user is None:
        return _login(request)
    principal = user[0]
    ctx = context_of(request)
    try:
        device = reads.get_device(ctx, principal, device_id)
    except PumpopsError as exc:
        raise PageError(404, str(exc)) from exc
    until = ctx.clock_us()
    telemetry = q.telemetry_series(ctx.store, device_id, sensors=None, since_us=until - 86_400_000_000,
                                   until_us=until, points=1000)  # fmt: skip
    alarms = q.alarm_page(ctx.store, device_id=device_id, limit=200)["alarms"]
    summaries = ctx.store.agent_messages(device_id=device_id, kind="summary", limit=500)
    drift = reads.get_device_drift(ctx, principal, device_id, since_us=None, limit=50)["reports"]
    recent = ctx.store.agent_messages(device_id=device_id, limit=20)
    periods = _alarm_periods(alarms, until // 1000)
    charts = {
        "sensors": [
            {"sensor": s["sensor"], "unit": _unit(s["sensor"]), "ts": [t / 1e6 for t in s["ts_us"]],
             "values": s["values"]} for s in telemetry["series"]
        ],
        "score": _scores([r.body() for r in summaries]),
        "alarms": periods,
    }  # fmt: skip
    alarm_table = _alarm_table(alarms)
    drift_table = Table(
        "drift",
        (("at", "at (UTC)"), ("drifting", "drifting"), ("drifted", "drifted sensors"), ("psi", "PSI")),
        [{"at": _ms(r.get("ts_us", 0) // 1000), "drifting": r.get("drifting"),
          "drifted": " ".join(r.get("drifted", []) or []), "psi": json.dumps(r.get("psi"))} for r in drift],
    )  # fmt: skip
    events = Table(
        "events",
        (("at", "at (UTC)"), ("kind", "kind"), ("summary", "message")),
        [{"at": _ms(r.ts_us // 1000), "kind": r.kind, "summary": _brief(r.body())} for r in reversed(recent)],
    )
    return _out(request, user, "pump.html", [alarm_table, drift_table, events], fmt=fmt, table=table,
                device=device, charts=json.dumps(charts), telemetry=telemetry)  # fmt: skip


def _group_row(group: dict[str, Any]) -> dict[str, Any]:
    rate = group["alarms_per_h"]
    versions = " ".join(f"{k}:{v}" for k, v in sorted(group["model_versions"].items()))
    return {**group, "alarms_per_h": None if rate is None else round(rate, 2), "versions": versions}


def _unit(sensor: str) -> str:
    found = CANONICAL_SENSORS.get(sensor)
    return "" if found is None else found.unit


def _scores(bodies: list[dict[str, Any]]) -> dict[str, list[float | None]]:
    out: dict[str, list[float | None]] = {"ts": [], "p95": [], "max": [], "threshold": []}
    for body in bodies:
        score = body.get("score") or {}
        end = body.get("period_end_ms")
        if not isinstance(end, int | float) or not score:
            continue
        out["ts"].append(end / 1000)
        out["p95"].append(score.get("p95"))
        out["max"].append(score.get("max"))
        out["threshold"].append(body.get("threshold"))
    return out


def _alarm_periods(alarms: list[dict[str, Any]], now_ms: int) -> list[list[float]]:
    """``[start_s, end_s]`` of each alarm (an open alarm runs to now)."""
    periods: dict[str, list[float]] = {}
    for alarm in alarms:
        started = alarm.get("started_ms")
        if not isinstance(started, int):
            continue
        ended = alarm.get("ended_ms")
        period = periods.setdefault(str(alarm["alarm_id"]), [started / 1000, now_ms / 1000])
        if isinstance(ended, int):
            period[1] = ended / 1000
    return sorted(periods.values())


def _brief(body: dict[str, Any]) -> str:
    keys = ("event", "status", "alarm_id", "health", "model_version", "drifting", "rows")
    return ", ".join(f"{k}={body[k]}" for k in keys if k in body)[:160]


def _alarm_table(alarms: list[dict[str, Any]]) -> Table:
    rows = []
    for a in alarms:
        ack, verdict = a["acknowledged"], a["feedback"]
        actions = []
        if a["event"] == "raised" and a["alarm_id"]:
            if ack is None:
                actions.append(("acknowledge", f"{PREFIX}/alarms/{a['alarm_id']}/ack", "operator"))
            if verdict is None:
                actions.append(("confirmed", f"{PREFIX}/alarms/{a['alarm_id']}/confirmed", "operator"))
                actions.append(("false alarm", f"{PREFIX}/alarms/{a['alarm_id']}/false_alarm", "operator"))
        rows.append({
            "alarm_id": a["alarm_id"], "device_id": a["device_id"], "site": a["site"], "event": a["event"],
            "started": _ms(a["started_ms"]), "ended": _ms(a["ended_ms"]), "peak_score": a["peak_score"],
            "threshold": a["threshold"], "model": f"{a['model_name']}/{a['model_version']}",
            "acknowledged": "" if ack is None else f"{ack['by']} {_ms(ack['at_us'] // 1000)}",
            "verdict": "" if verdict is None else f"{verdict['verdict']} ({verdict['by']})",
            "_links": {"device_id": f"{PREFIX}/pumps/{a['device_id']}"}, "_actions": actions,
        })  # fmt: skip
    return Table(
        "alarms",
        (("alarm_id", "alarm"), ("device_id", "device"), ("site", "site"), ("event", "event"),
         ("started", "started (UTC)"), ("ended", "ended (UTC)"), ("peak_score", "peak score"),
         ("threshold", "threshold"), ("model", "model"), ("acknowledged", "acknowledged"),
         ("verdict", "verdict")),
        rows,
    )  # fmt: skip


@page_router.get("/alarms")
def alarms(
    request: Request,
    device_id: Text = None,
    after: Annotated[str | None, Query(max_length=64)] = None,
    fmt: Fmt = None,
    table: Name = None,
) -> Response:
    """The alarm console: newest first, acknowledge, confirm or call a false alarm (operator).

    Older pages follow the API's cursor (``after``): a deep page costs what the first does.
    """
    user = user_of(request)
    if user is None:
        return _login(request)
    try:
        page = q.alarm_page(
            context_of(request).store, device_id=device_id or None, limit=_PAGE, after=after or None
        )
    except PumpopsError as exc:
        raise PageError(400, str(exc)) from exc
    older = page.get("next") if len(page["alarms"]) == _PAGE else None
    return _out(request, user, "alarms.html", [_alarm_table(page["alarms"])], fmt=fmt, table=table,
                after=after or "", older=older, device_id=device_id or "")  # fmt: skip


@page_router.get("/models")
def models(request: Request, fmt: Fmt = None, table: Name = None) -> Response:
    """Every model version: aliases, validation, run, devices running it; each links to its lineage."""
    user = user_of(request)
    if user is None:
        return _login(request)
    ctx = context_of(request)
    try:
        versions = reads.list_models(ctx, user[0], group=None)
        problem = ""
    except PumpopsError as exc:
        versions, problem = [], f"the registry could not be read: {exc}"
    releases = reads.list_releases(ctx, user[0], group=None)
    table_models = Table(
        "models",
        (("model", "model"), ("group", "group"), ("aliases", "aliases"), ("validation", "validation"),
         ("run_id", "run"), ("devices", "devices"), ("created", "created (UTC)")),
        [{**v, "aliases": " ".join(v["aliases"]), "validation": _validation(v["validation"]),
          "created": _ms(v["created_ms"]),
          "_links": {"model": f"{PREFIX}/models/{v['name']}/{v['version']}"}} for v in versions],
    )  # fmt: skip
    table_releases = Table(
        "releases",
        (("release_id", "release"), ("model", "model"), ("group", "group"), ("targets", "targets"),
         ("created", "created (UTC)"), ("created_by", "by")),
        [{**r, "targets": " ".join(r["targets"]), "created": _ms(r["created_us"] // 1000)} for r in releases],
    )  # fmt: skip
    return _out(
        request, user, "models.html", [table_models, table_releases], fmt=fmt, table=table, problem=problem
    )


def _validation(value: object) -> str:
    if isinstance(value, dict):
        return str(value.get("verdict") or value.get("status") or ("passed" if value.get("passed") else ""))
    return "" if value is None else str(value)


@page_router.get("/models/{name}/{version}")
def model(request: Request, name: str, version: int, fmt: Fmt = None, table: Name = None) -> Response:
    """A version's lineage: training data digest → run → version → validation → releases → devices."""
    user = user_of(request)
    if user is None:
        return _login(request)
    try:
        found = reads.get_model(context_of(request), user[0], name, version)
    except PumpopsError as exc:
        raise PageError(404, str(exc)) from exc
    devices = Table("devices", (("device_id", "device"),),
                    [{"device_id": d, "_links": {"device_id": f"{PREFIX}/pumps/{d}"}}
                     for d in found["device_ids"]])  # fmt: skip
    tags = Table("tags", (("tag", "tag"), ("value", "value")),
                 [{"tag": k, "value": v} for k, v in sorted(found["tags"].items())])  # fmt: skip
    return _out(request, user, "model.html", [devices, tags], fmt=fmt, table=table, model=found,
                validation=json.dumps(found["validation"], indent=1, default=str),
                releases=json.dumps(found["releases"], indent=1, default=str))  # fmt: skip


@page_router.get("/rollouts")
def rollouts(request: Request, fmt: Fmt = None, table: Name = None) -> Response:
    """Rollouts, newest first: wave progress; pause and resume (operator), abort (admin)."""
    user = user_of(request)
    if user is None:
        return _login(request)
    rows = []
    for r in reversed(reads.list_rollouts(context_of(request), user[0], group=None, active_only=False)):
        actions = []
        if r["status"] == "running":
            actions.append(("pause", f"{PREFIX}/rollouts/{r['rollout_id']}/pause", "operator"))
        if r["status"] == "paused":
            actions.append(("resume", f"{PREFIX}/rollouts/{r['rollout_id']}/resume", "operator"))
        if r["status"] in ("running", "paused"):
            actions.append(("abort", f"{PREFIX}/rollouts/{r['rollout_id']}/abort", "admin"))
        sent, total = r["devices_sent"], sum(r["wave_sizes"])
        rows.append({**r, "progress": f"wave {r['wave']}/{r['waves']}, {sent}/{total} devices",
                     "percent": 0 if total == 0 else round(100 * sent / total),
                     "sizes": " ".join(str(s) for s in r["wave_sizes"]),
                     "created": _ms(r["created_at_us"] // 1000), "updated": _ms(r["updated_at_us"] // 1000),
                     "_actions": actions})  # fmt: skip
    table_rollouts = Table(
        "rollouts",
        (("rollout_id", "rollout"), ("release", "release"), ("group", "group"), ("status", "status"),
         ("progress", "progress"), ("sizes", "wave sizes"), ("created", "started (UTC)"),
         ("updated", "updated (UTC)")),
        rows,
    )  # fmt: skip
    return _out(request, user, "rollouts.html", [table_rollouts], fmt=fmt, table=table)


@page_router.get("/drift")
def drift(request: Request, fmt: Fmt = None, table: Name = None) -> Response:
    """Each group's drift verdict and drifting pumps now, and the fleet drift alerts over time."""
    user = user_of(request)
    if user is None:
        return _login(request)
    found = reads.get_drift(context_of(request), user[0], group=None)
    groups = Table(
        "groups",
        (("group", "group"), ("verdict", "verdict"), ("reason", "reason"), ("drifting", "drifting pumps")),
        [{"group": g.get("group"), "verdict": g["verdict"], "reason": g.get("reason", ""),
          "drifting": " ".join(g["drifting_devices"])} for g in found["groups"]],
    )  # fmt: skip
    alerts = Table(
        "alerts",
        (("alert_id", "alert"), ("group", "group"), ("kind", "kind"), ("opened", "opened (UTC)"),
         ("closed", "closed (UTC)"), ("detail", "detail")),
        [{**a, "opened": _ms(a["opened_at_us"] // 1000),
          "closed": "" if a["closed_at_us"] is None else _ms(a["closed_at_us"] // 1000),
          "detail": json.dumps(a["detail"])[:200]} for a in reversed(found["alerts"])],
    )  # fmt: skip
    return _out(request, user, "drift.html", [groups, alerts], fmt=fmt, table=table)


@page_router.get("/audit")
def audit(  # noqa: PLR0917 - one query parameter each
    request: Request,
    subject: Text = None,
    actor: Text = None,
    action: Text = None,
    verify: bool = False,
    fmt: Fmt = None,
    table: Name = None,
) -> Response:
    """The audit log, newest first, filtered by subject, actor or action; verify the chain."""
    user = user_of(request)
    if user is None:
        return _login(request)
    ctx = context_of(request)
    entries = reads.list_audit(ctx, user[0], subject=subject or None, since_seq=None, since_us=None,
                               limit=500)  # fmt: skip
    chosen = [e for e in reversed(entries) if (not actor or e["actor"] == actor)
              and (not action or e["action"].startswith(action))]  # fmt: skip
    table_audit = Table(
        "audit",
        (("seq", "seq"), ("at", "at (UTC)"), ("actor", "actor"), ("action", "action"),
         ("subject", "subject"), ("payload", "payload"), ("hash", "hash")),
        [{**e, "at": _ms(e["time_us"] // 1000), "payload": json.dumps(e["payload"])[:200],
          "hash": e["hash"][:16]} for e in chosen],
    )  # fmt: skip
    report = reads.verify_audit(ctx, user[0], head=None) if verify else None
    return _out(request, user, "audit.html", [table_audit], fmt=fmt, table=table, report=report,
                filters={"subject": subject or "", "actor": actor or "", "action": action or ""})  # fmt: skip
