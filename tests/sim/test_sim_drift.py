"""Benign drift: set-point changes obey the affinity laws, offsets are exact, ambient moves temperatures."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _simhelpers import START_MS, one_device, quiet_scenario

from pumpops.schema import convert
from pumpops.sim import (
    PROCESS_TUNING,
    AmbientModel,
    DeviceTrace,
    DriftKind,
    Event,
    FleetSimulator,
    Onset,
    ground_truth,
)
from pumpops.sim._physics import G_N

_CHANGE = START_MS + 3600_000
_END = START_MS + 7200_000
_NORDHAV = "nordhav-multistage"


def _trace_with_setpoint(ratio: float, *, static_head_fraction: float | None) -> tuple[DeviceTrace, float]:
    device = one_device(_NORDHAV)
    event = Event(device.device_id, DriftKind.SETPOINT_CHANGE, _CHANGE, _END, Onset.SUDDEN, 0.5, ratio)
    tuning = {}
    if static_head_fraction is not None:
        tuning = {
            _NORDHAV: dataclasses.replace(PROCESS_TUNING[_NORDHAV], static_head_fraction=static_head_fraction)
        }
    sim = FleetSimulator(quiet_scenario(device, event, tuning=tuning)).device(device.device_id)
    return sim.trace(), sim.base_ratio


def _before_after(trace: DeviceTrace, values: np.ndarray) -> tuple[float, float]:
    ts = trace.ts_ms
    # Skip the VSD ramp and the last ramp back to the base set-point.
    before = values[(ts >= START_MS + 600_000) & (ts < _CHANGE)]
    after = values[(ts >= _CHANGE + 600_000) & (ts < _END - 60_000)]
    return float(before.mean()), float(after.mean())


# Without static head the operating point moves along the affinity parabola and
# only the slow process fluctuations (about ±0.5 % on 50-minute means) blur it;
# the default system has 10 % static head, which bends the laws a few per cent.
@pytest.mark.parametrize(("static_head_fraction", "tolerance"), [(0.0, 0.02), (None, 0.08)])
def test_setpoint_change_follows_affinity_laws(static_head_fraction: float | None, tolerance: float) -> None:
    trace, base = _trace_with_setpoint(0.65, static_head_fraction=static_head_fraction)
    r = 0.65 / base
    rho = PROCESS_TUNING[_NORDHAV].fluid_density_kg_m3
    head = (trace.si("p_out") - trace.si("p_in")) / (rho * G_N)
    expected = {"n": r, "q": r, "head": r**2, "P_el": r**3}
    measured = {
        "n": trace.si("n"),
        "q": trace.si("q"),
        "head": head,
        "P_el": trace.si("P_el"),
    }
    for name, values in measured.items():
        before, after = _before_after(trace, values)
        assert after / before == pytest.approx(expected[name], rel=tolerance), name


def test_setpoint_change_is_labelled_drift_not_fault() -> None:
    device = one_device(_NORDHAV)
    event = Event(device.device_id, DriftKind.SETPOINT_CHANGE, _CHANGE, _END, Onset.SUDDEN, 0.5, 0.8)
    truth = ground_truth(quiet_scenario(device, event))
    (entry,) = truth["events"]
    assert (entry["kind"], entry["category"]) == ("setpoint_change", "drift")
    assert entry["params"]["to_speed_ratio"] == 0.8


def test_recalibration_offset_shifts_one_sensor_by_exactly_its_offset() -> None:
    device = one_device("acme-ansi")
    offset_k = 3.0
    event = Event(
        device.device_id,
        DriftKind.SENSOR_RECALIBRATION,
        _CHANGE,
        _END,
        sensor="bearing_temperature",
        offset=offset_k,
    )
    plain = FleetSimulator(quiet_scenario(device)).device(device.device_id).trace()
    biased = FleetSimulator(quiet_scenario(device, event)).device(device.device_id).trace()
    diff = biased.native - plain.native
    after = biased.ts_ms >= _CHANGE
    j = biased.sensors.index("bearing_temperature")
    # A kelvin of offset is 1.8 °F; nothing else changes, and the physics (truth) is untouched.
    np.testing.assert_allclose(diff[after, j], offset_k * 1.8)
    np.testing.assert_array_equal(np.delete(diff, j, axis=1), 0.0)
    np.testing.assert_array_equal(diff[~after], 0.0)
    np.testing.assert_array_equal(biased.truth["bearing_temperature"], plain.truth["bearing_temperature"])
    (entry,) = ground_truth(quiet_scenario(device, event))["events"]
    assert entry["category"] == "drift"
    assert entry["sensors"] == ["bearing_temperature"]
    assert entry["native_sensors"] == ["BRG_TEMP"]
    assert entry["params"]["offset_native"] == pytest.approx(5.4)


def test_ambient_drift_moves_temperatures_and_nothing_hydraulic() -> None:
    device = one_device("acme-ansi")
    day = 86_400.0
    still = FleetSimulator(quiet_scenario(device, duration_s=day)).device(device.device_id).trace()
    weather = FleetSimulator(
        quiet_scenario(device, duration_s=day, ambient=AmbientModel(daily_amplitude_k=(6.0, 6.0)))
    ).device(device.device_id)
    moving = weather.trace()
    for name in ("suction_pressure", "discharge_pressure", "flow_rate", "motor_current"):
        np.testing.assert_array_equal(moving.column(name), still.column(name))
    motor_c = convert(moving.column("MTR_TEMP"), "degF", "degC")
    hourly = motor_c.reshape(24, -1).mean(axis=1)
    # A daily cycle of ±6 K shows in the motor temperature (lagged, so a bit less).
    assert hourly.max() - hourly.min() > 8.0
    peak_local_hour = (int(np.argmax(hourly)) + weather.climate.utc_offset_h) % 24
    assert 13 <= peak_local_hour <= 19


def test_ambient_drift_is_labelled_drift_for_every_device() -> None:
    device = one_device("sakura-esp")
    truth = ground_truth(quiet_scenario(device, ambient=AmbientModel()))
    (entry,) = truth["events"]
    assert (entry["kind"], entry["category"]) == ("ambient_temperature", "drift")
    assert set(entry["sensors"]) == {
        "motor_temperature",
        "fluid_temperature",
    }  # the ESP has no bearing sensor
    assert truth["sites"][0]["site"] == device.site
