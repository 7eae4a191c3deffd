"""What the engine hands out: a device's simulated samples, with the truth behind them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from pumpops.errors import ConfigError
from pumpops.fleet import ManufacturerProfile
from pumpops.schema import CANONICAL_SENSORS, affine_to
from pumpops.sim._scenario import Event

__all__ = ["DeviceTrace"]


@dataclass(frozen=True, slots=True)
class DeviceTrace:
    """Simulated samples of one device, with the truth behind them.

    Attributes:
        device_id: the device.
        profile: its manufacturer profile.
        ts_ms: shape ``(M,)`` int64, ms since the Unix epoch.
        native: shape ``(M, N)``: what the device reports, in the profile's
            sensor order, native names and units (noise and sensor offsets included).
        truth: noise-free physical values of every canonical quantity, in SI
            units, keyed by canonical name (including sensors the make lacks).
        events: the fault and drift events that overlap the samples.
    """

    device_id: str
    profile: ManufacturerProfile
    ts_ms: np.ndarray
    native: np.ndarray
    truth: Mapping[str, np.ndarray]
    events: tuple[Event, ...]

    @property
    def sensors(self) -> tuple[str, ...]:
        """Canonical names of the columns of :attr:`native`."""
        return tuple(s.canonical for s in self.profile.sensors)

    def column(self, name: str) -> np.ndarray:
        """Return one reported column, by native or canonical name, in native units.

        Raises:
            ConfigError: the make has no such sensor.
        """
        for j, sensor in enumerate(self.profile.sensors):
            if name in (sensor.native, sensor.canonical):
                return self.native[:, j]
        raise ConfigError(f"profile {self.profile.id} has no sensor {name!r}")

    def si(self, name: str) -> np.ndarray:
        """Return one reported column converted to its canonical SI unit."""
        sensor = self.profile.sensor(name)
        if sensor is None:
            raise ConfigError(f"profile {self.profile.id} has no sensor {name!r}")
        scale, offset = affine_to(sensor.unit, CANONICAL_SENSORS[sensor.canonical].unit)
        return self.column(name) * scale + offset
