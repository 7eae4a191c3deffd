"""What the agent reads of its manufacturer and target profiles, without pydantic or pint.

``pumpops.fleet`` validates the profile files with pydantic (and checks their units
with pint): right for the hub and the simulator, 20 MiB too heavy for the device
process. The agent needs little of them — which native channel is which canonical
sensor (and its unit), the target's execution providers and memory budget — so it
reads the same shipped TOML files (``pumpops/fleet/profiles``, ``pumpops/fleet/targets``)
with the standard library, through ``importlib.resources`` on the ``pumpops`` package
(so ``pumpops.fleet`` itself is not imported). The hub checked the files' units and
bounds when it built the bundle; here a missing or mistyped key is a ``ConfigError``
naming the file and the key. ``tests/edge/test_device_profiles.py`` holds that every
shipped file reads the same here as through ``pumpops.fleet``.
May import: errors, the stdlib.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from pumpops.errors import ConfigError, NotFoundError

__all__ = ["DeviceProfile", "DeviceTarget", "ProfileChannel", "read_profile", "read_target"]


@dataclass(frozen=True, slots=True)
class ProfileChannel:
    """One sensor as the pump reports it: its native name, the canonical sensor, the unit."""

    native: str
    canonical: str
    unit: str


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """The part of a manufacturer profile the agent uses."""

    id: str
    sample_period_s: float
    sensors: tuple[ProfileChannel, ...]

    def sensor(self, name: str) -> ProfileChannel | None:
        """The sensor whose native or canonical name is ``name``."""
        for sensor in self.sensors:
            if name in (sensor.native, sensor.canonical):
                return sensor
        return None


@dataclass(frozen=True, slots=True)
class DeviceTarget:
    """The part of a target profile the agent uses.

    Attributes:
        id: the target's id.
        execution_providers: onnxruntime providers in order of preference.
        max_peak_memory_mb: the memory budget of the agent process on such a device.
        max_latency_ms: the per-window latency budget.
    """

    id: str
    execution_providers: tuple[str, ...]
    max_peak_memory_mb: float
    max_latency_ms: float


def _shipped(folder: str, wanted: str, what: str) -> tuple[str, dict[str, Any]]:
    root = resources.files("pumpops").joinpath("fleet", folder)
    known = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        try:
            doc = tomllib.loads(entry.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {what} {entry.name}: {exc}") from exc
        known.append(str(doc.get("id")))
        if doc.get("id") == wanted:
            return entry.name, doc
    raise NotFoundError(f"unknown {what} {wanted!r}; known: {', '.join(sorted(known))}")


def _get(doc: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(f"{where}: {key} is missing or not a {getattr(kind, '__name__', kind)}")
    return value


def read_profile(profile_id: str) -> DeviceProfile:
    """The shipped manufacturer profile ``profile_id``.

    Raises:
        NotFoundError: no shipped profile has that id (the message lists the known ones).
        ConfigError: the file lacks a key the agent needs, or has it with the wrong type.
    """
    name, doc = _shipped("profiles", profile_id, "manufacturer profile")
    where = f"manufacturer profile {name}"
    sensors = _get(doc, "sensors", list, where)
    channels = []
    for i, s in enumerate(sensors):
        if not isinstance(s, dict):
            raise ConfigError(f"{where}: sensors[{i}] is not a table")
        at = f"{where}, sensors[{i}]"
        channels.append(
            ProfileChannel(
                _get(s, "native", str, at), _get(s, "canonical", str, at), _get(s, "unit", str, at)
            )
        )
    return DeviceProfile(
        id=profile_id,
        sample_period_s=float(_get(doc, "sample_period_s", (int, float), where)),
        sensors=tuple(channels),
    )


def read_target(target_id: str) -> DeviceTarget:
    """The shipped target profile ``target_id``.

    Raises:
        NotFoundError: no shipped target has that id.
        ConfigError: the file lacks a key the agent needs, or has it with the wrong type.
    """
    name, doc = _shipped("targets", target_id, "target")
    where = f"target profile {name}"
    providers = _get(doc, "execution_providers", list, where)
    if not providers or not all(isinstance(p, str) for p in providers):
        raise ConfigError(f"{where}: execution_providers must be a list of names")
    budgets = _get(doc, "budgets", dict, where)
    return DeviceTarget(
        id=target_id,
        execution_providers=tuple(providers),
        max_peak_memory_mb=float(_get(budgets, "max_peak_memory_mb", (int, float), where + " [budgets]")),
        max_latency_ms=float(_get(budgets, "max_latency_ms", (int, float), where + " [budgets]")),
    )
