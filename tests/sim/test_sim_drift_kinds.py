"""The scheduled benign drifts of the loop benchmark: a season turns, a pump is replaced (issue 15).

Each moves the sensors its signature names, by about the amount the physics says, leaves
the others alone, and is labelled ``drift`` in the ground truth with its parameters.
"""

from __future__ import annotations

import numpy as np
import pytest
from _simhelpers import START_MS, one_device, quiet_scenario

from pumpops.errors import ConfigError
from pumpops.sim import SIGNATURES, DriftKind, Event, FleetSimulator, Onset, ground_truth

_ON = START_MS + 3600_000
_END = START_MS + 3 * 3600_000


def _means(profile: str, event: Event | None) -> dict[str, tuple[float, float]]:
    """Per canonical sensor: the SI truth's mean in the last 30 minutes with and without ``event``."""
    device = one_device(profile)
    with_event = quiet_scenario(device, *(() if event is None else (event,)), duration_s=3 * 3600.0)
    twin = quiet_scenario(device, duration_s=3 * 3600.0)
    a = FleetSimulator(twin).device(device.device_id).trace()
    b = FleetSimulator(with_event).device(device.device_id).trace()
    late = a.ts_ms >= _END - 1800_000
    return {name: (float(a.truth[name][late].mean()), float(b.truth[name][late].mean())) for name in a.truth}


def _event(profile: str, kind: DriftKind, **kw: object) -> Event:
    device = one_device(profile)
    return Event(device.device_id, kind, _ON, _END + 3600_000, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("profile", "motor_rise_min"), [("acme-ansi", 0.9), ("sakura-esp", 0.0)])
def test_seasonal_ambient_moves_the_temperatures_only(profile: str, motor_rise_min: float) -> None:
    means = _means(profile, _event(profile, DriftKind.SEASONAL_AMBIENT, offset=12.0))
    moved = set(SIGNATURES[DriftKind.SEASONAL_AMBIENT].sensors)
    for name, (before, after) in means.items():
        if name in moved:
            continue
        assert after == pytest.approx(before, rel=1e-9, abs=1e-12), name
    # air-cooled motors follow the air; a submersible's motor follows the fluid (weakly coupled)
    motor_k = means["motor_temperature"][1] - means["motor_temperature"][0]
    assert motor_rise_min * 12.0 <= motor_k <= 12.0 + 1e-6
    fluid_k = means["fluid_temperature"][1] - means["fluid_temperature"][0]
    assert 0.0 < fluid_k < 12.0


def test_pump_replacement_moves_its_signature_the_way_it_says() -> None:
    means = _means("acme-ansi", _event("acme-ansi", DriftKind.PUMP_REPLACEMENT))
    sig = SIGNATURES[DriftKind.PUMP_REPLACEMENT]

    def change(name: str) -> float:
        before, after = means[name]
        return (after - before) / abs(before)

    for name in sig.up:
        assert change(name) > 0.01, name
    for name in sig.down - {"bearing_temperature"}:
        assert change(name) < -0.2, name  # new bearings: about a third less vibration
    assert means["bearing_temperature"][1] - means["bearing_temperature"][0] < -2.0  # kelvin
    assert means["motor_speed"] == pytest.approx(means["motor_speed"][::-1])  # same set-point


def test_no_event_means_no_change() -> None:
    """The comparison itself can tell: without an event the twin is identical."""
    means = _means("acme-ansi", None)
    assert all(a == b for a, b in means.values())


@pytest.mark.parametrize(
    ("kind", "kw", "params"),
    [
        (DriftKind.SEASONAL_AMBIENT, {"offset": -8.0}, {"ambient_change_k": -8.0}),
        (
            DriftKind.PUMP_REPLACEMENT,
            {"severity": 0.5},
            {"head_factor": 1.02, "efficiency_factor": 1.025, "bearing_change_k": -2.0},
        ),
    ],
)
def test_scheduled_drift_is_labelled_drift_with_its_parameters(
    kind: DriftKind, kw: dict[str, float], params: dict[str, float]
) -> None:
    device = one_device("nordhav-multistage")
    event = Event(device.device_id, kind, _ON, _END, **kw)  # type: ignore[arg-type]
    (entry,) = ground_truth(quiet_scenario(device, event, duration_s=3 * 3600.0))["events"]
    assert (entry["kind"], entry["category"], entry["device_id"]) == (str(kind), "drift", device.device_id)
    assert (entry["start_ms"], entry["end_ms"]) == (_ON, _END)
    assert entry["params"] == pytest.approx(params)
    assert set(entry["sensors"]) <= set(SIGNATURES[kind].sensors)
    assert entry["sensors"]


@pytest.mark.parametrize("offset", [None, float("nan"), 80.0])
def test_seasonal_ambient_without_a_sane_offset_is_refused(offset: float | None) -> None:
    with pytest.raises(ConfigError, match=r"seasonal_ambient.*offset"):
        Event("p-1", DriftKind.SEASONAL_AMBIENT, 0, 1000, Onset.GRADUAL, offset=offset)


def test_seasonal_ambient_ramps_in_over_an_hour() -> None:
    device = one_device("acme-ansi")
    event = Event(device.device_id, DriftKind.SEASONAL_AMBIENT, _ON, _END, offset=12.0)
    sim = FleetSimulator(quiet_scenario(device, event, duration_s=3 * 3600.0)).device(device.device_id)
    twin = FleetSimulator(quiet_scenario(device, duration_s=3 * 3600.0)).device(device.device_id)
    a, b = twin.trace(), sim.trace()
    diff = b.truth["fluid_temperature"] - a.truth["fluid_temperature"]
    assert np.all(diff[a.ts_ms < _ON] == 0.0)
    quarter = diff[(a.ts_ms >= _ON + 900_000 - 60_000) & (a.ts_ms < _ON + 900_000)].mean()
    late = diff[a.ts_ms >= _END - 1800_000].mean()
    assert 0.0 < quarter < 0.6 * late
