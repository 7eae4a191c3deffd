"""Fault and drift signatures (which sensors move, which way) and their time envelopes.

The signatures are the documentation of what the engine does and the
ground truth's "affected sensors"; tests check that the engine's output moves
the way they say.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from pumpops.sim._scenario import DriftKind, Event, EventKind, FaultKind, Onset

#: A sudden event steps in over this many seconds (a VSD ramps the speed; a
#: recalibration is an instant step).
SUDDEN_RAMP_S: MappingProxyType[EventKind, float] = MappingProxyType(
    {
        FaultKind.CAVITATION: 10.0,
        FaultKind.BEARING_WEAR: 5.0,
        FaultKind.SEAL_LEAK: 5.0,
        FaultKind.IMPELLER_WEAR: 5.0,
        FaultKind.VALVE_BLOCKAGE: 5.0,
        DriftKind.SETPOINT_CHANGE: 20.0,
        DriftKind.SENSOR_RECALIBRATION: 0.0,
        DriftKind.PUMP_REPLACEMENT: 0.0,
        DriftKind.SEASONAL_AMBIENT: 3600.0,
    }
)
#: A gradual event reaches its full severity after this share of its interval.
GRADUAL_SHARE = 0.7
#: How an event ends: a VSD ramps back; repairs and recalibrations are steps.
END_RAMP_S: MappingProxyType[EventKind, float] = MappingProxyType({DriftKind.SETPOINT_CHANGE: 20.0})


@dataclass(frozen=True, slots=True)
class Signature:
    """What an event does to the canonical sensors.

    Attributes:
        kind: the fault or drift kind.
        summary: one sentence on the physics.
        up: sensors whose mean rises.
        down: sensors whose mean falls.
        noisier: sensors whose short-term spread grows.
        other: sensors that move in a way that depends on the case (drift).
    """

    kind: EventKind
    summary: str
    up: frozenset[str] = frozenset()
    down: frozenset[str] = frozenset()
    noisier: frozenset[str] = frozenset()
    other: frozenset[str] = frozenset()

    @property
    def sensors(self) -> tuple[str, ...]:
        """Every canonical sensor the event affects, sorted."""
        return tuple(sorted(self.up | self.down | self.noisier | self.other))


_TEMPERATURES = frozenset({"motor_temperature", "bearing_temperature", "fluid_temperature"})
_VIBRATION = frozenset({"vibration_velocity", "vibration_accel_de", "vibration_accel_nde"})

SIGNATURES: MappingProxyType[EventKind, Signature] = MappingProxyType(
    {
        # Motor temperature follows the square of the current with a lag of
        # tens of minutes, so it is listed wherever the current moves.
        FaultKind.CAVITATION: Signature(
            FaultKind.CAVITATION,
            "inlet pressure falls towards the vapour pressure; vapour bubbles collapse on the impeller: "
            "head breaks down unsteadily, high-frequency vibration rises",
            up=_VIBRATION,
            down=frozenset(
                {
                    "suction_pressure",
                    "discharge_pressure",
                    "flow_rate",
                    "motor_power",
                    "motor_current",
                    "motor_temperature",
                }
            ),
            noisier=frozenset(
                {
                    "discharge_pressure",
                    "flow_rate",
                    "motor_power",
                    "motor_current",
                    "vibration_accel_de",
                    "vibration_accel_nde",
                }
            ),
        ),
        FaultKind.BEARING_WEAR: Signature(
            FaultKind.BEARING_WEAR,
            "a wearing rolling-element bearing: vibration and bearing temperature rise, friction adds "
            "a little load",
            up=_VIBRATION | {"bearing_temperature", "motor_power", "motor_current", "motor_temperature"},
        ),
        FaultKind.SEAL_LEAK: Signature(
            FaultKind.SEAL_LEAK,
            "fluid escapes between the pump and the flow meter: less metered flow and discharge "
            "pressure at the same speed; the pump itself runs at more flow and draws a little more power",
            up=frozenset({"motor_power", "motor_current", "motor_temperature"}),
            down=frozenset({"flow_rate", "discharge_pressure"}),
        ),
        FaultKind.IMPELLER_WEAR: Signature(
            FaultKind.IMPELLER_WEAR,
            "eroded vanes and opened wear rings: less head, internal recirculation, lower efficiency; "
            "the current drawn per unit of delivered flow rises",
            down=frozenset(
                {"flow_rate", "discharge_pressure", "motor_power", "motor_current", "motor_temperature"}
            ),
        ),
        FaultKind.VALVE_BLOCKAGE: Signature(
            FaultKind.VALVE_BLOCKAGE,
            "a discharge-side restriction steepens the system curve: the pump rides back on its curve "
            "to less flow and more head, draws less power, runs rougher away from its best efficiency "
            "point and warms the fluid it churns",
            up=_VIBRATION | {"discharge_pressure", "suction_pressure", "fluid_temperature"},
            down=frozenset({"flow_rate", "motor_power", "motor_current", "motor_temperature"}),
        ),
        DriftKind.AMBIENT_TEMPERATURE: Signature(
            DriftKind.AMBIENT_TEMPERATURE,
            "daily and seasonal weather moves every temperature by the same few kelvin; the pump is fine",
            other=_TEMPERATURES,
        ),
        DriftKind.SETPOINT_CHANGE: Signature(
            DriftKind.SETPOINT_CHANGE,
            "the operator moves the speed set-point: flow, head and power follow the affinity laws "
            "(r, r², r³), current, voltage, vibration and temperatures follow; the pump is fine",
            other=frozenset(
                {
                    "suction_pressure",
                    "discharge_pressure",
                    "flow_rate",
                    "motor_speed",
                    "motor_current",
                    "motor_voltage",
                    "motor_power",
                    "motor_temperature",
                    "bearing_temperature",
                }
            )
            | _VIBRATION,
        ),
        DriftKind.SENSOR_RECALIBRATION: Signature(
            DriftKind.SENSOR_RECALIBRATION,
            "one sensor is recalibrated and now reads with a constant offset; the pump is fine",
        ),
        DriftKind.SEASONAL_AMBIENT: Signature(
            DriftKind.SEASONAL_AMBIENT,
            "the season turns: the ambient temperature moves by several kelvin and stays there; "
            "fluid, motor and bearing temperatures follow; the pump is fine",
            other=_TEMPERATURES,
        ),
        DriftKind.PUMP_REPLACEMENT: Signature(
            DriftKind.PUMP_REPLACEMENT,
            "the pump is swapped for a new unit of the same make: its curve and efficiency sit a few "
            "per cent higher within the make's tolerance, its new bearings run smoother and cooler; "
            "the pump is fine",
            up=frozenset({"discharge_pressure", "flow_rate"}),
            down=_VIBRATION | {"bearing_temperature"},
            other=frozenset({"suction_pressure", "motor_power", "motor_current", "motor_temperature"}),
        ),
    }
)


def affected_sensors(event: Event) -> tuple[str, ...]:
    """Return the canonical sensors an event affects.

    >>> from pumpops.sim._scenario import Event, DriftKind
    >>> affected_sensors(Event("p-1", DriftKind.SENSOR_RECALIBRATION, 0, 1, sensor="flow_rate", offset=1e-3))
    ('flow_rate',)
    """
    if event.kind is DriftKind.SENSOR_RECALIBRATION and event.sensor is not None:
        return (event.sensor,)
    return SIGNATURES[event.kind].sensors


def envelope(ts_ms: np.ndarray, event: Event) -> np.ndarray:
    """Return the event's effect over time, 0 (none) to 1 (full severity).

    Zero outside ``[start_ms, end_ms)``; a sudden onset ramps in over
    :data:`SUDDEN_RAMP_S`, a gradual one over :data:`GRADUAL_SHARE` of the interval.

    >>> from pumpops.sim._scenario import Event, FaultKind, Onset
    >>> e = Event("p-1", FaultKind.BEARING_WEAR, 0, 10_000, onset=Onset.GRADUAL)
    >>> envelope(np.array([-1, 0, 3500, 7000, 9999, 10_000]), e).tolist()
    [0.0, 0.0, 0.5, 1.0, 1.0, 0.0]
    """
    since_s = (ts_ms - event.start_ms) / 1000.0
    until_s = (event.end_ms - ts_ms) / 1000.0
    if event.onset is Onset.GRADUAL:
        ramp = GRADUAL_SHARE * (event.end_ms - event.start_ms) / 1000.0
    else:
        ramp = SUDDEN_RAMP_S.get(event.kind, 5.0)
    up = np.clip(since_s / ramp, 0.0, 1.0) if ramp > 0 else (since_s >= 0).astype(np.float64)
    down_ramp = END_RAMP_S.get(event.kind, 0.0)
    down = np.clip(until_s / down_ramp, 0.0, 1.0) if down_ramp > 0 else (until_s > 0).astype(np.float64)
    return np.where((since_s >= 0) & (until_s > 0), up * down, 0.0)
