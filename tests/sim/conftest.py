"""Fixtures for simulator tests (helpers live in ``_simhelpers``, importable by name)."""

from __future__ import annotations

import pytest
from _simhelpers import QuietTrace, one_device, quiet_scenario

from pumpops.sim import DeviceTrace, Event, FleetSimulator


@pytest.fixture
def quiet_trace() -> QuietTrace:
    """Simulate one device of a make with the given events, nothing else."""

    def run(profile_id: str, *events: Event, **kwargs: object) -> DeviceTrace:
        device = one_device(profile_id)
        scenario = quiet_scenario(device, *events, **kwargs)
        return FleetSimulator(scenario).device(device.device_id).trace()

    return run
