"""The hub's reading of shift tests as tables: group drift, device-local shifts, faults, forged bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pumpops.monitoring import (
    DeviceShift,
    DriftPolicy,
    MonitoringService,
    device_shift,
    judge_shifts,
    plan_response,
)
from pumpops.registry import EventSink
from pumpops.settings import MonitoringSettings

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


# ---------------------------------------------------------------- the device's words since the ShiftJudge


def _word(device: str, hint: str, confirmed: list[str], *, shifted: list[str] | None = None,
          score_ratio: float | None = 0.3) -> DeviceShift:  # fmt: skip
    agent = Agent(device)
    body = _report(shifted if shifted is not None else confirmed, hint, confirmed=confirmed,
                   score_ratio=score_ratio)  # fmt: skip
    return device_shift(device, [agent.record("drift", NOW - 5 * MINUTE_MS, body)])


OP, NEW = "operating_shift", "new_shift"
_WORDS: list[tuple[str, list[DeviceShift], dict[str, str], str]] = [
    (
        "one report is pending, not drift",
        [_word("a", NEW, [], shifted=[DP]), _word("b", NEW, [], shifted=[DP]), _word("c", N, [])],
        {"a": "pending", "b": "pending", "c": "ok"},
        "ok",
    ),
    (
        "only confirmed sensors are shared",
        [_word("a", S, [DP]), _word("b", S, ["flow_rate"], shifted=[DP, "flow_rate"]), _word("c", N, [])],
        {"a": "device_local", "b": "device_local", "c": "ok"},
        "ok",
    ),
    (
        "a local operating shift the model alarms on is a fault; a local sensor shift is recalibrated",
        [_word("a", OP, [DP, "flow_rate", "motor_power"], score_ratio=4.0),
         _word("b", S, ["vibration_velocity"], score_ratio=4.0),
         _word("c", N, [])],
        {"a": "fault", "b": "device_local", "c": "ok"},
        "ok",
    ),
    (
        "a shared operating shift is group drift, alarming or not",
        [_word("a", OP, [DP, "flow_rate"], score_ratio=9.0),
         _word("b", OP, [DP, "flow_rate"], score_ratio=9.0),
         _word("c", F, [DP, "vibration_velocity"])],
        {"a": "group_drift", "b": "group_drift", "c": "fault"},
        "drift",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "devices", "verdicts", "group"), _WORDS, ids=[w[0] for w in _WORDS])
def test_judge_shifts_reads_confirmation_pending_and_the_model_score(
    name: str, devices: list[DeviceShift], verdicts: dict[str, str], group: str
) -> None:
    result = judge_shifts("g", devices, now_ms=NOW, policy=POLICY)
    assert result.devices == verdicts, name
    assert result.verdict == group
    response = plan_response(result)
    assert response.retrain_group is (group == "drift")
    assert response.recalibrate == tuple(sorted(d for d, v in verdicts.items() if v == "device_local"))
    assert response.faults == tuple(sorted(d for d, v in verdicts.items() if v == "fault"))
    assert json.loads(json.dumps(response.to_dict(), allow_nan=False))["verdict"]["evidence"]


@pytest.mark.parametrize(
    ("body", "ignored"),
    [
        ({"hint": "sensor_shift", "shifted": [DP], "confirmed": [DP, "flow_rate"]}, "did not shift"),
        ({"hint": "sensor_shift", "shifted": [DP], "score_ratio": float("nan")}, "score_ratio"),
        ({"hint": "sensor_shift", "shifted": [DP], "score_ratio": "high"}, "score_ratio"),
        ({"hint": "fault_like", "shifted": [DP], "fault_signs": "all of them"}, "fault_signs"),
        ({"hint": "sensor_shift", "shifted": {DP: 1}}, "shifted is not a list"),
        ({"hint": "sensor_shift", "shifted": [DP], "shift": {DP: {"shift_sd": float("-inf")}}}, "finite"),
        ({"hint": "operating_shift", "shifted": [DP], "confirmed": "yes"}, "confirmed is not a list"),
    ],
)
def test_device_shift_says_what_it_left_out_of_a_forged_or_malformed_body(
    body: dict[str, Any], ignored: str
) -> None:
    agent = Agent("p-00")
    shift = device_shift("p-00", [agent.record("drift", NOW, {"since_ms": {DP: NOW}, **body})])
    assert any(ignored in reason for reason in shift.ignored), shift.ignored
    verdict = judge_shifts("g", [shift], now_ms=NOW, policy=POLICY)  # judged, never raised
    assert verdict.devices["p-00"] in ("ok", "device_local", "fault", "pending", "group_drift")
    assert json.loads(json.dumps(verdict.to_dict(), allow_nan=False))["evidence"]["p-00"]["ignored"]


def test_device_shift_names_a_report_with_an_unknown_hint_and_uses_the_last_good_one() -> None:
    agent = Agent("p-00")
    records = [
        agent.record("drift", NOW - 10 * MINUTE_MS, _report([DP], S)),
        agent.record("drift", NOW - 5 * MINUTE_MS, {"hint": "recalibrate_everything", "shifted": [DP]}),
    ]
    shift = device_shift("p-00", records)
    assert shift.hint == S
    assert shift.ts_ms == NOW - 10 * MINUTE_MS
    assert any("unknown hint 'recalibrate_everything'" in r for r in shift.ignored)


def test_service_opens_group_drift_from_shared_shifts_and_plans_the_response(
    fleet_store: Any, sink: EventSink
) -> None:
    """g1: two pumps share a confirmed pressure shift, one is fault-like, one quiet; g2: one local shift."""
    words = {
        "g1-1": _report([DP], S, confirmed=[DP]),
        "g1-2": _report([DP], S, confirmed=[DP]),
        "g1-3": _report([DP, "vibration_velocity"], F, fault_signs=["vibration_velocity: noisier x2.5"]),
        "g1-4": _report([], N),
        "g2-1": _report(["flow_rate"], S, confirmed=["flow_rate"]),
        "g2-2": _report([], N),
    }
    fleet_store.put_agent_messages(
        [Agent(d).record("drift", NOW - 5 * MINUTE_MS, b) for d, b in words.items()]
    )
    service = MonitoringService(fleet_store, sink, MonitoringSettings())
    step = service.evaluate(NOW * 1000)
    assert [(c.group, c.action) for c in step.changes] == [("g1", "opened")]
    detail = step.changes[0].detail
    assert detail["drifting_devices"] == ["g1-1", "g1-2"]
    assert detail["shift"]["shared"] == {DP: ["g1-1", "g1-2"]}
    assert detail["shift"]["since_ms"] == {DP: NOW - 30 * MINUTE_MS}
    assert detail["shift"]["devices"]["g1-3"] == {"verdict": "fault", "action": "keep alarming"}
    assert detail["shift"]["evidence"]["g1-3"]["fault_signs"] == ["vibration_velocity: noisier x2.5"]
    responses = service.responses(NOW * 1000)
    assert (responses["g1"].retrain_group, responses["g1"].faults) == (True, ("g1-3",))
    assert (responses["g2"].retrain_group, responses["g2"].recalibrate) == (False, ("g2-1",))
    assert service.evaluate(NOW * 1000 + 1000).changes == ()  # nothing new: nothing written


def test_judge_shifts_pools_a_shift_too_small_for_each_pump_but_seen_on_several() -> None:
    def weak(device: str, z: float, hint: str = N) -> DeviceShift:
        return DeviceShift(device, NOW - MINUTE_MS, (), hint, z={DP: z, "flow_rate": 0.4})

    devices = [weak("a", 3.4), weak("b", 3.1), weak("c", -3.6), weak("d", 0.2), weak("e", 9.0, NEW),
               weak("f", 2.9)]  # fmt: skip
    result = judge_shifts("g", devices, now_ms=NOW, policy=POLICY)  # 2 of 6 the same way: 0.33 >= 0.3
    assert result.shared == {DP: ("a", "b")}
    assert result.devices == {"a": "group_drift", "b": "group_drift", "c": "ok", "d": "ok", "e": "pending",
                              "f": "ok"}  # fmt: skip
    assert result.since_ms == {DP: NOW - MINUTE_MS}
    # One pump alone at z 3.4 is not pooled evidence; nor are opposite directions.
    alone = judge_shifts("g", [weak("a", 3.4), weak("c", -3.6), weak("d", 0.2)], now_ms=NOW, policy=POLICY)
    assert alone.shared == {}
    assert set(alone.devices.values()) == {"ok"}


def test_service_alerts_only_on_a_shared_shift_the_model_does_not_tolerate(
    fleet_store: Any, sink: EventSink
) -> None:
    """A season or set-point every pump shares, scored below threshold, costs no alarm: no retrain."""

    agents = [Agent("g1-1"), Agent("g1-2"), Agent("g1-3")]

    def reports(at_ms: int, ratio: float) -> list[Any]:
        body = _report([DP], S, confirmed=[DP], score_ratio=ratio)
        quiet = _report([], N, score_ratio=0.2)
        return [a.record("drift", at_ms, quiet if a.device_id == "g1-3" else body) for a in agents]

    service = MonitoringService(fleet_store, sink, MonitoringSettings())
    fleet_store.put_agent_messages(reports(NOW - 5 * MINUTE_MS, 0.4))
    assert service.evaluate(NOW * 1000).changes == ()
    tolerated = service.responses(NOW * 1000)["g1"]
    assert (tolerated.verdict.verdict, tolerated.retrain_group) == ("drift", False)
    assert "below threshold" in tolerated.reason

    later = NOW + 10 * MINUTE_MS  # the stale model now alarms on the shifted pumps: retrain
    fleet_store.put_agent_messages(reports(later, 3.0))
    assert [(c.group, c.action) for c in service.evaluate(later * 1000).changes] == [("g1", "opened")]
    assert service.responses(later * 1000)["g1"].retrain_group

    healed = later + 10 * MINUTE_MS  # a retrained model scores the shift below threshold again
    fleet_store.put_agent_messages(reports(healed, 0.3))
    assert [(c.group, c.action) for c in service.evaluate(healed * 1000).changes] == [("g1", "closed")]


def test_judge_shifts_does_not_pool_a_temperature_the_devices_put_down_to_the_weather() -> None:
    """The daily weather warms every pump of a site alike: z >= 3 on each is not the group's drift."""
    temp = "motor_temperature"

    def warm(device: str, weather: tuple[str, ...]) -> DeviceShift:
        return DeviceShift(device, NOW - MINUTE_MS, (), N, z={temp: 5.0, DP: 0.3}, weather=weather)

    said = judge_shifts("g", [warm(d, (temp,)) for d in "abc"], now_ms=NOW, policy=POLICY)
    assert said.shared == {}
    assert set(said.devices.values()) == {"ok"}
    # An agent that says nothing of the weather (older, or a temperature that stepped): pooled as before.
    old = judge_shifts("g", [warm(d, ()) for d in "abc"], now_ms=NOW, policy=POLICY)
    assert old.shared == {temp: ("a", "b", "c")}
    # The report's list is read defensively, and kept as evidence.
    body = {**_report([DP], S), "weather": [temp, 7, ""]}
    shift = device_shift("p-00", [Agent("p-00").record("drift", NOW - MINUTE_MS, body)])
    assert shift.weather == (temp,)
    assert shift.to_dict()["weather"] == [temp]
    assert any("weather" in reason for reason in shift.ignored)


def test_judge_shifts_calls_the_model_alarming_on_enough_pumps_at_once_the_groups_joint_drift() -> None:
    """A relation between sensors broke on several pumps (no sensor's own test fires): group drift.

    Seen in ``make demo``: +40 kPa on every ``acme-ansi`` discharge pressure is 0.7 reference sd, too
    small for any pump's test, while the stale model's median score is 15x its threshold on all of them.
    """

    def pump(device: str, ratio: float | None, hint: str = N) -> DeviceShift:
        return DeviceShift(device, NOW - MINUTE_MS, (), hint, z={DP: 1.2}, score_ratio=ratio)

    drifted = [pump("a", 15.0), pump("b", 14.2), pump("c", 2.0), pump("d", 0.4), pump("e", None)]
    result = judge_shifts("g", drifted, now_ms=NOW, policy=POLICY)  # 3 of 5 alarm: 0.6 >= 0.3
    assert result.verdict == "drift"
    assert result.shared == {"model_score": ("a", "b", "c")}
    assert result.devices == {
        "a": "group_drift",
        "b": "group_drift",
        "c": "group_drift",
        "d": "ok",
        "e": "ok",
    }
    assert result.since_ms == {}  # no onset of its own: the alert's opening time stands for it
    # One pump's model alarming is that pump's matter (a fault), not the group's.
    one = judge_shifts("g", [pump("a", 15.0), pump("d", 0.4), pump("e", 0.6)], now_ms=NOW, policy=POLICY)
    assert one.verdict == "ok"
    # Pumps whose change looks like a fault do not count.
    faulty = [
        pump("a", 15.0, "fault_like"),
        pump("b", 9.0, "fault_like"),
        pump("c", 3.0, NEW),
        pump("d", 0.4),
    ]
    assert judge_shifts("g", faulty, now_ms=NOW, policy=POLICY).shared == {}
    # Pumps still confirming their own shift (an hour with drift_confirm_s 3600) do: the alert a
    # joint change opened must not close while their sensor tests confirm it.
    confirming = [pump("a", 15.0, NEW), pump("b", 9.0, NEW), pump("c", 0.4), pump("d", 0.4, NEW)]
    held = judge_shifts("g", confirming, now_ms=NOW, policy=POLICY)
    assert held.verdict == "drift"
    assert held.shared == {"model_score": ("a", "b")}
    assert held.devices == {"a": "group_drift", "b": "group_drift", "c": "ok", "d": "pending"}
    # Just under the ratio: the model copes, nothing is shared.
    coping = [pump("a", 1.9), pump("b", 1.9), pump("c", 1.9)]
    assert judge_shifts("g", coping, now_ms=NOW, policy=POLICY).verdict == "ok"
