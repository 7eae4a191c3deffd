"""The simulator as a source: a scenario's fleet, streamed chunk by chunk in simulated-time order."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from pumpops.errors import ConfigError
from pumpops.fleet import Device
from pumpops.sim import FleetSimulator, Scenario
from pumpops.sources._base import Channel, Frame, Source


class SimulatorSource(Source):
    """Frames of every device of a scenario, one time chunk at a time.

    Chunk ``c`` covers simulated time ``[start + c·chunk_s, start + (c+1)·chunk_s)``;
    for each chunk the source yields one frame per device that has samples in
    it (each device at its own profile's sample period), in the scenario's
    device order, so frames come out in simulated-time order across the fleet.
    The numbers do not depend on ``chunk_s``: a frame is a slice of the
    device's deterministic sample sequence.

    Args:
        scenario: what to simulate; an endless scenario (``duration_s=None``)
            makes an endless source.
        chunk_s: simulated seconds per chunk.
        speed: simulated seconds per wall-clock second (``1.0`` is real time,
            ``3600`` one simulated hour per second); None yields as fast as
            the consumer takes frames. A chunk is released once its simulated
            end has been reached on the paced clock.
        clock: monotonic clock in seconds (injectable for tests).
        sleep: how to wait (injectable for tests).

    Raises:
        ConfigError: ``chunk_s`` or ``speed`` is not positive.

    >>> from pumpops.sim import Scenario, build_fleet
    >>> src = SimulatorSource(Scenario(devices=build_fleet(3), start_ms=0, duration_s=10), chunk_s=5)
    >>> [(f.device_id, f.values.shape) for f in src.frames()][:3]
    [('p-0001', (5, 9)), ('p-0002', (10, 10)), ('p-0003', (1, 9))]
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        chunk_s: float = 10.0,
        speed: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        chunk_ms = round(chunk_s * 1000)
        if chunk_ms < 1:
            raise ConfigError("chunk_s must be at least 1 ms")
        if speed is not None and not speed > 0:
            raise ConfigError("speed must be positive (simulated seconds per wall second), or None")
        self.scenario = scenario
        self.chunk_ms = chunk_ms
        self.speed = speed
        self._clock = clock
        self._sleep = sleep
        self._channels = {
            device_id: tuple(Channel(s.native, s.unit) for s in scenario.profile_of(device_id).sensors)
            for device_id in (d.device_id for d in scenario.devices)
        }

    @property
    def devices(self) -> tuple[Device, ...]:
        """The devices this source yields frames for."""
        return self.scenario.devices

    def __repr__(self) -> str:
        return (
            f"SimulatorSource(devices={len(self.scenario.devices)}, seed={self.scenario.seed}, "
            f"chunk_ms={self.chunk_ms})"
        )

    def _frames(self) -> Iterator[Frame]:
        # A fresh simulator per iteration: iterating twice gives the same frames.
        sim = FleetSimulator(self.scenario)
        start, end = self.scenario.start_ms, self.scenario.end_ms
        device_sims = [sim.device(d.device_id) for d in self.scenario.devices]
        wall_start = self._clock()
        lo = start
        while end is None or lo < end:
            hi = lo + self.chunk_ms if end is None else min(lo + self.chunk_ms, end)
            if self.speed is not None:
                due = wall_start + (hi - start) / 1000.0 / self.speed
                wait = due - self._clock()
                if wait > 0:
                    self._sleep(wait)
            for dev in device_sims:
                ts, values = dev.window(lo, hi)
                if ts.shape[0]:
                    device_id = dev.device.device_id
                    yield Frame(device_id, ts, self._channels[device_id], values)
            lo = hi
