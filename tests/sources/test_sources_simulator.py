"""SimulatorSource: simulated-time order across devices, chunking, bounds and pacing."""

from __future__ import annotations

from itertools import islice

import numpy as np
import pytest

from pumpops.errors import ConfigError
from pumpops.sim import FleetSimulator, Scenario, build_fleet
from pumpops.sources import SimulatorSource

_START_MS = 1_748_736_000_000


def _scenario(duration_s: float | None = 600.0, n: int = 5) -> Scenario:
    return Scenario(devices=build_fleet(n, seed=1), start_ms=_START_MS, duration_s=duration_s, seed=1)


def test_simulator_source_yields_chunks_in_simulated_time_order() -> None:
    frames = list(SimulatorSource(_scenario(), chunk_s=30).frames())
    chunk_of = [(int(f.ts_ms[0]) - _START_MS) // 30_000 for f in frames]
    assert chunk_of == sorted(chunk_of)
    # Every frame stays within its chunk; within a chunk, devices come in fleet order.
    for frame, chunk in zip(frames, chunk_of, strict=True):
        assert (frame.ts_ms - _START_MS) // 30_000 == pytest.approx(chunk)
    first_chunk = [f.device_id for f, c in zip(frames, chunk_of, strict=True) if c == 0]
    assert first_chunk == [d.device_id for d in _scenario().devices]


def test_simulator_source_is_bounded_by_the_scenario_and_matches_the_engine() -> None:
    scenario = _scenario()
    frames = list(SimulatorSource(scenario, chunk_s=45).frames())
    engine = FleetSimulator(scenario)
    for device in scenario.devices:
        mine = [f for f in frames if f.device_id == device.device_id]
        trace = engine.device(device.device_id).trace()
        np.testing.assert_array_equal(np.concatenate([f.ts_ms for f in mine]), trace.ts_ms)
        np.testing.assert_array_equal(np.concatenate([f.values for f in mine]), trace.native)
    # 600 s: acme 1 Hz, nordhav 2 Hz, sakura 0.2 Hz; 5 devices = 2 acme, 2 nordhav, 1 sakura.
    assert sum(f.values.shape[0] for f in frames) == 2 * 600 + 2 * 1200 + 120


def test_simulator_source_numbers_do_not_depend_on_chunk_size() -> None:
    a = list(SimulatorSource(_scenario(), chunk_s=1).frames())
    b = list(SimulatorSource(_scenario(), chunk_s=600).frames())
    for device_id in ("p-0001", "p-0003"):
        va = np.concatenate([f.values for f in a if f.device_id == device_id])
        vb = np.concatenate([f.values for f in b if f.device_id == device_id])
        np.testing.assert_array_equal(va, vb)


def test_simulator_source_endless_keeps_going() -> None:
    frames = list(islice(SimulatorSource(_scenario(None, n=1), chunk_s=3600).frames(), 30))
    assert len(frames) == 30
    assert frames[-1].ts_ms[-1] == _START_MS + 30 * 3600 * 1000 - 1000


def test_simulator_source_paces_simulated_time_against_the_clock() -> None:
    now = [100.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    source = SimulatorSource(_scenario(600.0, n=1), chunk_s=60, speed=60.0, clock=lambda: now[0], sleep=sleep)
    frames = list(source.frames())
    assert len(frames) == 10
    # Ten simulated minutes at 60x take ten wall seconds, released one per chunk.
    assert sum(waits) == pytest.approx(10.0)
    assert waits == pytest.approx([1.0] * 10)


@pytest.mark.parametrize(("chunk_s", "speed"), [(0.0, None), (10.0, 0.0), (10.0, -1.0)])
def test_simulator_source_rejects_bad_settings(chunk_s: float, speed: float | None) -> None:
    with pytest.raises(ConfigError):
        SimulatorSource(_scenario(), chunk_s=chunk_s, speed=speed)
