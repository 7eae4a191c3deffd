"""The incremental fleet state equals the full recomputation on the same messages (issue 18).

Property-based: hypothesis draws message sequences of a few devices (one not
registered) with every kind, bodies with missing and wrong-typed fields,
times out of order, repeats of the same message, cut into batches; after
each batch a view at a later instant. :class:`FleetState` fed batch by batch
must give the view ``build_fleet_view`` gives over every message so far
(integers and text equal, floats to 1e-9 relative: sums added in another order).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pumpops.errors import InputError
from pumpops.fleet import Device
from pumpops.monitoring import DriftPolicy, build_fleet_view
from pumpops.monitoring._incremental import HOUR_MS, FleetState
from pumpops.monitoring._shift_verdicts import DeviceShift, device_shift, judge_shifts
from pumpops.store import AgentRecord

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MIN = 60_000
DEVICES = (
    Device("a", "s1", "acme-ansi", "g1"),
    Device("b", "s1", "acme-ansi", "g1"),
    Device("c", "s2", "x", "g2"),
)
IDS = ("a", "b", "c", "u")  # u: not registered
POLICY = DriftPolicy(window_s=2 * 3600, min_fraction=0.5, min_devices=1)

numbers = st.one_of(
    st.floats(min_value=0, max_value=50, allow_nan=False), st.none(), st.just("x"), st.just(True)
)
models: st.SearchStrategy[dict[str, Any]] = st.sampled_from(
    [{"model_name": "m", "model_version": 1}, {"model_name": "m", "model_version": 2}, {}, {"model_name": 3}]
)


@st.composite
def bodies(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    model = draw(models)
    if kind == "summary":
        period = draw(st.sampled_from([600_000, 3_600_000, -5, "x"]))
        body: dict[str, Any] = {
            "period_start_ms": 0,
            "period_end_ms": period,
            "alarms_raised": draw(st.sampled_from([0, 1, 3, -1, None])),
            "windows_scored": draw(st.sampled_from([1, 50, 0, None])),
        }
        if draw(st.booleans()):
            body["score"] = {k: draw(numbers) for k in ("p50", "p95", "max", "mean")}
        return {**body, **model}
    if kind == "state":
        status = draw(st.sampled_from(["drift", "ok", "unknown", 5]))
        return {
            "status": "detecting",
            "health": draw(st.sampled_from(["ok", "failed", 1])),
            "drift_status": {"status": status},
            "stale": draw(st.booleans()),
            **model,
        }
    if kind == "drift":
        report: dict[str, Any] = {
            "alert": draw(st.sampled_from([True, False, "yes"])),
            "psi": {"f": draw(numbers)},
            "drifted": ["f"],
            **model,
        }
        hint = draw(
            st.sampled_from([None, "none", "new_shift", "sensor_shift", "fault_like", "bogus", "", 7])
        )
        if hint is not None:  # a shift test's answer (or a malformed one)
            shifted = draw(st.sampled_from([[], ["f"], ["f", "g"], "f"]))
            report |= {
                "hint": hint,
                "shifted": shifted,
                "confirmed": draw(st.sampled_from([["f"], [], ["g"]])),
                "shift": {
                    "f": {"shift_sd": draw(numbers), "shift": 2.0},
                    "g": {"shift_sd": 3.0, "shift": 1.0},
                },
                "since_ms": {"f": T0, "g": T0},
                "z": {"f": draw(st.sampled_from([0.5, 4.0, -4.0])), "g": 4.0},
                "score_ratio": draw(numbers),
            }
        return report
    return {"event": "raised", **model}


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[list[AgentRecord]], list[int]]:
    n = draw(st.integers(min_value=1, max_value=40))
    seqs = dict.fromkeys(IDS, 0)
    records: list[AgentRecord] = []
    for _ in range(n):
        device = draw(st.sampled_from(IDS))
        kind = draw(st.sampled_from(["summary", "summary", "state", "drift", "alarm"]))
        seqs[device] += 1
        ts = T0 + draw(st.integers(min_value=0, max_value=6 * 60)) * MIN + draw(st.integers(0, 59_999))
        body = json.dumps(draw(bodies(kind)))
        records.append(
            AgentRecord(
                f"{device}:{seqs[device]}", device, "s9", kind, ts * 1000, "0.1", body, "0" * 64, ts * 1000
            )
        )
    # repeats: the same message delivered again, anywhere later
    for index in draw(st.lists(st.integers(0, n - 1), max_size=8)):
        records.insert(draw(st.integers(index, len(records))), records[index])
    cuts = sorted(draw(st.lists(st.integers(0, len(records)), max_size=5)))
    batches = [records[a:b] for a, b in zip([0, *cuts], [*cuts, len(records)], strict=True)]
    steps = sorted(draw(st.lists(st.integers(0, 8 * 60), min_size=len(batches), max_size=len(batches))))
    return batches, [T0 + m * MIN + 17 for m in steps]


def assert_same(got: object, want: object, path: str = "view") -> None:
    """Equal, floats to 1e-9 relative."""
    if isinstance(want, float) and isinstance(got, float):
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), f"{path}: {got} != {want}"
    elif isinstance(want, dict):
        assert isinstance(got, dict), f"{path}: {got!r} is not a mapping"
        assert got.keys() == want.keys(), f"{path}: keys {got} != {want}"
        for key in want:
            assert_same(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, list | tuple):
        assert isinstance(got, list | tuple), f"{path}: {got!r} is not a sequence"
        assert len(got) == len(want), f"{path}: {got} != {want}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{path}[{i}]")
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_incremental_view_equals_full_recomputation(
    scenario: tuple[list[list[AgentRecord]], list[int]],
) -> None:
    batches, steps = scenario
    state = FleetState()
    seen: list[AgentRecord] = []
    for batch, now_ms in zip(batches, steps, strict=True):
        state.apply(batch)
        seen += batch
        full = build_fleet_view({r.msg_id: r for r in seen}.values(), DEVICES, now_ms=now_ms, policy=POLICY)
        assert_same(state.view(now_ms, DEVICES, POLICY).to_dict(), full.to_dict())
        # the shift verdicts from the kept drift reports == from every drift report of the window
        kept = state.device_shifts(now_ms, POLICY, [d.device_id for d in DEVICES])
        assert_same(group_shifts(kept, now_ms), group_shifts(full_device_shifts(seen, now_ms), now_ms))


def full_device_shifts(records: list[AgentRecord], now_ms: int) -> dict[str, DeviceShift]:
    """``device_shift`` over the window's drift reports in store order (what the full read gives)."""
    cutoff = POLICY.cutoff_ms(now_ms)
    unique = {r.msg_id: r for r in records if r.kind == "drift" and r.ts_ms >= cutoff}.values()
    ordered = sorted(unique, key=lambda r: (r.device_id, r.ts_us, r.seq, r.msg_id))
    return {
        d.device_id: device_shift(d.device_id, [r for r in ordered if r.device_id == d.device_id])
        for d in DEVICES
    }


def group_shifts(shifts: dict[str, DeviceShift], now_ms: int) -> dict[str, Any]:
    groups: dict[str, list[str]] = {}
    for device in DEVICES:
        groups.setdefault(device.group, []).append(device.device_id)
    return {
        group: judge_shifts(group, [shifts[d] for d in sorted(ids)], now_ms=now_ms, policy=POLICY).to_dict()
        for group, ids in sorted(groups.items())
    }


def test_the_comparison_can_fail() -> None:
    """A view missing one summary is told apart (the property above is not vacuous)."""
    summary = AgentRecord(
        "a:1",
        "a",
        "s1",
        "summary",
        (T0 + MIN) * 1000,
        "0.1",
        json.dumps({"period_start_ms": 0, "period_end_ms": 600_000, "alarms_raised": 2}),
        "0" * 64,
        0,
    )
    full = build_fleet_view([summary], DEVICES, now_ms=T0 + 2 * MIN, policy=POLICY)
    empty = FleetState().view(T0 + 2 * MIN, DEVICES, POLICY)
    with pytest.raises(AssertionError, match=r"view\.devices\[0\]\.last_seen_ms"):
        assert_same(empty.to_dict(), full.to_dict())
    state = FleetState()
    state.apply([summary])
    one_less = build_fleet_view([], DEVICES, now_ms=T0 + 2 * MIN, policy=POLICY)
    with pytest.raises(AssertionError, match=r"reporting: 1 != 0"):
        assert_same(
            state.view(T0 + 2 * MIN, DEVICES, POLICY).to_dict()["groups"], one_less.to_dict()["groups"]
        )


def test_shift_reports_kept_are_the_newest_answer_and_the_unknown_hints_of_the_window() -> None:
    """What device_shift reads survives in the state; older answers and reports out of the window do not."""

    def report(seq: int, minute: int, hint: object) -> AgentRecord:
        body = json.dumps({"hint": hint, "shifted": ["f"], "shift": {"f": {"shift_sd": float(seq)}}})
        return AgentRecord(
            f"a:{seq}", "a", "s1", "drift", (T0 + minute * MIN) * 1000, "0.1", body, "0" * 64, 0
        )

    state = FleetState()
    state.apply(
        [
            report(1, 0, "sensor_shift"),
            report(2, 10, "bogus"),
            report(3, 20, "sensor_shift"),
            report(4, 5, ""),
        ]
    )
    now = T0 + 30 * MIN
    state.view(now, DEVICES, POLICY)
    assert [r.msg_id for r in state.drift_reports(now, POLICY)["a"]] == ["a:2", "a:3"]
    shift = state.device_shifts(now, POLICY, ["a", "b"])
    assert (shift["a"].ts_ms, shift["a"].shift_sd, shift["b"].hint) == (T0 + 20 * MIN, {"f": 3.0}, "")
    assert shift["a"].ignored[0] == "report seq 2: unknown hint 'bogus'"
    late = T0 + 2 * HOUR_MS + 15 * MIN  # the window starts after the bogus report, before the newest answer
    state.view(late, DEVICES, POLICY)
    assert [r.msg_id for r in state.drift_reports(late, POLICY)["a"]] == ["a:3"]
    assert state.drift_reports(T0 + 3 * HOUR_MS, POLICY) == {}
    with pytest.raises(InputError, match="before the oldest hour"):
        state.drift_reports(T0 + HOUR_MS, POLICY)


def test_old_buckets_are_forgotten_and_a_view_back_in_time_is_refused() -> None:
    state = FleetState()
    body = json.dumps({"period_start_ms": 0, "period_end_ms": 600_000, "alarms_raised": 1})
    state.apply([AgentRecord("a:1", "a", "s1", "summary", T0 * 1000, "0.1", body, "0" * 64, 0)])
    late = T0 + 5 * HOUR_MS
    assert state.view(late, DEVICES, POLICY).group("g1").alarms.alarms_raised == 0  # type: ignore[union-attr]
    assert state.horizon_ms == (late - 2 * HOUR_MS) // HOUR_MS * HOUR_MS
    with pytest.raises(InputError, match="take views in time order"):
        state.view(T0 + HOUR_MS, DEVICES, POLICY)
    # a backlog older than the horizon still names the device's newest message and model
    old = AgentRecord(
        "a:2",
        "a",
        "s1",
        "state",
        (T0 + MIN) * 1000,
        "0.1",
        '{"model_name": "m", "model_version": 4}',
        "0" * 64,
        0,
    )
    assert state.apply([old]) == set()
    view = state.view(late, DEVICES, POLICY)
    assert view.devices[0].model == "m/4"
    assert view.devices[0].last_seen_ms == T0 + MIN
