"""The fleet-level drift rule as tables: the policy's bounds, a device's drift word, a group's verdict."""

from __future__ import annotations

from typing import Any

import pytest

from pumpops.errors import ConfigError
from pumpops.monitoring import DeviceDrift, DriftPolicy, device_drift, judge_group

from ._monitoring_records import HOUR_MS, MINUTE_MS, T0_MS, Agent

NOW = T0_MS + 24 * HOUR_MS
POLICY = DriftPolicy(window_s=6 * 3600, min_fraction=0.3, min_devices=2)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("window_s", 0),
        ("window_s", -1.0),
        ("window_s", float("inf")),
        ("window_s", float("nan")),
        ("window_s", "6h"),
        ("min_fraction", 0.0),
        ("min_fraction", 1.01),
        ("min_fraction", True),
        ("min_devices", 0),
        ("min_devices", 2.0),
        ("min_devices", True),
    ],
)
def test_drift_policy_out_of_range_names_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=field):
        DriftPolicy(**{field: value})


def test_drift_policy_defaults_are_six_hours_thirty_percent_two_devices() -> None:
    assert DriftPolicy() == DriftPolicy(window_s=21600.0, min_fraction=0.3, min_devices=2)


# device_drift: (name, messages as (kind, minutes before NOW, arguments), expected (drifting, source))
_WORDS: list[tuple[str, list[tuple[str, int, dict[str, Any]]], tuple[bool | None, str]]] = [
    ("nothing", [], (None, "")),
    ("summary only", [("summary", 10, {})], (None, "")),
    ("report alert", [("drift", 10, {"alert": True})], (True, "report")),
    ("report ok", [("drift", 10, {"alert": False})], (False, "report")),
    ("state drift", [("state", 10, {"drift": "drift"})], (True, "state")),
    ("state unknown says nothing", [("state", 10, {"drift": "unknown"})], (None, "")),
    (
        "newer ok report clears",
        [("drift", 60, {"alert": True}), ("drift", 10, {"alert": False})],
        (False, "report"),
    ),
    (
        "newer state drift wins",
        [("drift", 60, {"alert": False}), ("state", 10, {"drift": "drift"})],
        (True, "state"),
    ),
    (
        "newer report wins over state",
        [("state", 60, {"drift": "drift"}), ("drift", 10, {"alert": False})],
        (False, "report"),
    ),
    (
        "unknown state leaves report",
        [("drift", 60, {"alert": True}), ("state", 10, {"drift": "unknown"})],
        (True, "report"),
    ),
]


@pytest.mark.parametrize(
    ("messages", "expected"), [(m, e) for _, m, e in _WORDS], ids=[n for n, _, _ in _WORDS]
)
def test_device_drift_newest_word_decides(
    messages: list[tuple[str, int, dict[str, Any]]], expected: tuple[bool | None, str]
) -> None:
    agent = Agent("p-1")
    records = []
    for kind, minutes, kwargs in messages:
        ts = NOW - minutes * MINUTE_MS
        records.append(getattr(agent, kind)(ts, **kwargs))
    got = device_drift("p-1", reversed(records))  # any order
    assert (got.drifting, got.source) == expected
    assert got.last_seen_ms == (NOW - min(m for _, m, _ in messages) * MINUTE_MS if messages else None)


def test_device_drift_carries_psi_sensors_and_ignores_other_devices() -> None:
    a, b = Agent("p-1"), Agent("p-2")
    records = [
        a.drift(NOW, alert=True, psi={"flow_rate": 0.5, "motor_current": None, "x": 0.3}),
        b.state(NOW + 1),
    ]
    got = device_drift("p-1", records)
    assert got.drifted == ("flow_rate", "x")
    assert got.top_psi() == [("flow_rate", 0.5), ("x", 0.3)]
    assert got.last_seen_ms == NOW


def test_device_drift_reads_malformed_bodies_as_absent() -> None:
    agent = Agent("p-1")
    bad = [
        agent.record("drift", NOW - 3, {"alert": "yes", "psi": [1, 2], "drifted": "flow", "change": 3}),
        agent.record("state", NOW - 2, {"drift_status": "drift"}),
        agent.record("state", NOW - 1, {"drift_status": {"status": 1}}),
    ]
    got = device_drift("p-1", bad)
    assert (got.drifting, got.psi, got.drifted, got.change_fired, got.last_seen_ms) == (
        None,
        None,
        (),
        False,
        NOW - 1,
    )


def _dev(
    name: str, seen_h: float | None, drift_h: float | None = None, drifting: bool | None = None
) -> DeviceDrift:
    """A device last seen ``seen_h`` h before NOW whose drift word (``drift_h`` h old) is ``drifting``."""
    seen = None if seen_h is None else NOW - int(seen_h * HOUR_MS)
    word = None if drift_h is None else NOW - int(drift_h * HOUR_MS)
    return DeviceDrift(name, seen, word, drifting, "report" if drifting is not None else "")


# judge_group: (name, devices, policy, expected drifting, reporting, drifting devices)
_GROUPS: list[tuple[str, list[DeviceDrift], DriftPolicy, bool, int, tuple[str, ...]]] = [
    ("empty group", [], POLICY, False, 0, ()),
    (
        "nobody reported in window",
        [_dev("a", 7, 7, True), _dev("b", 8, 8, True), _dev("c", None)],
        POLICY,
        False,
        0,
        (),
    ),
    (
        "2 of 4 drift",
        [_dev("a", 1, 1, True), _dev("b", 1, 1, True), _dev("c", 1, 1, False), _dev("d", 1)],
        POLICY,
        True,
        4,
        ("a", "b"),
    ),
    (
        "1 of 2 drift: below min_devices",
        [_dev("a", 1, 1, True), _dev("b", 1, 1, False)],
        POLICY,
        False,
        2,
        ("a",),
    ),
    ("1 of 1 drifts, min_devices 1", [_dev("a", 1, 1, True)], DriftPolicy(min_devices=1), True, 1, ("a",)),
    ("2 of 7 is below 0.3", [_dev(f"d{i}", 1, 1, i < 2) for i in range(7)], POLICY, False, 7, ("d0", "d1")),
    (
        "3 of 10 is exactly 0.3",
        [_dev(f"d{i}", 1, 1, i < 3) for i in range(10)],
        POLICY,
        True,
        10,
        ("d0", "d1", "d2"),
    ),
    (
        "silent devices do not dilute",
        [_dev("a", 1, 1, True), _dev("b", 1, 1, True), *[_dev(f"s{i}", 9) for i in range(20)]],
        POLICY,
        True,
        2,
        ("a", "b"),
    ),
    (
        "old drift word does not count",
        [_dev("a", 1, 7, True), _dev("b", 1, 7, True), _dev("c", 1, 1, True)],
        POLICY,
        False,
        3,
        ("c",),
    ),
    ("window edge is inside", [_dev("a", 6, 6, True), _dev("b", 6, 6, True)], POLICY, True, 2, ("a", "b")),
    (
        "clock ahead still reports",
        [_dev("a", -0.01, -0.01, True), _dev("b", 0, 0, True)],
        POLICY,
        True,
        2,
        ("a", "b"),
    ),
    (
        "fraction 1.0 needs all",
        [_dev("a", 1, 1, True), _dev("b", 1, 1, True), _dev("c", 1, 1, False)],
        DriftPolicy(min_fraction=1.0),
        False,
        3,
        ("a", "b"),
    ),
    (
        "short window",
        [_dev("a", 0.5, 0.5, True), _dev("b", 2, 2, True)],
        DriftPolicy(window_s=3600, min_devices=1),
        True,
        1,
        ("a",),
    ),
]


@pytest.mark.parametrize(
    ("devices", "policy", "drifting", "reporting", "drifting_devices"),
    [case[1:] for case in _GROUPS],
    ids=[case[0] for case in _GROUPS],
)
def test_judge_group_table(
    devices: list[DeviceDrift],
    policy: DriftPolicy,
    drifting: bool,
    reporting: int,
    drifting_devices: tuple[str, ...],
) -> None:
    verdict = judge_group("g1", devices, now_ms=NOW, policy=policy)
    assert (verdict.drifting, verdict.reporting, verdict.drifting_devices) == (
        drifting,
        reporting,
        drifting_devices,
    )
    assert verdict.devices == len(devices)
    assert verdict.group == "g1"
    assert verdict.reason  # always says why
    if reporting:
        assert verdict.fraction == pytest.approx(len(drifting_devices) / reporting)
    else:
        assert verdict.fraction is None


def test_judge_group_reasons_name_the_threshold_that_decided() -> None:
    few = judge_group("g", [_dev("a", 1, 1, True), _dev("b", 1, 1, False)], now_ms=NOW, policy=POLICY)
    assert "min_devices (2)" in few.reason
    low = judge_group("g", [_dev(f"d{i}", 1, 1, i < 2) for i in range(9)], now_ms=NOW, policy=POLICY)
    assert "below min_fraction (0.3)" in low.reason
    none = judge_group("g", [_dev("a", 9)], now_ms=NOW, policy=POLICY)
    assert none.reason == "no device reported in the last 6 h"
    yes = judge_group("g", [_dev("a", 1, 1, True), _dev("b", 1, 1, True)], now_ms=NOW, policy=POLICY)
    assert yes.reason.startswith("2 of 2 reporting device(s) drift in the last 6 h: 1.00 >= min_fraction")
    assert yes.to_dict()["drifting_devices"] == ("a", "b")
