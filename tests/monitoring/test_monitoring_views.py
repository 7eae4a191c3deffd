"""Fleet views from agent messages: per device, per group, per model (pure, no store)."""

from __future__ import annotations

import json

import pytest

from pumpops.fleet import Device
from pumpops.monitoring import UNREGISTERED_GROUP, DriftPolicy, build_fleet_view

from ._monitoring_records import HOUR_MS, MINUTE_MS, T0_MS, Agent

NOW = T0_MS + 24 * HOUR_MS
POLICY = DriftPolicy()
DEVICES = [
    Device("p-1", "site-a", "acme-ansi", "g1"),
    Device("p-2", "site-a", "acme-ansi", "g1"),
    Device("p-3", "site-b", "sakura-esp", "g2"),
]


def test_fleet_view_of_a_small_fleet() -> None:
    p1, p2, p3 = Agent("p-1"), Agent("p-2", version=2), Agent("p-3", "site-b", model="pumpops-g2")
    records = [
        p1.state(NOW - 30 * MINUTE_MS),
        p1.summary(NOW - 2 * HOUR_MS, alarms=1, p50=1.0, p95=2.0, top=3.0, mean=1.0, windows=100),
        p1.summary(NOW - 1 * HOUR_MS, alarms=2, p50=3.0, p95=5.0, top=9.0, mean=2.0, windows=300),
        p1.summary(NOW - 10 * HOUR_MS, alarms=50),  # outside the 6 h window
        p1.drift(NOW - 20 * MINUTE_MS, alert=True),
        p2.state(NOW - 10 * MINUTE_MS, health="failed", stale=True),
        p2.summary(NOW - 1 * HOUR_MS, alarms=0, period_ms=2 * HOUR_MS),
        p3.state(NOW - 9 * HOUR_MS),  # silent for 9 h: state kept, not reporting
    ]
    view = build_fleet_view(records, DEVICES, now_ms=NOW, policy=POLICY)
    d1, d2, d3 = view.devices
    assert (d1.device_id, d1.group, d1.registered, d1.reporting, d1.last_seen_ms) == (
        "p-1",
        "g1",
        True,
        True,
        NOW - 20 * MINUTE_MS,
    )
    assert (d1.model, d1.status, d1.health, d1.healthy, d1.stale, d1.outbox_depth) == (
        "pumpops-g1/1",
        "detecting",
        "ok",
        True,
        False,
        3,
    )
    assert (d1.alarms.summaries, d1.alarms.alarms_raised, d1.alarms.hours, d1.alarms.rate_per_h) == (
        2,
        3,
        2.0,
        1.5,
    )
    assert (d1.scores.p50_mean, d1.scores.p95_max, d1.scores.max, d1.scores.mean) == (2.0, 5.0, 9.0, 1.75)
    assert d1.drifting
    assert d1.drift.drifted == ("flow_rate",)
    assert (d2.model, d2.healthy, d2.stale, d2.alarms.rate_per_h, d2.drifting) == (
        "pumpops-g1/2",
        False,
        True,
        0.0,
        False,
    )
    assert (d3.reporting, d3.model, d3.alarms.rate_per_h, d3.scores.p50_mean) == (
        False,
        "pumpops-g2/1",
        None,
        None,
    )

    g1, g2 = view.groups
    assert (g1.group, g1.device_ids, g1.reporting, g1.healthy, g1.stale) == ("g1", ("p-1", "p-2"), 2, 1, 1)
    assert g1.model_versions == {"pumpops-g1/1": 1, "pumpops-g1/2": 1}
    assert (g1.alarms.alarms_raised, g1.alarms.hours, g1.alarms.rate_per_h) == (3, 4.0, 0.75)
    assert g1.scores.p95_max == 5.0
    assert (g1.drift.drifting, g1.drift.drifting_devices) == (False, ("p-1",))  # 1 < min_devices
    assert (g2.reporting, g2.drift.reporting, g2.alarms.rate_per_h) == (0, 0, None)
    assert view.group("g2") is g2
    assert view.group("nope") is None
    assert [d.device_id for d in view.devices_of("g1")] == ["p-1", "p-2"]

    models = {(m.model_name, m.model_version): m for m in view.models}
    assert set(models) == {("pumpops-g1", "1"), ("pumpops-g1", "2"), ("pumpops-g2", "1")}
    assert models[("pumpops-g1", "1")].device_ids == ("p-1",)
    assert models[("pumpops-g1", "1")].alarms.rate_per_h == 1.5
    assert models[("pumpops-g1", "2")].alarms.rate_per_h == 0.0
    assert models[("pumpops-g2", "1")].alarms.summaries == 0


def test_fleet_view_is_json_ready() -> None:
    agent = Agent("p-1")
    records = [agent.state(NOW), agent.summary(NOW), agent.drift(NOW, alert=True, psi={"a": None, "b": 0.3})]
    data = build_fleet_view(records, DEVICES, now_ms=NOW, policy=POLICY).to_dict()
    again = json.loads(json.dumps(data, allow_nan=False))
    assert again["devices"][0]["drift"]["psi"] == {"a": None, "b": 0.3}
    assert again["groups"][0]["drift"]["group"] == "g1"
    assert again["window_s"] == 21600.0
    assert again["now_ms"] == NOW


def test_fleet_view_registered_device_that_never_reported() -> None:
    view = build_fleet_view([], DEVICES, now_ms=NOW, policy=POLICY)
    assert [d.device_id for d in view.devices] == ["p-1", "p-2", "p-3"]
    assert all(d.last_seen_ms is None and not d.reporting and d.model is None for d in view.devices)
    assert view.models == ()
    assert [g.drift.reason for g in view.groups] == ["no device reported in the last 6 h"] * 2


def test_fleet_view_unregistered_reporter_has_its_own_group() -> None:
    stranger = Agent("x-9", "site-z")
    view = build_fleet_view([stranger.state(NOW)], DEVICES, now_ms=NOW, policy=POLICY)
    (x,) = [d for d in view.devices if d.device_id == "x-9"]
    assert (x.group, x.registered, x.site) == (UNREGISTERED_GROUP, False, "site-z")
    assert view.group(UNREGISTERED_GROUP) is not None


def test_fleet_view_model_from_summaries_and_alarms_without_state() -> None:
    agent = Agent("p-1", version=7)
    view = build_fleet_view([agent.alarm(NOW - 5), agent.summary(NOW)], DEVICES, now_ms=NOW, policy=POLICY)
    assert view.devices[0].model == "pumpops-g1/7"
    assert (view.devices[0].health, view.devices[0].healthy, view.devices[0].stale) == (None, False, False)


def test_fleet_view_newest_state_wins_by_message_time() -> None:
    agent = Agent("p-1")
    newer = agent.state(NOW, health="ok")
    older = agent.state(NOW - HOUR_MS, health="failed")  # a later seq with an older time: outbox order
    view = build_fleet_view([older, newer], DEVICES, now_ms=NOW, policy=POLICY)
    assert view.devices[0].health == "ok"


@pytest.mark.parametrize(
    "summary",
    [
        {"period_start_ms": 10, "period_end_ms": 5, "alarms_raised": 1, "score": {}},
        {"period_start_ms": "0", "period_end_ms": 5, "alarms_raised": 1, "score": []},
        {"period_start_ms": 0, "period_end_ms": 5, "alarms_raised": True, "score": {"p50": "1"}},
        {"period_start_ms": 0, "period_end_ms": 5, "alarms_raised": -1, "score": {"p50": None}},
        {},
    ],
)
def test_fleet_view_ignores_malformed_summaries(summary: dict[str, object]) -> None:
    agent = Agent("p-1")
    view = build_fleet_view([agent.record("summary", NOW, summary)], DEVICES, now_ms=NOW, policy=POLICY)
    device = view.devices[0]
    assert (device.alarms.summaries, device.alarms.rate_per_h, device.scores.summaries) == (0, None, 0)
    assert device.reporting  # a malformed body is still a sign of life


def test_fleet_view_zero_length_periods_give_no_rate() -> None:
    agent = Agent("p-1")
    view = build_fleet_view([agent.summary(NOW, alarms=2, period_ms=0)], DEVICES, now_ms=NOW, policy=POLICY)
    assert (view.devices[0].alarms.alarms_raised, view.devices[0].alarms.rate_per_h) == (2, None)
