"""Pins the public API of ``pumpops.web``: a change to this list is a change users (and the dashboard) see."""

from __future__ import annotations

import pumpops.web

_PUBLIC = {
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
}


def test_web_exports_exactly_the_pinned_names_and_each_loads() -> None:
    assert set(pumpops.web.__all__) == _PUBLIC
    for name in sorted(_PUBLIC):
        assert hasattr(pumpops.web, name), name
