"""The canonical sensors: one name, one SI unit and physical bounds each."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from pumpops.errors import NotFoundError

#: Device ids, sites and sensor names on the wire (``pumpops.schema._wire`` checks them with it).
IDENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"


@dataclass(frozen=True, slots=True)
class CanonicalSensor:
    """A quantity pumpops stores, in one SI unit.

    Attributes:
        name: canonical sensor name used everywhere above the wire.
        unit: the SI unit readings are stored in (a pint unit string).
        minimum: lowest physically possible value, in ``unit``.
        maximum: highest physically possible value, in ``unit``.
        description: what the sensor measures.
    """

    name: str
    unit: str
    minimum: float
    maximum: float
    description: str


# Bounds are "physically impossible beyond", not alarm limits: they catch
# unit mistakes (psi sent as Pa) and broken sensors, never faults.
# Pressures are gauge pressures, so they may go down to about -1 atm.
_SENSORS = (
    CanonicalSensor("suction_pressure", "Pa", -1.05e5, 1.0e7, "gauge pressure at the pump inlet"),
    CanonicalSensor("discharge_pressure", "Pa", -1.05e5, 5.0e7, "gauge pressure at the pump outlet"),
    CanonicalSensor("flow_rate", "m**3/s", -1.0, 10.0, "volumetric flow through the pump"),
    CanonicalSensor("motor_speed", "rad/s", 0.0, 1.2e3, "shaft speed"),
    CanonicalSensor("motor_current", "A", 0.0, 5.0e3, "motor phase current (RMS)"),
    CanonicalSensor("motor_voltage", "V", 0.0, 2.0e4, "motor supply voltage (RMS)"),
    CanonicalSensor("motor_power", "W", 0.0, 2.0e7, "electrical power drawn by the motor"),
    CanonicalSensor("motor_temperature", "K", 200.0, 500.0, "motor winding or body temperature"),
    CanonicalSensor("bearing_temperature", "K", 200.0, 500.0, "pump bearing housing temperature"),
    CanonicalSensor("fluid_temperature", "K", 200.0, 700.0, "pumped fluid temperature"),
    CanonicalSensor("vibration_velocity", "m/s", 0.0, 1.0, "casing vibration velocity (RMS)"),
    CanonicalSensor("vibration_accel_de", "m/s**2", 0.0, 2.0e3, "vibration acceleration RMS, drive end"),
    CanonicalSensor("vibration_accel_nde", "m/s**2", 0.0, 2.0e3, "vibration acceleration RMS, non-drive end"),
)

CANONICAL_SENSORS: MappingProxyType[str, CanonicalSensor] = MappingProxyType(
    {sensor.name: sensor for sensor in _SENSORS}
)


def canonical_sensor(name: str) -> CanonicalSensor:
    """Return the canonical sensor called ``name``.

    Raises:
        NotFoundError: no canonical sensor has that name.
    """
    try:
        return CANONICAL_SENSORS[name]
    except KeyError:
        known = ", ".join(CANONICAL_SENSORS)
        raise NotFoundError(f"unknown canonical sensor {name!r}; known: {known}") from None
