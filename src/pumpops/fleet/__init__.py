"""Manufacturer profiles, devices and device groups (target platforms arrive with packaging).

Profiles are TOML files shipped in ``pumpops/fleet/profiles/`` and validated at
load. May import: ``pumpops.schema``, ``pumpops.errors``, pydantic. Edge-safe.
"""

from pumpops.fleet._profiles import (
    Device,
    ManufacturerProfile,
    ProfileSensor,
    PumpRating,
    get_profile,
    load_profile,
    load_profiles,
)

__all__ = [
    "Device",
    "ManufacturerProfile",
    "ProfileSensor",
    "PumpRating",
    "get_profile",
    "load_profile",
    "load_profiles",
]
