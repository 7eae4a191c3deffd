"""Manufacturer profiles: how a make of pump names its sensors, their units and rate."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from pumpops.errors import UnitError
from pumpops.fleet._toml import load_toml_model, pick_profile, profiles_by_id, shipped_files
from pumpops.schema import CANONICAL_SENSORS, IDENT_PATTERN, affine_to

_Ident = Annotated[str, StringConstraints(pattern=IDENT_PATTERN)]


class ProfileSensor(BaseModel):
    """One sensor as a make of pump reports it.

    Attributes:
        native: the name the device uses on the wire.
        canonical: the canonical sensor it measures.
        unit: the unit the device reports in (pint string).
        noise_std: standard deviation of measurement noise, in ``unit``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    native: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    canonical: str
    unit: str
    noise_std: float = Field(default=0.0, ge=0.0)

    @model_validator(mode="after")
    def _check_canonical_and_unit(self) -> ProfileSensor:
        if self.canonical not in CANONICAL_SENSORS:
            raise ValueError(
                f"canonical sensor {self.canonical!r} is unknown; known: {', '.join(CANONICAL_SENSORS)}"
            )
        try:
            affine_to(self.unit, CANONICAL_SENSORS[self.canonical].unit)
        except UnitError as exc:
            raise ValueError(f"sensor {self.native!r}: {exc}") from exc
        return self


class PumpRating(BaseModel):
    """Nameplate of the pump and motor, used by the simulator.

    Units are in the field names; these are design values at the best
    efficiency point (BEP).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rated_speed_rpm: float = Field(gt=0, le=12_000)
    rated_flow_m3h: float = Field(gt=0, le=20_000)
    rated_head_m: float = Field(gt=0, le=5_000)
    rated_power_kw: float = Field(gt=0, le=20_000)
    supply_voltage_v: float = Field(gt=0, le=20_000)
    efficiency: float = Field(gt=0, le=1)
    power_factor: float = Field(default=0.85, gt=0, le=1)
    phases: int = Field(default=3, ge=1, le=3)


class ManufacturerProfile(BaseModel):
    """How one make and model of pump reports its telemetry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: _Ident
    manufacturer: str
    model: str
    sample_period_s: float = Field(gt=0, le=3600)
    sensors: tuple[ProfileSensor, ...] = Field(min_length=1)
    pump: PumpRating

    @model_validator(mode="after")
    def _check_unique(self) -> ManufacturerProfile:
        natives = [s.native for s in self.sensors]
        canonicals = [s.canonical for s in self.sensors]
        for label, names in (("native", natives), ("canonical", canonicals)):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{label} sensor names repeat: {', '.join(dupes)}")
        return self

    def sensor(self, name: str) -> ProfileSensor | None:
        """Return the sensor whose native or canonical name is ``name``."""
        for sensor in self.sensors:
            if name in (sensor.native, sensor.canonical):
                return sensor
        return None


@dataclass(frozen=True, slots=True)
class Device:
    """A registered pump: where it is, what make it is, which group it is in."""

    device_id: str
    site: str
    profile_id: str
    group: str


def load_profile(path: Path) -> ManufacturerProfile:
    """Load and validate one profile file.

    Raises:
        ConfigError: the file is not valid TOML or not a valid profile.
    """
    return load_toml_model(path, ManufacturerProfile, "profile")


def load_profiles(extra_dirs: Iterable[Path] = ()) -> dict[str, ManufacturerProfile]:
    """Return shipped profiles plus those in ``extra_dirs`` (which win on equal ids)."""
    return profiles_by_id(shipped_files("profiles", load_profile), extra_dirs, load_profile)


def get_profile(profile_id: str, extra_dirs: Iterable[Path] = ()) -> ManufacturerProfile:
    """Return the profile ``profile_id``.

    Raises:
        NotFoundError: no such profile.
    """
    return pick_profile(load_profiles(extra_dirs), profile_id, "manufacturer profile")
