"""The hub's reading of shift tests as tables: group drift, device-local shifts, faults, forged bodies."""

from __future__ import annotations

from typing import Any

import pytest

from pumpops.monitoring import DeviceShift, DriftPolicy, device_shift, judge_shifts

from ._monitoring_records import HOUR_MS, MINUTE_MS, T0_MS, Agent

NOW = T0_MS + 24 * HOUR_MS
POLICY = DriftPolicy(window_s=6 * 3600, min_fraction=0.3, min_devices=2)


def _report(shifted: list[str], hint: str, **extra: Any) -> dict[str, Any]:
    return {
        "alert": bool(shifted) and hint != "fault_like",
        "shifted": shifted,
        "hint": hint,
        "shift": {s: {"shift_sd": 4.0, "shift": 2.0e4, "fired": True} for s in shifted},
        "since_ms": dict.fromkeys(shifted, NOW - 30 * MINUTE_MS),
        **extra,
    }


def _devices(spec: list[tuple[list[str], str]]) -> list[DeviceShift]:
    out = []
    for i, (shifted, hint) in enumerate(spec):
        agent = Agent(f"p-{i:02d}")
        out.append(
            device_shift(
                agent.device_id, [agent.record("drift", NOW - 5 * MINUTE_MS, _report(shifted, hint))]
            )
        )
    return out


N, S, F = "none", "sensor_shift", "fault_like"
DP = "discharge_pressure"

# (name, per device (shifted, hint), expected group verdict, shared sensors, per device verdicts)
_TABLE: list[tuple[str, list[tuple[list[str], str]], str, dict[str, int], list[str]]] = [
    ("all quiet", [([], N)] * 6, "ok", {}, ["ok"] * 6),
    ("one pump shifted: device-local", [([DP], S)] + [([], N)] * 5, "ok", {}, ["device_local"] + ["ok"] * 5),
    (
        "half the group on the same sensor: group drift",
        [([DP], S)] * 3 + [([], N)] * 3,
        "drift",
        {DP: 3},
        ["group_drift"] * 3 + ["ok"] * 3,
    ),
    (
        "two pumps of ten: below min_fraction",
        [([DP], S)] * 2 + [([], N)] * 8,
        "ok",
        {},
        ["device_local"] * 2 + ["ok"] * 8,
    ),
    (
        "different sensors are not shared",
        [(["flow_rate"], S), ([DP], S), (["vibration_velocity"], S), ([], N)],
        "ok",
        {},
        ["device_local"] * 3 + ["ok"],
    ),
    (
        "fault-like pumps do not make group drift",
        [([DP], F)] * 3 + [([], N)] * 3,
        "ok",
        {},
        ["fault"] * 3 + ["ok"] * 3,
    ),
    (
        "shared drift beside a fault and a local shift",
        [([DP], S)] * 3 + [([DP, "flow_rate"], F), (["vibration_velocity"], S), ([], N)],
        "drift",
        {DP: 3},
        ["group_drift"] * 3 + ["fault", "device_local", "ok"],
    ),
]


@pytest.mark.parametrize(("name", "spec", "verdict", "shared", "devices"), _TABLE, ids=[t[0] for t in _TABLE])
def test_judge_shifts_table(
    name: str, spec: list[tuple[list[str], str]], verdict: str, shared: dict[str, int], devices: list[str]
) -> None:
    result = judge_shifts("g", _devices(spec), now_ms=NOW, policy=POLICY)
    assert result.verdict == verdict, result.reason
    assert {s: len(ids) for s, ids in result.shared.items()} == shared
    assert [result.devices[f"p-{i:02d}"] for i in range(len(spec))] == devices
    assert result.reporting == len(spec)
    for sensor in shared:
        assert result.since_ms[sensor] == NOW - 30 * MINUTE_MS


def test_judge_shifts_actions_are_the_tiers() -> None:
    result = judge_shifts("g", _devices([([DP], S)] * 2 + [(["flow_rate"], S), ([], F), ([], N)]), now_ms=NOW,
                          policy=POLICY)  # fmt: skip
    assert [result.action(f"p-{i:02d}") for i in range(5)] == [
        "retrain the group", "retrain the group", "recalibrate the device", "keep alarming", "none"
    ]  # fmt: skip
    assert result.action("p-99") == "none"
    doc = result.to_dict()
    assert doc["devices"]["p-02"] == {"verdict": "device_local", "action": "recalibrate the device"}


def test_judge_shifts_without_reports_in_the_window_is_no_data() -> None:
    agent = Agent("p-00")
    old = device_shift("p-00", [agent.record("drift", NOW - 7 * HOUR_MS, _report([DP], S))])
    assert judge_shifts("g", [old, DeviceShift("p-01")], now_ms=NOW, policy=POLICY).verdict == "no data"


def test_device_shift_reads_the_newest_report_with_a_hint_and_its_figures() -> None:
    agent = Agent("p-00")
    records = [
        agent.record("drift", NOW - 20 * MINUTE_MS, _report([DP], S)),
        agent.record("drift", NOW - 10 * MINUTE_MS, {"alert": True, "drifted": ["flow_rate"]}),  # old agent
        agent.record("state", NOW - 5 * MINUTE_MS, {"drift_status": {"status": "drift"}}),
    ]
    shift = device_shift("p-00", records)
    assert shift.ts_ms == NOW - 20 * MINUTE_MS
    assert shift.shifted == (DP,)
    assert shift.shift_sd == {DP: 4.0}
    assert shift.shift_si == {DP: 2.0e4}
    assert shift.since_ms == {DP: NOW - 30 * MINUTE_MS}
    assert device_shift("p-01", records) == DeviceShift("p-01")


@pytest.mark.parametrize(
    "body",
    [
        {"hint": "recalibrate_everything", "shifted": [DP]},  # an unknown hint: not a shift report
        {"hint": 3, "shifted": [DP]},
        {"hint": None},
    ],
)
def test_device_shift_ignores_a_report_with_a_forged_hint(body: dict[str, Any]) -> None:
    agent = Agent("p-00")
    assert device_shift("p-00", [agent.record("drift", NOW, body)]).ts_ms is None


def test_device_shift_reads_forged_fields_as_absent() -> None:
    agent = Agent("p-00")
    body = {
        "hint": "sensor_shift",
        "shifted": [DP, 7, None, {"x": 1}, DP],
        "shift": {DP: {"shift_sd": "huge", "shift": float("inf")}},
        "since_ms": {DP: True},
    }
    shift = device_shift("p-00", [agent.record("drift", NOW, body)])
    assert shift.shifted == (DP,)
    assert shift.shift_sd == {}
    assert shift.shift_si == {}
    assert shift.since_ms == {}
    for bad in ({"hint": "sensor_shift", "shifted": "discharge_pressure", "shift": [1], "since_ms": 5},):
        assert device_shift("p-00", [agent.record("drift", NOW, bad)]).shifted == ()
