from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pumpops.errors import NotFoundError, UnitError
from pumpops.schema import CANONICAL_SENSORS, affine_to, canonical_sensor, convert


@pytest.mark.parametrize(
    ("value", "unit", "target", "expected"),
    [
        (1.0, "psi", "Pa", 6894.757293168),
        (2.5, "bar", "Pa", 250_000.0),
        (100.0, "kPa", "Pa", 100_000.0),
        (212.0, "degF", "K", 373.15),
        (25.0, "degC", "K", 298.15),
        (100.0, "gallon/minute", "m**3/s", 0.00630901964),
        (36.0, "m**3/hour", "m**3/s", 0.01),
        (60.0, "L/min", "m**3/s", 0.001),
        (60.0, "rpm", "rad/s", 2 * np.pi),
        (1.0, "gn", "m/s**2", 9.80665),
        (1.0, "in/s", "m/s", 0.0254),
        (4.5, "mm/s", "m/s", 0.0045),
        (22.0, "kW", "W", 22_000.0),
    ],
)
def test_convert_known_units_to_si(value: float, unit: str, target: str, expected: float) -> None:
    assert convert(np.array([value]), unit, target)[0] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("unit", "target", "fragment"),
    [
        ("psia2", "Pa", "unknown unit"),
        ("degC", "Pa", "measures"),
        ("g", "m/s**2", "measures"),  # gram, not standard gravity
        ("1/0", "Pa", "unknown unit"),
        ("", "Pa", "measures"),
    ],
)
def test_affine_to_rejects_bad_units(unit: str, target: str, fragment: str) -> None:
    with pytest.raises(UnitError, match=fragment):
        affine_to(unit, target)


@given(st.floats(min_value=-1e6, max_value=1e6))
def test_convert_round_trip_degf(value: float) -> None:
    there = convert(np.array([value]), "degF", "K")
    back = convert(there, "K", "degF")
    assert back[0] == pytest.approx(value, abs=1e-6)


def test_canonical_sensors_have_si_units_and_sane_bounds() -> None:
    for sensor in CANONICAL_SENSORS.values():
        affine_to(sensor.unit, sensor.unit)
        assert sensor.minimum < sensor.maximum, sensor.name
    assert canonical_sensor("flow_rate").unit == "m**3/s"
    with pytest.raises(NotFoundError, match="flow_rat"):
        canonical_sensor("flow_rat")


@pytest.mark.parametrize("unit", ["Hz", "1/s", "1/min", "kHz"])
def test_affine_to_rotational_speed_without_angle_is_rejected(unit: str) -> None:
    # pint treats the radian as dimensionless, so "Hz" would convert to rad/s with
    # factor 1 instead of 2π: a silent 6.28x error on every shaft speed.
    with pytest.raises(UnitError, match="rpm"):
        affine_to(unit, "rad/s")


@pytest.mark.parametrize(
    ("unit", "factor"), [("rev/s", 2 * np.pi), ("rpm", 2 * np.pi / 60), ("deg/s", np.pi / 180)]
)
def test_affine_to_rotational_speed_with_angle_converts(unit: str, factor: float) -> None:
    assert affine_to(unit, "rad/s")[0] == pytest.approx(factor, rel=1e-12)
