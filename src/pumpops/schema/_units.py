"""Unit conversion to canonical SI units, decided by pint.

pint is asked once per (unit, canonical unit) pair for the affine map
``si = scale * value + offset``; the map is cached and applied to numpy arrays,
so converting 100,000 readings costs one multiply-add, not 100,000 pint calls.
pint (and the scipy parts it loads, ~25 MiB) is imported on the first conversion,
not with this module: the device agent never converts through pint, it applies the
pairs the hub computed into the bundle (``BundleSensor.from_units``).
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import TYPE_CHECKING

import numpy as np

from pumpops.errors import UnitError

if TYPE_CHECKING:
    import pint


@cache
def _registry() -> pint.UnitRegistry[float]:
    import pint  # noqa: PLC0415 - heavy; only where units are converted (hub, simulator)

    ureg: pint.UnitRegistry[float] = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    # Vibration is often given in multiples of standard gravity; "g" in pint is the
    # gram, a classic unit mistake that must fail loudly, so "gn" is the way to say it.
    ureg.define("gn = 9.80665 m/s**2")
    ureg.define("@alias revolution = rev")
    return ureg


@lru_cache(maxsize=1024)
def affine_to(unit: str, target: str) -> tuple[float, float]:
    """Return ``(scale, offset)`` such that ``target_value = scale * value + offset``.

    Args:
        unit: the unit values are given in, as a pint string (``"psi"``, ``"degF"``).
        target: the unit wanted.

    Raises:
        UnitError: ``unit`` is unknown or of a different dimension than ``target``.

    >>> affine_to("bar", "Pa")
    (100000.0, 0.0)
    >>> scale, offset = affine_to("degC", "K"); round(scale, 6), round(offset, 2)
    (1.0, 273.15)
    """
    import pint  # noqa: PLC0415 - see _registry

    ureg = _registry()
    try:
        src = ureg.Unit(unit)
    except (pint.UndefinedUnitError, AttributeError, TypeError, ValueError, AssertionError) as exc:
        raise UnitError(f"unknown unit {unit!r}") from exc
    except Exception as exc:  # pint raises assorted parser errors for garbage strings
        raise UnitError(f"unknown unit {unit!r} ({exc.__class__.__name__})") from exc
    dst = ureg.Unit(target)
    if src.dimensionality != dst.dimensionality:
        raise UnitError(
            f"unit {unit!r} measures {src.dimensionality}, but {target!r} is needed "
            f"(dimension {dst.dimensionality})"
        )
    if _has_angle(dst) and not _has_angle(src):
        # pint treats the radian as dimensionless, so Hz would become rad/s with
        # factor 1 instead of 2π: a silent error on every shaft speed.
        raise UnitError(
            f"unit {unit!r} does not say what rotates: a rotational speed needs an angle per time, "
            f"such as 'rpm', 'rev/s' or 'rad/s' (1 rev/s = 2π rad/s)"
        )
    zero = ureg.Quantity(0.0, src).to(dst).magnitude
    one = ureg.Quantity(1.0, src).to(dst).magnitude
    return float(one - zero), float(zero)


def _has_angle(unit: pint.Unit) -> bool:
    root = _registry().get_root_units(unit)[1]
    return "radian" in str(root)


def convert(values: np.ndarray, unit: str, target: str) -> np.ndarray:
    """Convert an array of values from ``unit`` to ``target``.

    >>> convert(np.array([32.0, 212.0]), "degF", "degC").round(6).tolist() == [0.0, 100.0]
    True
    """
    scale, offset = affine_to(unit, target)
    return np.asarray(values, dtype=np.float64) * scale + offset


def check_unit(unit: str, target: str) -> None:
    """Raise :class:`UnitError` unless ``unit`` converts to ``target``."""
    affine_to(unit, target)
