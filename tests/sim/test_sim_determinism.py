"""Same seed, same numbers: independent of slicing, of the rest of the fleet, and of faults elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
from _simhelpers import START_MS

from pumpops.sim import BLOCK_SAMPLES, FleetSimulator, Scenario, build_fleet, ground_truth


def _scenario(n: int = 6, seed: int = 5, **kwargs: object) -> Scenario:
    options: dict[str, object] = {"start_ms": START_MS, "duration_s": 3 * 3600.0, "seed": seed, **kwargs}
    return Scenario(devices=build_fleet(n, seed=seed), **options)  # type: ignore[arg-type]


def test_determinism_same_seed_gives_identical_arrays() -> None:
    a, b = FleetSimulator(_scenario()), FleetSimulator(_scenario())
    for device in _scenario().devices:
        ta, tb = a.device(device.device_id).trace(), b.device(device.device_id).trace()
        np.testing.assert_array_equal(ta.ts_ms, tb.ts_ms)
        np.testing.assert_array_equal(ta.native, tb.native)
        assert ta.events == tb.events
    assert ground_truth(_scenario()) == ground_truth(_scenario())


def test_determinism_different_seed_gives_different_numbers() -> None:
    a = FleetSimulator(_scenario(seed=1)).device("p-0001").trace()
    b = FleetSimulator(_scenario(seed=2)).device("p-0001").trace()
    assert not np.array_equal(a.native, b.native)


def test_determinism_device_data_does_not_depend_on_fleet_size() -> None:
    small = FleetSimulator(_scenario(n=3)).device("p-0002").trace()
    large = FleetSimulator(_scenario(n=40)).device("p-0002").trace()
    np.testing.assert_array_equal(small.native, large.native)
    assert small.events == large.events


def test_determinism_windows_of_any_size_slice_the_same_sequence() -> None:
    scenario = _scenario(n=2)
    whole = FleetSimulator(scenario).device("p-0002").trace()
    sim = FleetSimulator(scenario).device("p-0002")
    pieces = []
    step = 7_777  # ms: windows that never line up with blocks or samples
    for lo in range(scenario.start_ms, scenario.end_ms or 0, step):
        ts, values = sim.window(lo, min(lo + step, scenario.end_ms or 0))
        pieces.append((ts, values))
    np.testing.assert_array_equal(np.concatenate([p[0] for p in pieces]), whole.ts_ms)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in pieces]), whole.native)


def test_determinism_random_access_after_streaming_is_consistent() -> None:
    sim = FleetSimulator(_scenario(n=1)).device("p-0001")
    start = sim.scenario.start_ms
    late = (start + 3 * BLOCK_SAMPLES * 1000, start + 3 * BLOCK_SAMPLES * 1000 + 60_000)
    first = sim.window(*late)
    sim.window(start, start + 1000)  # go back to the beginning
    again = sim.window(*late)
    np.testing.assert_array_equal(first[1], again[1])


def test_determinism_long_stream_keeps_few_states_and_can_still_go_back() -> None:
    scenario = _scenario(n=1, duration_s=None)
    sim = FleetSimulator(scenario).device("p-0001")  # acme: 1 Hz, a block is 1024 s
    block_ms = BLOCK_SAMPLES * 1000
    for k in range(150):
        sim.window(START_MS + k * block_ms, START_MS + (k + 1) * block_ms)
    assert len(sim._states) < 20  # private, but the memory bound is the point of the test
    back = (START_MS + 70 * block_ms + 5_000, START_MS + 71 * block_ms + 5_000)
    fresh = FleetSimulator(scenario).device("p-0001")
    np.testing.assert_array_equal(sim.window(*back)[1], fresh.window(*back)[1])


def test_determinism_window_arrays_are_read_only() -> None:
    sim = FleetSimulator(_scenario(n=1)).device("p-0001")
    _, values = sim.window(START_MS, START_MS + 10_000)
    with pytest.raises(ValueError, match="read-only"):
        values[0, 0] = 1.0


def test_determinism_timestamps_follow_each_profile_period() -> None:
    sim = FleetSimulator(_scenario(n=3))
    for device_id, period in (("p-0001", 1000), ("p-0002", 500), ("p-0003", 5000)):
        ts = sim.device(device_id).trace().ts_ms
        assert ts[0] == START_MS
        assert set(np.diff(ts).tolist()) == {period}
        assert ts[-1] < START_MS + 3 * 3600 * 1000
