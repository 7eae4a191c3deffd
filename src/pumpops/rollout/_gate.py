"""The health gate of one rollout wave: a pure verdict (pass, wait or fail) from device reports.

A device *responds* when it has reported since the wave started
(``last_seen_s >= wave_started_s``); one that has not is offline as far as
the gate is concerned. A responder is *healthy* when it runs the release
(``installed_version``), reports health ``ok`` and is not crash-looping.

Rules, in the order they are checked (the first that decides wins):

1. **fail** when more responders crash-loop than ``max_crash_loops``.
2. **fail** when so many responders report health ``failed`` that the wave
   could not reach ``min_installed_fraction`` even if every other device
   installed.
3. once the wave has soaked ``min_soak_s``: **fail** when the mean alarm
   rate of the healthy responders on the release is more than
   ``max_alarm_rate_ratio`` times their mean baseline rate on the previous
   model (the baseline is raised to ``min_alarm_rate_floor_per_h``, so a
   baseline of zero alarms does not divide by zero and one alarm is not an
   infinite ratio). Devices without both rates are left out; if none has
   both, the check is skipped (the group's first rollout has no baseline).
4. before the deadline: **pass** when the soak time is over and healthy
   devices make up ``min_installed_fraction`` of the *whole wave*; else
   **wait** (the reasons say what is missing).
5. at the deadline (``deadline_s`` after the wave started): offline devices
   no longer count. **fail** when fewer than ``quorum_fraction`` of the wave
   responded or fewer than ``min_installed_fraction`` of the *responders*
   are healthy; else **pass**.

What the gate does not see: devices of earlier waves (fleet monitoring
watches those), and alarm rates that fall (a retrained model is meant to
raise fewer false alarms).

May import: errors and the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Final, Literal, get_args

from pumpops.errors import ConfigError, InputError

__all__ = ["DeviceReport", "GatePolicy", "GateVerdict", "Health", "OnFail", "judge_wave"]

#: What a gate failure does: stop where it is, or make the previous release desired again.
OnFail = Literal["pause", "rollback"]
#: A device's own verdict on the model it was told to run.
Health = Literal["ok", "failed", "unknown"]
_ON_FAIL: Final = get_args(OnFail)
_HEALTH: Final = get_args(Health)


@dataclass(frozen=True, slots=True)
class GatePolicy:
    """When a wave passes, waits or fails.

    Attributes:
        min_installed_fraction: healthy devices needed, as a fraction of the
            wave before the deadline and of the responders at the deadline.
        quorum_fraction: responders needed at the deadline, as a fraction of the wave.
        deadline_s: seconds after a wave starts when offline devices stop counting.
        min_soak_s: seconds a wave runs before it can pass and before alarm rates are judged.
        max_crash_loops: crash-looping devices a wave tolerates (0: none).
        max_alarm_rate_ratio: highest allowed (mean alarm rate on the release) /
            (mean baseline rate on the previous model).
        min_alarm_rate_floor_per_h: alarms per hour the baseline is raised to, at least.
        on_fail: ``pause`` or ``rollback``.

    Raises:
        ConfigError: a value is out of its range (the message names the field).
    """

    min_installed_fraction: float = 0.9
    quorum_fraction: float = 0.8
    deadline_s: float = 3600.0  # s
    min_soak_s: float = 600.0  # s
    max_crash_loops: int = 0
    max_alarm_rate_ratio: float = 3.0
    min_alarm_rate_floor_per_h: float = 0.5  # alarms per hour
    on_fail: OnFail = "rollback"

    def __post_init__(self) -> None:
        for name in ("min_installed_fraction", "quorum_fraction"):
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 < value <= 1.0:
                raise ConfigError(f"gate {name}: {value!r} must be a fraction above 0 and at most 1")
        for name in ("deadline_s", "max_alarm_rate_ratio", "min_alarm_rate_floor_per_h"):
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 < value < math.inf:
                raise ConfigError(f"gate {name}: {value!r} must be a finite number above 0")
        if not _is_number(self.min_soak_s) or not 0.0 <= self.min_soak_s <= self.deadline_s:
            raise ConfigError(
                f"gate min_soak_s: {self.min_soak_s!r} must be from 0 to deadline_s ({self.deadline_s})"
            )
        if isinstance(self.max_crash_loops, bool) or not isinstance(self.max_crash_loops, int):
            raise ConfigError(f"gate max_crash_loops: {self.max_crash_loops!r} must be a whole number")
        if self.max_crash_loops < 0:
            raise ConfigError(f"gate max_crash_loops: {self.max_crash_loops} must be 0 or more")
        if self.on_fail not in _ON_FAIL:
            raise ConfigError(f"gate on_fail: {self.on_fail!r} must be one of {', '.join(_ON_FAIL)}")

    def to_dict(self) -> dict[str, Any]:
        """The policy as JSON-ready values (stored with the rollout)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GatePolicy:
        """Read a policy written by :meth:`to_dict`; missing keys take their defaults.

        Raises:
            ConfigError: an unknown key, or a value out of range.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"gate: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**dict(data))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """What the hub last heard from one device, as the gate needs it.

    Attributes:
        device_id: the device.
        installed_version: the release it runs (``None``: no model yet).
        health: ``ok``, ``failed`` (it could not install or run the desired
            release and says so) or ``unknown``.
        crash_loop: the agent restarts over and over.
        alarm_rate_per_h: alarms per hour on the installed release (``None``: not known yet).
        baseline_alarm_rate_per_h: alarms per hour on the previous model, same device.
        last_seen_s: when the device last reported (s, the hub's clock).

    Raises:
        InputError: a rate is negative or not finite, or health is unknown to pumpops.
    """

    device_id: str
    installed_version: str | None
    health: Health
    crash_loop: bool
    alarm_rate_per_h: float | None
    baseline_alarm_rate_per_h: float | None
    last_seen_s: float

    def __post_init__(self) -> None:
        if self.health not in _HEALTH:
            raise InputError(
                f"report of {self.device_id}: health {self.health!r} is not one of {', '.join(_HEALTH)}"
            )
        for name in ("alarm_rate_per_h", "baseline_alarm_rate_per_h"):
            value = getattr(self, name)
            if value is not None and (not _is_number(value) or not 0.0 <= value < math.inf):
                raise InputError(f"report of {self.device_id}: {name} {value!r} must be a finite rate ≥ 0")
        if not _is_number(self.last_seen_s) or not math.isfinite(self.last_seen_s):
            raise InputError(f"report of {self.device_id}: last_seen_s {self.last_seen_s!r} is not a time")


@dataclass(frozen=True, slots=True)
class GateVerdict:
    """The gate's answer for one wave at one moment.

    Attributes:
        outcome: ``pass``, ``wait`` or ``fail``.
        reasons: sentences a person can act on (why it failed, what it waits for).
        wave_size: devices in the wave.
        responders: devices that reported since the wave started.
        healthy: responders running the release, health ok, not crash-looping.
        alarm_rate_ratio: the ratio judged by rule 3 (``None``: not judged).
    """

    outcome: Literal["pass", "wait", "fail"]
    reasons: tuple[str, ...]
    wave_size: int
    responders: int
    healthy: int
    alarm_rate_ratio: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The verdict as JSON-ready values (for audit entries and events)."""
        doc = asdict(self)
        doc["reasons"] = list(self.reasons)
        return doc


def _names(devices: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(devices[:limit])
    return shown + (f" and {len(devices) - limit} more" if len(devices) > limit else "")


def _needed(fraction: float, total: int) -> int:
    """How many of ``total`` make ``fraction`` (0.7 of 10 is 7, not 7.000000000000001)."""
    return math.ceil(fraction * total - 1e-9)


def _pct(fraction: float) -> str:
    return f"{fraction * 100:g} %"


def judge_wave(  # noqa: PLR0911, PLR0912 - one return per rule, in the documented order
    policy: GatePolicy,
    wave_devices: Sequence[str],
    reports: Iterable[DeviceReport],
    *,
    version: str,
    now_s: float,
    wave_started_s: float,
) -> GateVerdict:
    """Judge one wave (rules in the module docstring).

    Args:
        policy: the rollout's gate.
        wave_devices: the devices of this wave.
        reports: the latest report per device; reports of other devices are
            ignored, and of two reports for one device the later one counts.
        version: the release being rolled out.
        now_s: the hub's clock now (s).
        wave_started_s: when the wave's desired state was written (s, same clock).

    Returns:
        The verdict with its reasons and counts.

    Raises:
        InputError: the wave is empty.

    >>> policy = GatePolicy(min_soak_s=0)
    >>> ok = DeviceReport("p-1", "v2", "ok", False, 1.0, 1.2, last_seen_s=20)
    >>> judge_wave(policy, ["p-1"], [ok], version="v2", now_s=30, wave_started_s=10).outcome
    'pass'
    >>> looping = DeviceReport("p-1", "v2", "ok", True, None, None, last_seen_s=20)
    >>> judge_wave(policy, ["p-1"], [looping], version="v2", now_s=30, wave_started_s=10).reasons
    ('1 device(s) crash-loop (at most 0 allowed): p-1',)

    A baseline of zero alarms is raised to the floor (0.5/h by default):

    >>> quiet = DeviceReport("p-1", "v2", "ok", False, 1.2, 0.0, last_seen_s=20)
    >>> judge_wave(policy, ["p-1"], [quiet], version="v2", now_s=30, wave_started_s=10).alarm_rate_ratio
    2.4
    """
    if not wave_devices:
        raise InputError("a wave without devices cannot be judged")
    in_wave = set(wave_devices)
    latest: dict[str, DeviceReport] = {}
    for r in reports:
        if r.device_id in in_wave and (
            r.device_id not in latest or r.last_seen_s >= latest[r.device_id].last_seen_s
        ):
            latest[r.device_id] = r
    responders = [latest[d] for d in wave_devices if d in latest and latest[d].last_seen_s >= wave_started_s]
    healthy = [
        r for r in responders if r.installed_version == version and r.health == "ok" and not r.crash_loop
    ]
    looping = [r.device_id for r in responders if r.crash_loop]
    failed = [r.device_id for r in responders if r.health == "failed" and not r.crash_loop]
    n = len(wave_devices)
    elapsed = now_s - wave_started_s

    def verdict(
        outcome: Literal["pass", "wait", "fail"], reasons: Sequence[str], ratio: float | None = None
    ) -> GateVerdict:
        return GateVerdict(outcome, tuple(reasons), n, len(responders), len(healthy), ratio)

    if len(looping) > policy.max_crash_loops:
        return verdict(
            "fail",
            [
                f"{len(looping)} device(s) crash-loop (at most {policy.max_crash_loops} allowed): "
                + _names(looping)
            ],
        )
    unhealthy = len(failed) + len(looping)
    if (n - unhealthy) < _needed(policy.min_installed_fraction, n):
        return verdict(
            "fail",
            [
                f"{len(failed)} of {n} device(s) report the release failed ({_names(failed)}): "
                f"{_pct(policy.min_installed_fraction)} healthy can no longer be reached"
            ],
        )
    ratio: float | None = None
    if elapsed >= policy.min_soak_s:
        rated = [
            r for r in healthy if r.alarm_rate_per_h is not None and r.baseline_alarm_rate_per_h is not None
        ]
        if rated:
            new = sum(r.alarm_rate_per_h or 0.0 for r in rated) / len(rated)
            base = sum(r.baseline_alarm_rate_per_h or 0.0 for r in rated) / len(rated)
            ratio = new / max(base, policy.min_alarm_rate_floor_per_h)
            if ratio > policy.max_alarm_rate_ratio:
                return verdict(
                    "fail",
                    [
                        f"alarm rate on {version} is {new:.3g}/h against {base:.3g}/h on the previous model "
                        f"(ratio {ratio:.3g} with the floor {policy.min_alarm_rate_floor_per_h:g}/h; "
                        f"at most {policy.max_alarm_rate_ratio:g} allowed) over {len(rated)} device(s)"
                    ],
                    ratio,
                )
    if elapsed < policy.deadline_s:
        reasons: list[str] = []
        if elapsed < policy.min_soak_s:
            reasons.append(f"soaking: {elapsed:g} of {policy.min_soak_s:g} s")
        need = _needed(policy.min_installed_fraction, n)
        if len(healthy) < need:
            silent = [d for d in wave_devices if d not in {r.device_id for r in responders}]
            reasons.append(
                f"{len(healthy)} of {n} device(s) run {version} healthily, {need} needed before the deadline"
                + (f"; not heard from since the wave started: {_names(silent)}" if silent else "")
            )
        if reasons:
            return verdict("wait", reasons, ratio)
        return verdict("pass", [f"{len(healthy)} of {n} device(s) run {version} healthily"], ratio)
    if len(responders) < _needed(policy.quorum_fraction, n):
        return verdict(
            "fail",
            [
                f"quorum not reached: {len(responders)} of {n} device(s) responded by the deadline "
                f"({_pct(policy.quorum_fraction)} needed)"
            ],
            ratio,
        )
    if len(healthy) < _needed(policy.min_installed_fraction, len(responders)):
        return verdict(
            "fail",
            [
                f"only {len(healthy)} of {len(responders)} responding device(s) run {version} healthily "
                f"by the deadline ({_pct(policy.min_installed_fraction)} needed)"
            ],
            ratio,
        )
    offline = n - len(responders)
    return verdict(
        "pass",
        [
            f"{len(healthy)} of {len(responders)} responding device(s) run {version} healthily "
            "at the deadline"
            + (f"; {offline} offline device(s) will get it when they return" if offline else "")
        ],
        ratio,
    )
