"""Helpers for simulator tests: quiet scenarios (no random events) to compare a device with its twin."""

from __future__ import annotations

from collections.abc import Callable

from pumpops.fleet import Device
from pumpops.sim import DeviceTrace, Event, Scenario, build_fleet

START_MS = 1_748_736_000_000  # 2025-06-01T00:00:00Z
MAKES = ("acme-ansi", "nordhav-multistage", "sakura-esp")

QuietTrace = Callable[..., DeviceTrace]


def one_device(profile_id: str) -> Device:
    """The first device of a fleet built over one make."""
    return build_fleet(1, profiles=[profile_id])[0]


def quiet_scenario(device: Device, *events: Event, duration_s: float = 7200.0, **kwargs: object) -> Scenario:
    """A scenario with only the given events: no random faults or drift, constant ambient."""
    options: dict[str, object] = {
        "start_ms": START_MS,
        "duration_s": duration_s,
        "seed": 11,
        "fault_rate_per_day": 0.0,
        "drift_rate_per_day": 0.0,
        "ambient": None,
        **kwargs,
    }
    return Scenario(devices=(device,), events=events, **options)  # type: ignore[arg-type]
