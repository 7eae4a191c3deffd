"""Each fault moves its signature sensors the right way against the same device without it."""

from __future__ import annotations

import numpy as np
import pytest
from _simhelpers import MAKES, START_MS, QuietTrace, one_device

from pumpops.sim import SIGNATURES, DeviceTrace, Event, FaultKind, Onset, envelope

_FAULT_START = START_MS + 1800_000
_END = START_MS + 7200_000
_LAST_HOUR = START_MS + 3600_000


def _z(faulty: np.ndarray, healthy: np.ndarray) -> float:
    """Difference of means in units of its standard error (noise and slow fluctuations included)."""
    se = np.sqrt(faulty.var() / faulty.size + healthy.var() / healthy.size)
    return float((faulty.mean() - healthy.mean()) / max(se, 1e-12))


def _hf_std(x: np.ndarray) -> float:
    """Spread of sample-to-sample changes: high-frequency noise, not slow trends."""
    return float(np.diff(x).std())


def _fault(profile_id: str, kind: FaultKind, onset: Onset = Onset.SUDDEN, severity: float = 0.8) -> Event:
    return Event(one_device(profile_id).device_id, kind, _FAULT_START, _END, onset, severity)


@pytest.mark.parametrize("profile_id", MAKES)
@pytest.mark.parametrize("kind", list(FaultKind))
def test_fault_moves_signature_sensors_in_the_documented_direction(
    quiet_trace: QuietTrace, profile_id: str, kind: FaultKind
) -> None:
    healthy = quiet_trace(profile_id)
    faulty = quiet_trace(profile_id, _fault(profile_id, kind))
    signature = SIGNATURES[kind]
    late = faulty.ts_ms >= _LAST_HOUR
    checked = 0
    for sensor in faulty.profile.sensors:
        name = sensor.canonical
        z = _z(faulty.column(name)[late], healthy.column(name)[late])
        if name in signature.up:
            assert z > 4, f"{kind} should raise {name} on {profile_id} (z={z:.1f})"
            checked += 1
        if name in signature.down:
            assert z < -4, f"{kind} should lower {name} on {profile_id} (z={z:.1f})"
            checked += 1
        if name in signature.noisier:
            ratio = _hf_std(faulty.column(name)[late]) / _hf_std(healthy.column(name)[late])
            assert ratio > 1.5, f"{kind} should make {name} noisier on {profile_id} (x{ratio:.2f})"
    assert checked >= 3, f"{kind} touches too few of {profile_id}'s sensors to be detectable"


@pytest.mark.parametrize("kind", list(FaultKind))
def test_fault_leaves_data_before_its_start_untouched(quiet_trace: QuietTrace, kind: FaultKind) -> None:
    healthy = quiet_trace("nordhav-multistage")
    faulty = quiet_trace("nordhav-multistage", _fault("nordhav-multistage", kind))
    before = faulty.ts_ms < _FAULT_START
    np.testing.assert_array_equal(faulty.native[before], healthy.native[before])


def test_fault_signature_of_impeller_wear_raises_current_per_unit_flow(quiet_trace: QuietTrace) -> None:
    healthy = quiet_trace("acme-ansi")
    worn = quiet_trace("acme-ansi", _fault("acme-ansi", FaultKind.IMPELLER_WEAR))
    late = worn.ts_ms >= _LAST_HOUR

    def amps_per_flow(t: DeviceTrace) -> float:
        return float(t.column("AMPS")[late].mean() / t.column("FLOW")[late].mean())

    assert amps_per_flow(worn) > 1.05 * amps_per_flow(healthy)


def test_fault_gradual_onset_grows_over_the_interval(quiet_trace: QuietTrace) -> None:
    healthy = quiet_trace("acme-ansi")
    worn = quiet_trace("acme-ansi", _fault("acme-ansi", FaultKind.BEARING_WEAR, Onset.GRADUAL))
    excess = worn.column("VIB_VEL") - healthy.column("VIB_VEL")
    ts = worn.ts_ms
    early = excess[(ts >= _FAULT_START) & (ts < _FAULT_START + 600_000)].mean()
    later = excess[(ts >= _FAULT_START + 2400_000) & (ts < _FAULT_START + 3000_000)].mean()
    last = excess[ts >= _END - 600_000].mean()
    assert 0 < early < later < last


def test_fault_sudden_onset_is_full_within_seconds(quiet_trace: QuietTrace) -> None:
    event = _fault("acme-ansi", FaultKind.VALVE_BLOCKAGE)
    ramp = envelope(np.array([_FAULT_START + 1_000, _FAULT_START + 10_000]), event)
    assert ramp[0] < 1.0
    assert ramp[1] == 1.0


def test_fault_truth_is_in_si_and_ends_with_its_interval(quiet_trace: QuietTrace) -> None:
    event = Event(one_device("acme-ansi").device_id, FaultKind.VALVE_BLOCKAGE, _FAULT_START, _LAST_HOUR)
    healthy = quiet_trace("acme-ansi")
    faulty = quiet_trace("acme-ansi", event)
    during = (faulty.ts_ms >= _FAULT_START + 60_000) & (faulty.ts_ms < _LAST_HOUR)
    after = faulty.ts_ms >= _LAST_HOUR
    flow_h, flow_f = healthy.truth["flow_rate"], faulty.truth["flow_rate"]
    assert (flow_f[during] < 0.8 * flow_h[during]).all()
    # Hydraulics return at once when the valve is cleared (temperatures take their time).
    np.testing.assert_allclose(flow_f[after], flow_h[after])
    assert faulty.events == (event,)
