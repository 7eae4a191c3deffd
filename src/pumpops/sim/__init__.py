"""A physics-informed pump fleet: operating points, faults, benign drift and ground truth.

May import: schema, fleet, errors, numpy.

Quick use::

    from pumpops.sim import Scenario, build_fleet, FleetSimulator, write_ground_truth

    scenario = Scenario(devices=build_fleet(30, seed=7), start_ms=to_epoch_ms("2025-06-01T00:00Z"),
                        duration_s=3600, seed=7)
    trace = FleetSimulator(scenario).device("p-0001").trace()   # arrays + truth
    write_ground_truth("truth.json", scenario)

(:class:`pumpops.sources.SimulatorSource` streams the same numbers as frames.)

Normal behaviour comes from the make's nameplate (``PumpRating``): a speed
set-point held by a VSD, a quadratic pump curve scaled by the affinity laws
against a system curve ``H = H_static + k·Q²``, electrical power
``ρ·g·Q·H / (η_pump·η_motor)``, current from ``P = √3·V·I·pf``, first-order
thermal lags for fluid, motor and bearing, vibration ∝ speed², slow red-noise
process fluctuations, and the profile's sensor noise in native units.
:data:`SIGNATURES` says what each fault and drift does to which sensor.

Ground-truth file (``write_ground_truth``), format ``pumpops.ground-truth/1``::

    {
      "format": "pumpops.ground-truth/1",
      "seed": 7,
      "start": "2025-06-01T00:00:00.000Z", "start_ms": 1748736000000,
      "end":   "2025-06-01T01:00:00.000Z", "end_ms":   1748739600000,
      "devices": [{"device_id": "p-0001", "site": "gulf-c", "profile": "acme-ansi",
                   "group": "acme-ansi", "base_speed_ratio": 0.9531}, ...],
      "sites":   [{"site": "gulf-c", "ambient_mean_c": 21.3, "daily_amplitude_k": 5.1,
                   "seasonal_amplitude_k": 8.0, "utc_offset_h": -6}, ...],
      "events": [
        {"device_id": "p-0001",
         "kind": "bearing_wear",           # FaultKind or DriftKind value
         "category": "fault",              # "fault" | "drift"
         "start": "...Z", "end": "...Z",   # ISO-8601 UTC, end exclusive
         "start_ms": 1748737000000, "end_ms": 1748739000000,
         "clipped": false,                 # true: the interval runs past "end" and was cut there
         "onset": "gradual",               # "sudden" | "gradual"
         "severity": 0.74,                 # 0 < severity <= 1, effect at its peak
         "sensors": ["bearing_temperature", ...],  # canonical sensors the device has that it moves
         "native_sensors": ["BRG_TEMP", ...],      # the same, by the device's own names
         "params": {}},                    # kind-specific, below
        ...]
    }

Events are sorted by start time, then device. ``params``: for
``setpoint_change`` ``from_speed_ratio``/``to_speed_ratio`` (speed over rated
speed); for ``sensor_recalibration`` ``sensor``, ``offset_si``, ``si_unit``,
``native``, ``offset_native``, ``unit``; for ``ambient_temperature`` (one
entry per device over the whole window, present unless ambient drift is off)
``site`` — the climate is in ``sites``; for ``seasonal_ambient`` (a scheduled
change of a pump's ambient temperature) ``ambient_change_k``; for
``pump_replacement`` (a new unit of the same make) ``head_factor``,
``efficiency_factor``, ``bearing_change_k``. Faults are always ``category: fault``,
the five drift kinds always ``category: drift``: a detector that alarms on
drift is wrong.
"""

from typing import TYPE_CHECKING

from pumpops._lazy import lazy_exports

if TYPE_CHECKING:
    from pumpops.sim._blocks import BLOCK_SAMPLES
    from pumpops.sim._climate import SiteClimate
    from pumpops.sim._engine import DeviceSimulator, FleetSimulator
    from pumpops.sim._faults import SIGNATURES, Signature, affected_sensors, envelope
    from pumpops.sim._physics import PROCESS_TUNING, ProcessTuning, PumpModel
    from pumpops.sim._scenario import (
        DEFAULT_SITES,
        REPLAY_ONLY_PROFILES,
        AmbientModel,
        DriftKind,
        Event,
        FaultKind,
        Onset,
        Scenario,
        build_fleet,
        iso_utc,
        to_epoch_ms,
    )
    from pumpops.sim._trace import DeviceTrace
    from pumpops.sim._truth import GROUND_TRUTH_FORMAT, ground_truth, write_ground_truth

#: Where each public name lives: loaded on first use, so that ``pumpops --help`` (which
#: imports this package's ``_cli``) does not load numpy and the simulator.
_LAZY: dict[str, str] = {
    "BLOCK_SAMPLES": "pumpops.sim._blocks",
    "SiteClimate": "pumpops.sim._climate",
    "DeviceSimulator": "pumpops.sim._engine",
    "FleetSimulator": "pumpops.sim._engine",
    "DeviceTrace": "pumpops.sim._trace",
    "SIGNATURES": "pumpops.sim._faults",
    "Signature": "pumpops.sim._faults",
    "affected_sensors": "pumpops.sim._faults",
    "envelope": "pumpops.sim._faults",
    "PROCESS_TUNING": "pumpops.sim._physics",
    "ProcessTuning": "pumpops.sim._physics",
    "PumpModel": "pumpops.sim._physics",
    "DEFAULT_SITES": "pumpops.sim._scenario",
    "REPLAY_ONLY_PROFILES": "pumpops.sim._scenario",
    "AmbientModel": "pumpops.sim._scenario",
    "DriftKind": "pumpops.sim._scenario",
    "Event": "pumpops.sim._scenario",
    "FaultKind": "pumpops.sim._scenario",
    "Onset": "pumpops.sim._scenario",
    "Scenario": "pumpops.sim._scenario",
    "build_fleet": "pumpops.sim._scenario",
    "iso_utc": "pumpops.sim._scenario",
    "to_epoch_ms": "pumpops.sim._scenario",
    "GROUND_TRUTH_FORMAT": "pumpops.sim._truth",
    "ground_truth": "pumpops.sim._truth",
    "write_ground_truth": "pumpops.sim._truth",
}


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)


__all__ = [
    "BLOCK_SAMPLES",
    "DEFAULT_SITES",
    "GROUND_TRUTH_FORMAT",
    "PROCESS_TUNING",
    "REPLAY_ONLY_PROFILES",
    "SIGNATURES",
    "AmbientModel",
    "DeviceSimulator",
    "DeviceTrace",
    "DriftKind",
    "Event",
    "FaultKind",
    "FleetSimulator",
    "Onset",
    "ProcessTuning",
    "PumpModel",
    "Scenario",
    "Signature",
    "SiteClimate",
    "affected_sensors",
    "build_fleet",
    "envelope",
    "ground_truth",
    "iso_utc",
    "to_epoch_ms",
    "write_ground_truth",
]
