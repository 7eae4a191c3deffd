"""What to simulate: the fleet, the time window, the seed, and the fault and drift events.

Pure data and validation; the engine (``_engine.py``) turns a :class:`Scenario`
into numbers.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import numpy as np

from pumpops.errors import ConfigError
from pumpops.fleet import Device, ManufacturerProfile, load_profiles
from pumpops.schema import CANONICAL_SENSORS
from pumpops.sim._physics import ProcessTuning

#: Shipped profiles that are replays of real recordings, not simulated makes.
REPLAY_ONLY_PROFILES = frozenset({"skab-testbed"})

DEFAULT_SITES = ("north-sea-a", "permian-b", "gulf-c", "kanto-d")


class FaultKind(StrEnum):
    """A pump fault: the machine is degrading and someone should act."""

    CAVITATION = "cavitation"
    BEARING_WEAR = "bearing_wear"
    SEAL_LEAK = "seal_leak"
    IMPELLER_WEAR = "impeller_wear"
    VALVE_BLOCKAGE = "valve_blockage"


class DriftKind(StrEnum):
    """Benign drift: the data changes, the machine is fine (a detector must not alarm)."""

    AMBIENT_TEMPERATURE = "ambient_temperature"
    SETPOINT_CHANGE = "setpoint_change"
    SENSOR_RECALIBRATION = "sensor_recalibration"
    SEASONAL_AMBIENT = "seasonal_ambient"
    PUMP_REPLACEMENT = "pump_replacement"


class Onset(StrEnum):
    """How an event's effect appears: a step or a ramp."""

    SUDDEN = "sudden"
    GRADUAL = "gradual"


EventKind = FaultKind | DriftKind


@dataclass(frozen=True, slots=True)
class Event:
    """One fault or drift on one device, active in ``[start_ms, end_ms)``.

    Outside the interval the event has no effect at all; a sudden event steps
    in within seconds, a gradual one ramps up over the first 70 % of the
    interval (wear progresses) and both end at ``end_ms`` (repair, operator
    resets the set-point, sensor recalibrated again).

    Attributes:
        device_id: the device it happens to.
        kind: a :class:`FaultKind` or :class:`DriftKind`.
        start_ms: start, ms since the Unix epoch (UTC).
        end_ms: end (exclusive), ms since the Unix epoch.
        onset: ``sudden`` or ``gradual``.
        severity: 0 < severity <= 1; how far the effect goes at its peak.
        speed_ratio: for ``setpoint_change``: the new speed over rated speed.
        sensor: for ``sensor_recalibration``: the canonical sensor that is biased.
        offset: for ``sensor_recalibration``: the bias in the canonical SI unit;
            for ``seasonal_ambient``: the change of the ambient temperature, K.
    """

    device_id: str
    kind: EventKind
    start_ms: int
    end_ms: int
    onset: Onset = Onset.SUDDEN
    severity: float = 1.0
    speed_ratio: float | None = None
    sensor: str | None = None
    offset: float | None = None

    def __post_init__(self) -> None:
        if self.end_ms <= self.start_ms:
            raise ConfigError(f"event {self.kind} on {self.device_id}: end_ms must be after start_ms")
        if not 0.0 < self.severity <= 1.0:
            raise ConfigError(f"event {self.kind} on {self.device_id}: severity must be in (0, 1]")
        if self.kind is DriftKind.SETPOINT_CHANGE and not (
            self.speed_ratio is not None and 0.3 <= self.speed_ratio <= 1.1
        ):
            raise ConfigError(f"setpoint_change on {self.device_id} needs speed_ratio in [0.3, 1.1]")
        if self.kind is DriftKind.SENSOR_RECALIBRATION and (
            self.sensor not in CANONICAL_SENSORS or self.offset is None or not math.isfinite(self.offset)
        ):
            raise ConfigError(
                f"sensor_recalibration on {self.device_id} needs a canonical sensor and a finite offset"
            )
        if self.kind is DriftKind.SEASONAL_AMBIENT and (
            self.offset is None or not math.isfinite(self.offset) or abs(self.offset) > 40.0
        ):
            raise ConfigError(
                f"seasonal_ambient on {self.device_id} needs offset: the ambient change in K, within ±40"
            )
        if self.kind is DriftKind.AMBIENT_TEMPERATURE:
            raise ConfigError(
                "ambient temperature is a property of the scenario (Scenario.ambient), not an event"
            )

    @property
    def category(self) -> str:
        """``fault`` or ``drift``."""
        return "fault" if isinstance(self.kind, FaultKind) else "drift"


@dataclass(frozen=True, slots=True)
class AmbientModel:
    """Ambient temperature: a per-site mean with daily and seasonal sinusoids.

    Site parameters are drawn from the scenario seed and the site name, in
    these ranges; the daily peak is at 15:00 local time and the seasonal peak
    in late July (northern hemisphere sites; a negative seasonal amplitude
    would model the south).

    Attributes:
        mean_c: range of the yearly mean temperature per site, °C.
        daily_amplitude_k: range of the daily half-swing, K.
        seasonal_amplitude_k: range of the seasonal half-swing, K.
    """

    mean_c: tuple[float, float] = (4.0, 26.0)
    daily_amplitude_k: tuple[float, float] = (3.0, 8.0)
    seasonal_amplitude_k: tuple[float, float] = (4.0, 12.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """Everything that determines the simulated data: same scenario, same numbers.

    Random events are renewal processes per device (a new fault can start
    only after the last one ended), drawn from a random stream keyed by the
    seed and the device id, so a device's data never depends on which other
    devices are in the scenario. ``events`` are added to the random ones.

    Attributes:
        devices: the fleet.
        start_ms: simulated start, ms since the Unix epoch (UTC).
        duration_s: simulated length, or None for an endless stream.
        seed: the seed of everything random.
        fault_rate_per_day: expected random faults per device per day.
        drift_rate_per_day: expected random set-point changes and sensor
            recalibrations per device per day.
        fault_duration_s: (min, max) length of a random fault.
        drift_duration_s: (min, max) length of a random drift event.
        events: an explicit schedule, added to the random events.
        ambient: the ambient model, or None for a constant ambient per site.
        profiles: manufacturer profiles by id (default: the shipped ones).
        tuning: process tuning overrides by profile id (see ``ProcessTuning``).
    """

    devices: tuple[Device, ...]
    start_ms: int
    duration_s: float | None = 3600.0
    seed: int = 0
    fault_rate_per_day: float = 1.0
    drift_rate_per_day: float = 2.0
    fault_duration_s: tuple[float, float] = (600.0, 4 * 3600.0)
    drift_duration_s: tuple[float, float] = (600.0, 6 * 3600.0)
    events: tuple[Event, ...] = ()
    ambient: AmbientModel | None = field(default_factory=AmbientModel)
    profiles: Mapping[str, ManufacturerProfile] = field(default_factory=load_profiles)
    tuning: Mapping[str, ProcessTuning] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "devices", tuple(self.devices))
        object.__setattr__(self, "events", tuple(self.events))
        if not self.devices:
            raise ConfigError("a scenario needs at least one device")
        ids = [d.device_id for d in self.devices]
        if len(set(ids)) != len(ids):
            raise ConfigError("device ids repeat in the scenario")
        for device in self.devices:
            if device.profile_id not in self.profiles:
                raise ConfigError(
                    f"device {device.device_id}: unknown profile {device.profile_id!r}; "
                    f"known: {', '.join(sorted(self.profiles))}"
                )
        if self.duration_s is not None and not self.duration_s > 0:
            raise ConfigError("duration_s must be positive (or None for an endless stream)")
        if self.seed < 0:
            raise ConfigError("seed must be a non-negative integer")
        for name in ("fault_rate_per_day", "drift_rate_per_day"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0")
        for name in ("fault_duration_s", "drift_duration_s"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ConfigError(f"{name} must be (min, max) with 0 < min <= max")
        known = set(ids)
        for event in self.events:
            if event.device_id not in known:
                raise ConfigError(f"event {event.kind} names unknown device {event.device_id!r}")

    @property
    def end_ms(self) -> int | None:
        """End of the simulated window (exclusive), or None if endless."""
        if self.duration_s is None:
            return None
        return self.start_ms + round(self.duration_s * 1000)

    def device(self, device_id: str) -> Device:
        """Return the device called ``device_id``.

        Raises:
            ConfigError: no such device in the scenario.
        """
        for device in self.devices:
            if device.device_id == device_id:
                return device
        raise ConfigError(f"device {device_id!r} is not in the scenario")

    def profile_of(self, device_id: str) -> ManufacturerProfile:
        """Return the manufacturer profile of ``device_id``."""
        return self.profiles[self.device(device_id).profile_id]


def to_epoch_ms(when: datetime | str | int) -> int:
    """Return ms since the Unix epoch for a datetime, an ISO-8601 string or an int (ms).

    Naive datetimes and strings without an offset are taken as UTC.

    >>> to_epoch_ms("2025-01-01T00:00:00Z")
    1735689600000
    >>> to_epoch_ms(1735689600000)
    1735689600000

    Raises:
        ConfigError: the string is not ISO-8601.
    """
    if isinstance(when, int):
        return when
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when)
        except ValueError as exc:
            raise ConfigError(f"not an ISO-8601 time: {when!r}") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return round(when.timestamp() * 1000)


def iso_utc(ms: int) -> str:
    """Return an ISO-8601 UTC string with milliseconds for epoch ``ms``.

    >>> iso_utc(1735689600123)
    '2025-01-01T00:00:00.123Z'
    """
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def build_fleet(
    n_devices: int,
    seed: int = 0,
    *,
    profiles: Sequence[str] | None = None,
    sites: Sequence[str] = DEFAULT_SITES,
    groups_per_profile: int = 1,
    id_prefix: str = "p",
) -> tuple[Device, ...]:
    """Return ``n_devices`` devices spread evenly over manufacturer profiles and sites.

    Device ``i`` (from 1) is ``p-0001`` …, its profile is the ``i``-th in turn
    (so every make is equally represented), its site is drawn from the seed and
    its own index (adding devices does not move existing ones), and its group is
    the profile id (one detector per make: makes differ in sensors and units)
    or ``<profile>-<k>`` with ``groups_per_profile > 1``.

    Args:
        n_devices: how many devices.
        seed: seed of the site assignment.
        profiles: profile ids to use; default all shipped ones except replays
            of real recordings (``skab-testbed``).
        sites: site names to spread over.
        groups_per_profile: split each make into this many groups (rollout rings).
        id_prefix: device ids are ``<prefix>-<number>``.

    Raises:
        ConfigError: a count is not positive, or a profile is unknown.

    >>> [(d.device_id, d.profile_id) for d in build_fleet(4)][:4]  # doctest: +NORMALIZE_WHITESPACE
    [('p-0001', 'acme-ansi'), ('p-0002', 'nordhav-multistage'), ('p-0003', 'sakura-esp'),
     ('p-0004', 'acme-ansi')]
    """
    if n_devices < 1 or groups_per_profile < 1 or not sites:
        raise ConfigError("build_fleet needs n_devices >= 1, groups_per_profile >= 1 and a site")
    shipped = load_profiles()
    chosen = (
        sorted(p for p in shipped if p not in REPLAY_ONLY_PROFILES) if profiles is None else list(profiles)
    )
    for profile_id in chosen:
        if profile_id not in shipped:
            raise ConfigError(f"unknown profile {profile_id!r}; known: {', '.join(sorted(shipped))}")
    width = max(4, len(str(n_devices)))
    devices = []
    for i in range(n_devices):
        profile_id = chosen[i % len(chosen)]
        rng = np.random.default_rng([seed, i])
        site = sites[int(rng.integers(len(sites)))]
        k = (i // len(chosen)) % groups_per_profile
        group = profile_id if groups_per_profile == 1 else f"{profile_id}-{k + 1}"
        devices.append(Device(f"{id_prefix}-{i + 1:0{width}d}", site, profile_id, group))
    return tuple(devices)


def name_key(name: str) -> tuple[int, ...]:
    """Return a stable key of 32-bit words for a name, for ``SeedSequence`` spawn keys.

    Python's ``hash`` is salted per process; a digest is the same everywhere.
    """
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=16).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


def rng_for(seed: int, name: str, *purpose: int) -> np.random.Generator:
    """Return the random stream for (seed, a device or site name, a purpose path)."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(*name_key(name), *purpose)))
    )
