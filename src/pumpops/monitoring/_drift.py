"""Fleet-level drift: when a device group counts as drifting, from what its devices last said.

Pure decision code, no I/O: :func:`device_drift` reads one device's agent
messages, :func:`judge_group` decides for a group. The rule (``docs/monitoring.md``):

- A device **reports** when it sent any agent message (alarm, summary, drift
  report or state) whose time, the agent's ``ts_ms``, is at most
  ``window_s`` before now. Message time, not arrival time: an outbox that
  forwards a day-old backlog does not make a silent device look alive.
- A device **drifts** when its newest *drift word* is in the window and says
  drift. Its drift word is the newer of its newest drift report (``alert``
  true = drift) and its newest state (``drift_status.status`` ``drift`` or
  ``ok``; ``unknown`` says nothing). The newest word wins, so a device whose
  drift cleared stops counting at once instead of after the window.
- A group **drifts** when at least ``min_devices`` of its reporting devices
  drift and they are at least ``min_fraction`` of its reporting devices.

May import: errors and the standard library (records are read by attribute).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

from pumpops.errors import ConfigError

if TYPE_CHECKING:
    from pumpops.store import AgentRecord

__all__ = ["DeviceDrift", "DriftPolicy", "GroupDrift", "device_drift", "judge_group"]

_MS_PER_S = 1000
NO_DATA = "no data"  # the verdict without evidence


@dataclass(frozen=True, slots=True)
class DriftPolicy:
    """When a group counts as drifting (``[monitoring]`` in ``pumpops.toml``).

    Attributes:
        window_s: seconds of message time before now in which a device counts as reporting.
        min_fraction: drifting devices needed, as a fraction of the group's reporting devices.
        min_devices: drifting devices needed, at least (one noisy pump is not a fleet trend).

    Raises:
        ConfigError: a value is out of its range (the message names the field).
    """

    window_s: float = 6 * 3600.0  # s
    min_fraction: float = 0.3
    min_devices: int = 2

    def __post_init__(self) -> None:
        if not _is_number(self.window_s) or not 0.0 < self.window_s < math.inf:
            raise ConfigError(f"monitoring window_s: {self.window_s!r} must be a finite number above 0")
        if not _is_number(self.min_fraction) or not 0.0 < self.min_fraction <= 1.0:
            raise ConfigError(
                f"monitoring min_fraction: {self.min_fraction!r} must be a fraction above 0 and at most 1"
            )
        if (
            isinstance(self.min_devices, bool)
            or not isinstance(self.min_devices, int)
            or self.min_devices < 1
        ):
            raise ConfigError(
                f"monitoring min_devices: {self.min_devices!r} must be a whole number, 1 or more"
            )

    def cutoff_ms(self, now_ms: int) -> int:
        """The oldest message time inside the window ending at ``now_ms``.

        >>> DriftPolicy(window_s=60).cutoff_ms(100_000)
        40000
        """
        return now_ms - round(self.window_s * _MS_PER_S)


@dataclass(frozen=True, slots=True)
class DeviceDrift:
    """What one device last said about drift.

    Attributes:
        device_id: the device.
        last_seen_ms: time of its newest message of any kind (None: never reported).
        drift_ms: time of its newest drift word (None: none).
        drifting: that word: True drift, False no drift, None no word.
        source: where the word came from: ``report``, ``state`` or ``""``.
        drifted: the sensors over the PSI limit in the newest drift report.
        psi: PSI per sensor in the newest drift report (None: window too small).
        change_fired: whether the newest drift report's score change test fired.
    """

    device_id: str
    last_seen_ms: int | None = None
    drift_ms: int | None = None
    drifting: bool | None = None
    source: str = ""
    drifted: tuple[str, ...] = ()
    psi: dict[str, float | None] | None = None
    change_fired: bool = False

    def top_psi(self, n: int = 3) -> list[tuple[str, float]]:
        """The ``n`` sensors of highest PSI, highest first (sensors without a PSI left out).

        >>> DeviceDrift("p", psi={"a": 0.1, "b": None, "c": 0.4}).top_psi(2)
        [('c', 0.4), ('a', 0.1)]
        """
        known = [(name, value) for name, value in (self.psi or {}).items() if value is not None]
        return sorted(known, key=lambda item: (-item[1], item[0]))[:n]


@dataclass(frozen=True, slots=True)
class GroupDrift:
    """The verdict on one group.

    Attributes:
        group: the device group.
        drifting: whether the group drifts.
        devices: devices of the group considered.
        reporting: devices that reported in the window.
        drifting_devices: reporting devices whose newest drift word in the window is drift, sorted.
        fraction: ``len(drifting_devices) / reporting``, None without reporting devices.
        reason: one sentence saying why.
        judged: reporting devices that said drift or no drift in the window (the
            evidence: without any, the group is not said to be ``ok``).
    """

    group: str
    drifting: bool
    devices: int
    reporting: int
    drifting_devices: tuple[str, ...]
    fraction: float | None
    reason: str
    judged: int = 0

    @property
    def verdict(self) -> str:
        """``drift``, ``ok``, or ``no data`` when no reporting device said a drift word in the window.

        >>> GroupDrift("g", False, 3, 0, (), None, "no device reported").verdict
        'no data'
        >>> GroupDrift("g", False, 3, 3, (), 0.0, "0 of 3", judged=3).verdict
        'ok'
        """
        if self.drifting:
            return "drift"
        return "ok" if self.judged else NO_DATA

    def to_dict(self) -> dict[str, Any]:
        """The verdict as JSON-ready values (with ``verdict``)."""
        return {**asdict(self), "verdict": self.verdict}


def device_drift(device_id: str, records: Iterable[AgentRecord]) -> DeviceDrift:
    """What ``device_id`` last said about drift, from its agent messages (any order, any kinds).

    Bodies are read defensively (the hub stores them as they came): a field
    of the wrong type counts as absent.

    Args:
        device_id: the device; records of other devices are ignored.
        records: agent messages (alarm, summary, drift, state).

    Returns:
        The device's newest message time and newest drift word.
    """
    last_seen: int | None = None
    report: tuple[tuple[int, int], dict[str, Any]] | None = None
    state: tuple[tuple[int, int], dict[str, Any]] | None = None
    for record in records:
        if record.device_id != device_id:
            continue
        key = (record.ts_ms, record.seq)
        last_seen = key[0] if last_seen is None else max(last_seen, key[0])
        if record.kind == "drift" and (report is None or key > report[0]):
            report = (key, record.body())
        elif record.kind == "state" and (state is None or key > state[0]):
            state = (key, record.body())
    word: tuple[tuple[int, int], bool, str] | None = None
    if report is not None and isinstance(report[1].get("alert"), bool):
        word = (report[0], report[1]["alert"], "report")
    if state is not None and (word is None or state[0] > word[0]):
        status = state[1].get("drift_status")
        verdict = status.get("status") if isinstance(status, dict) else None
        if verdict in ("drift", "ok"):
            word = (state[0], verdict == "drift", "state")
    body = report[1] if report is not None else {}
    return DeviceDrift(
        device_id=device_id,
        last_seen_ms=last_seen,
        drift_ms=word[0][0] if word else None,
        drifting=word[1] if word else None,
        source=word[2] if word else "",
        drifted=tuple(str(s) for s in body.get("drifted", ()) if isinstance(s, str))
        if isinstance(body.get("drifted"), list)
        else (),
        psi=_psi(body.get("psi")) if report is not None else None,
        change_fired=isinstance(body.get("change"), dict) and body["change"].get("fired") is True,
    )


def judge_group(
    group: str, devices: Sequence[DeviceDrift], *, now_ms: int, policy: DriftPolicy
) -> GroupDrift:
    """Whether ``group`` drifts at ``now_ms``: the rule in the module docstring.

    Args:
        group: the group's name (carried into the verdict).
        devices: every device of the group, reporting or not.
        now_ms: the end of the window, ms since the epoch (message time).
        policy: the window and thresholds.

    Returns:
        The verdict, with the reporting and drifting devices and a reason.

    >>> p = DriftPolicy(window_s=3600, min_fraction=0.5, min_devices=2)
    >>> devs = [DeviceDrift("a", 9_000_000, 9_000_000, True), DeviceDrift("b", 9_000_000, 9_000_000, True),
    ...         DeviceDrift("c", 9_000_000, 9_000_000, False), DeviceDrift("d", 1_000, 1_000, True)]
    >>> v = judge_group("g", devs, now_ms=9_000_000, policy=p)
    >>> v.drifting, v.reporting, v.drifting_devices
    (True, 3, ('a', 'b'))
    """
    cutoff = policy.cutoff_ms(now_ms)
    reporting = [d for d in devices if d.last_seen_ms is not None and d.last_seen_ms >= cutoff]
    drifting = sorted(
        d.device_id for d in reporting if d.drifting and d.drift_ms is not None and d.drift_ms >= cutoff
    )
    judged = sum(
        1 for d in reporting if d.drifting is not None and d.drift_ms is not None and d.drift_ms >= cutoff
    )
    window = _duration(policy.window_s)
    if not reporting:
        return GroupDrift(group, False, len(devices), 0, (), None, f"no device reported in the last {window}")
    fraction = len(drifting) / len(reporting)
    counts = f"{len(drifting)} of {len(reporting)} reporting device(s) drift in the last {window}"
    if not judged:
        reason = f"{len(reporting)} device(s) reported in the last {window}, none said whether it drifts"
        return GroupDrift(group, False, len(devices), len(reporting), (), fraction, reason, judged)
    if len(drifting) < policy.min_devices:
        reason = f"{counts}: fewer than min_devices ({policy.min_devices})"
        return GroupDrift(
            group, False, len(devices), len(reporting), tuple(drifting), fraction, reason, judged
        )
    if fraction < policy.min_fraction:
        reason = f"{counts}: {fraction:.2f} is below min_fraction ({policy.min_fraction:g})"
        return GroupDrift(
            group, False, len(devices), len(reporting), tuple(drifting), fraction, reason, judged
        )
    reason = (
        f"{counts}: {fraction:.2f} >= min_fraction ({policy.min_fraction:g}), at least {policy.min_devices}"
    )
    return GroupDrift(group, True, len(devices), len(reporting), tuple(drifting), fraction, reason, judged)


def _psi(value: object) -> dict[str, float | None] | None:
    if not isinstance(value, dict):
        return None
    return {str(k): (float(v) if _is_number(v) and math.isfinite(v) else None) for k, v in value.items()}


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _duration(seconds: float) -> str:
    """``6 h``, ``90 min`` or ``45 s``.

    >>> _duration(21600), _duration(5400), _duration(45)
    ('6 h', '90 min', '45 s')
    """
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
