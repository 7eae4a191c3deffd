"""Manufacturer profiles, devices and device groups, target platform profiles.

Profiles are TOML files shipped in ``pumpops/fleet/profiles/`` (makes of pump)
and ``pumpops/fleet/targets/`` (edge computers), validated at load.
May import: ``pumpops.schema``, ``pumpops.errors``, pydantic. Edge-safe.
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
from pumpops.fleet._targets import (
    TargetBudgets,
    TargetProfile,
    get_target,
    load_target,
    load_targets,
    version_tuple,
)

__all__ = [
    "Device",
    "ManufacturerProfile",
    "ProfileSensor",
    "PumpRating",
    "TargetBudgets",
    "TargetProfile",
    "get_profile",
    "get_target",
    "load_profile",
    "load_profiles",
    "load_target",
    "load_targets",
    "version_tuple",
]
