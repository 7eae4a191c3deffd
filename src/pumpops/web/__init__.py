"""The hub's HTTP API: JSON over FastAPI with roles, a live event stream, Prometheus metrics.

``pumpops hub serve`` mounts it (:func:`mount_api`) on the hub's application
with an :class:`ApiContext` the hub builds (store, event sink, rollout service,
registry); this part builds none of them, so it sits below ``hub`` and above the
parts it reads. ``_auth.py``: tokens and roles (pure); ``_context.py``: the
context and the token-checking dependencies; ``_queries.py``: the read queries
as plain functions (the dashboard's pages call the same); ``_read_routes.py``,
``_write_routes.py``: the endpoints (writes run the same code path as the
commands, as the token's owner, audited); ``_stream.py``: ``GET /api/events``
(server-sent events); ``_metrics.py``: ``/metrics``; ``_downsample.py``: min/max
downsampling to a point budget; ``_errors.py``: JSON errors. See ``docs/api.md``
and ADR 0014.
May import: fastapi, starlette, prometheus_client, numpy, and every part below ``hub``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pumpops._lazy import lazy_exports

if TYPE_CHECKING:
    from pumpops.web._auth import ROLES, Principal, hash_token, new_token, parse_bearer, role_allows
    from pumpops.web._context import ApiContext
    from pumpops.web._downsample import minmax
    from pumpops.web._metrics import HubMetrics, StoreWriteTimer
    from pumpops.web._mount import DOCS_URL, OPENAPI_URL, mount_api
    from pumpops.web._queries import (
        CONDITIONS,
        alarm_page,
        device_condition,
        device_row,
        fleet_page,
        fleet_summary,
        rank_devices,
        telemetry_series,
    )
    from pumpops.web._read_routes import fleet_view
    from pumpops.web._write_routes import acknowledge_alarm

__all__ = [
    "CONDITIONS",
    "DOCS_URL",
    "OPENAPI_URL",
    "ROLES",
    "ApiContext",
    "HubMetrics",
    "Principal",
    "StoreWriteTimer",
    "acknowledge_alarm",
    "alarm_page",
    "device_condition",
    "device_row",
    "fleet_page",
    "fleet_summary",
    "fleet_view",
    "hash_token",
    "minmax",
    "mount_api",
    "new_token",
    "parse_bearer",
    "rank_devices",
    "role_allows",
    "telemetry_series",
]

_LAZY = {
    **dict.fromkeys(
        ("ROLES", "Principal", "hash_token", "new_token", "parse_bearer", "role_allows"), "pumpops.web._auth"
    ),
    "ApiContext": "pumpops.web._context",
    "minmax": "pumpops.web._downsample",
    **dict.fromkeys(("HubMetrics", "StoreWriteTimer"), "pumpops.web._metrics"),
    **dict.fromkeys(("DOCS_URL", "OPENAPI_URL", "mount_api"), "pumpops.web._mount"),
    **dict.fromkeys(
        (
            "CONDITIONS",
            "alarm_page",
            "device_condition",
            "device_row",
            "fleet_page",
            "fleet_summary",
            "rank_devices",
            "telemetry_series",
        ),
        "pumpops.web._queries",
    ),
    "fleet_view": "pumpops.web._read_routes",
    "acknowledge_alarm": "pumpops.web._write_routes",
}

__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
