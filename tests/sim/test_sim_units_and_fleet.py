"""Native units match the SI truth; the fleet builder; scenario validation; plausible normal data."""

from __future__ import annotations

import numpy as np
import pytest
from _simhelpers import MAKES, START_MS, one_device, quiet_scenario

from pumpops.errors import ConfigError
from pumpops.fleet import ManufacturerProfile, load_profiles
from pumpops.schema import CANONICAL_SENSORS, convert
from pumpops.sim import (
    REPLAY_ONLY_PROFILES,
    DriftKind,
    Event,
    FaultKind,
    FleetSimulator,
    Scenario,
    build_fleet,
    to_epoch_ms,
)


def _noiseless(profile: ManufacturerProfile) -> ManufacturerProfile:
    sensors = tuple(s.model_copy(update={"noise_std": 0.0}) for s in profile.sensors)
    return profile.model_copy(update={"sensors": sensors})


def _noiseless_trace(profile_id: str):  # type: ignore[no-untyped-def]
    profiles = {pid: _noiseless(p) for pid, p in load_profiles().items()}
    device = one_device(profile_id)
    sim = FleetSimulator(quiet_scenario(device, duration_s=600, profiles=profiles))
    return sim.device(device.device_id).trace()


def test_units_acme_discharge_pressure_is_si_over_6894_757() -> None:
    trace = _noiseless_trace("acme-ansi")
    np.testing.assert_allclose(
        trace.column("DISCH_PRESS"), trace.truth["discharge_pressure"] / 6894.757, rtol=1e-6
    )


@pytest.mark.parametrize("profile_id", MAKES)
def test_units_every_native_column_converts_back_to_the_si_truth(profile_id: str) -> None:
    trace = _noiseless_trace(profile_id)
    for sensor in trace.profile.sensors:
        si = convert(trace.column(sensor.native), sensor.unit, CANONICAL_SENSORS[sensor.canonical].unit)
        np.testing.assert_allclose(si, trace.truth[sensor.canonical], rtol=1e-9, err_msg=sensor.native)


@pytest.mark.parametrize("profile_id", MAKES)
def test_units_noise_matches_the_profile_noise_std(profile_id: str) -> None:
    device = one_device(profile_id)
    trace = FleetSimulator(quiet_scenario(device, duration_s=3600)).device(device.device_id).trace()
    for j, sensor in enumerate(trace.profile.sensors):
        expected = convert(
            trace.truth[sensor.canonical], CANONICAL_SENSORS[sensor.canonical].unit, sensor.unit
        )
        residual = trace.native[:, j] - expected
        assert residual.std() == pytest.approx(sensor.noise_std, rel=0.1), sensor.native


@pytest.mark.parametrize("profile_id", MAKES)
def test_normal_data_stays_inside_physical_bounds_and_near_the_nameplate(profile_id: str) -> None:
    device = one_device(profile_id)
    trace = FleetSimulator(quiet_scenario(device, duration_s=3600)).device(device.device_id).trace()
    for name, values in trace.truth.items():
        bounds = CANONICAL_SENSORS[name]
        assert np.isfinite(values).all()
        assert bounds.minimum <= values.min(), name
        assert values.max() <= bounds.maximum, name
    rating = trace.profile.pump
    flow_m3h = trace.truth["flow_rate"].mean() * 3600
    assert 0.7 * rating.rated_flow_m3h < flow_m3h < 1.1 * rating.rated_flow_m3h
    assert trace.truth["motor_power"].mean() < 1.1 * rating.rated_power_kw * 1e3 / 0.93


def test_fleet_builder_spreads_makes_sites_and_groups() -> None:
    fleet = build_fleet(30, seed=4)
    assert [d.device_id for d in fleet[:2]] == ["p-0001", "p-0002"]
    assert len({d.device_id for d in fleet}) == 30
    profiles = [d.profile_id for d in fleet]
    assert set(profiles) == set(MAKES)
    assert not set(profiles) & REPLAY_ONLY_PROFILES
    assert {profiles.count(p) for p in MAKES} == {10}
    assert len({d.site for d in fleet}) > 1
    assert all(d.group == d.profile_id for d in fleet)
    assert build_fleet(30, seed=4) == fleet
    assert build_fleet(40, seed=4)[:30] == fleet  # adding devices moves none


def test_fleet_builder_groups_per_profile_and_wide_ids() -> None:
    fleet = build_fleet(12_000, groups_per_profile=2)
    assert fleet[0].device_id == "p-00001"
    assert {d.group for d in fleet if d.profile_id == "acme-ansi"} == {"acme-ansi-1", "acme-ansi-2"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"devices": ()}, "at least one device"),
        ({"devices": build_fleet(2) + build_fleet(1)}, "repeat"),
        ({"duration_s": 0.0}, "positive"),
        ({"fault_rate_per_day": -1.0}, "fault_rate_per_day"),
        ({"drift_duration_s": (10.0, 5.0)}, "drift_duration_s"),
        ({"events": (Event("p-9999", FaultKind.SEAL_LEAK, 0, 1000),)}, "unknown device"),
        ({"devices": (build_fleet(1)[0].__class__("x-1", "s", "nope", "g"),)}, "unknown profile"),
    ],
)
def test_scenario_rejects_invalid_configuration(change: dict[str, object], message: str) -> None:
    options: dict[str, object] = {"devices": build_fleet(2), "start_ms": START_MS, **change}
    with pytest.raises(ConfigError, match=message):
        Scenario(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": FaultKind.SEAL_LEAK, "start_ms": 10, "end_ms": 10},
        {"kind": FaultKind.SEAL_LEAK, "start_ms": 0, "end_ms": 10, "severity": 0.0},
        {"kind": DriftKind.SETPOINT_CHANGE, "start_ms": 0, "end_ms": 10},
        {
            "kind": DriftKind.SENSOR_RECALIBRATION,
            "start_ms": 0,
            "end_ms": 10,
            "sensor": "nope",
            "offset": 1.0,
        },
        {"kind": DriftKind.AMBIENT_TEMPERATURE, "start_ms": 0, "end_ms": 10},
    ],
)
def test_event_rejects_invalid_fields(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Event(device_id="p-0001", **kwargs)  # type: ignore[arg-type]


def test_to_epoch_ms_accepts_iso_datetime_and_int() -> None:
    assert to_epoch_ms("2025-06-01T00:00:00Z") == START_MS
    assert to_epoch_ms("2025-06-01T02:00:00+02:00") == START_MS
    assert to_epoch_ms("2025-06-01 00:00:00") == START_MS
    with pytest.raises(ConfigError):
        to_epoch_ms("yesterday")
