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
models = st.sampled_from(
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
        return {
            "alert": draw(st.sampled_from([True, False, "yes"])),
            "psi": {"f": draw(numbers)},
            "drifted": ["f"],
            **model,
        }
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
