"""What a group's sensor shifts mean: shared drift (retrain the group), a device-local shift, or a fault.

Pure decision code, no I/O, beside :mod:`pumpops.monitoring._drift` (which
judges the devices' drift words). A device agent with a shift test
(``pumpops.edge.ShiftTest`` and ``ShiftJudge``) sends in its drift report the
sensors whose live window moved beyond what the calibration period's own
autocorrelated wandering explains (``shifted``), those that stayed shifted for
consecutive reports (``confirmed``), by how much (``shift``: per sensor
``shift_sd`` in reference standard deviations and ``shift`` in SI), since when
(``since_ms``), its word for the pattern (``hint``: ``new_shift`` not yet
confirmed; ``sensor_shift`` / ``operating_shift`` a level shift that stays;
``fault_like`` a change that grew or made a sensor noisier, with its
``fault_signs``), and the model's median score over its threshold
(``score_ratio``). The rule here:

- A device's **shift** is its newest drift report inside the window that carries
  a ``hint`` (reports without one come from agents without a shift test and
  say nothing here).
- A ``fault_like`` device is a **fault**: keep alarming, never drift.
- A ``new_shift`` device is **pending**: one report is not yet drift.
- A sensor is **shared** when at least ``min_devices`` of the group's reporting
  devices have it confirmed (hint ``sensor_shift`` or ``operating_shift``), and
  they are at least ``min_fraction`` of the reporting devices.
- A shift too small for one pump's test can still be the group's: a sensor is
  also shared when at least ``min_devices`` (and ``min_fraction``) of the
  reporting devices with hint ``none``, ``sensor_shift`` or ``operating_shift``
  (not ``new_shift``: it waits for its own confirmation, as a developing fault
  starts as one; not ``fault_like``) have its test statistic ``z`` at
  least :data:`POOL_Z` in the same direction (one-sided about 0.1 % per pump on
  a stationary pump; ``min_devices`` of them at once is far rarer). Those devices
  are in group drift too. A sensor the device put down to the daily weather
  (``weather`` in its report) is not pooled for it.
- A device with a confirmed shared sensor is in **group drift** (retrain the
  group). A device whose confirmed sensors are all its own is **device-local**
  (recalibrate it: a new centre and scale, no refit) when it is a
  ``sensor_shift``; an ``operating_shift`` of its own that the model alarms on
  (``score_ratio`` > 1) is a change local to one pump across many sensors, the
  pattern of a fault: **fault**.

May import: errors and the standard library (records are read by attribute).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pumpops.monitoring._drift import DriftPolicy

if TYPE_CHECKING:
    from pumpops.store import AgentRecord

__all__ = [
    "DeviceShift",
    "GroupResponse",
    "GroupShift",
    "device_shift",
    "judge_shifts",
    "model_affected",
    "plan_response",
]

#: What each device verdict asks for (the tiered response, cheapest first).
#: A pump's mean-test statistic that counts towards a shift shared by its group (pooled evidence).
POOL_Z = 3.0
#: The group's joint behaviour: a device whose model's median score is at least this many times its
#: threshold (it alarms on most rows) while no sensor's shift is confirmed counts towards ``MODEL_SCORE``.
JOINT_RATIO = 2.0
#: The name under which a shared change no single sensor's test explains is reported: the model alarms
#: on enough pumps of the group at once (a relation between sensors broke, e.g. a recalibrated
#: pressure against its flow and speed). It has no ``since``: the alert's opening time stands for it.
MODEL_SCORE = "model_score"

#: The device words the hub reads (anything else: not a shift report).
HINTS = ("none", "new_shift", "sensor_shift", "operating_shift", "fault_like")

ACTIONS = {
    "group_drift": "retrain the group",
    "device_local": "recalibrate the device",
    "fault": "keep alarming",
    "pending": "wait for the next report",
    "ok": "none",
    "no data": "none",
}


@dataclass(frozen=True, slots=True)
class DeviceShift:
    """One device's newest shift report.

    Attributes:
        device_id: the device.
        ts_ms: the report's message time (None: no report with a shift test).
        shifted: the sensors the test fired on, sorted.
        hint: ``none``, ``new_shift``, ``sensor_shift``, ``operating_shift`` or ``fault_like``
            (``""``: no report).
        shift_sd: per shifted sensor, the shift in reference standard deviations.
        shift_si: per shifted sensor, the shift in SI units.
        since_ms: per shifted sensor, when the device first saw it.
        fault_signs: why the device calls its change fault-like (its words, at most 16).
        confirmed: shifted sensors that stayed shifted for consecutive reports (old agents: ``shifted``).
        score_ratio: the model's median score over its threshold in the report's window (None: unknown).
        ignored: what was left out of the device's reports and why (forged or malformed fields,
            reports with an unknown hint), at most 8 reasons.
        z: per tested sensor, the mean test's statistic (pooled across the group).
        weather: temperature sensors whose shift the device put down to the daily weather
            (their ``z`` is not pooled: the weather moves every pump of a site alike).
    """

    device_id: str
    ts_ms: int | None = None
    shifted: tuple[str, ...] = ()
    hint: str = ""
    shift_sd: dict[str, float] = field(default_factory=dict)
    shift_si: dict[str, float] = field(default_factory=dict)
    since_ms: dict[str, int] = field(default_factory=dict)
    fault_signs: tuple[str, ...] = ()
    confirmed: tuple[str, ...] = ()
    score_ratio: float | None = None
    ignored: tuple[str, ...] = ()
    z: dict[str, float] = field(default_factory=dict)
    weather: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (the evidence a verdict stands on)."""
        return {
            "ts_ms": self.ts_ms,
            "shifted": list(self.shifted),
            "hint": self.hint,
            "shift_sd": dict(self.shift_sd),
            "shift_si": dict(self.shift_si),
            "since_ms": dict(self.since_ms),
            "fault_signs": list(self.fault_signs),
            "confirmed": list(self.confirmed),
            "score_ratio": self.score_ratio,
            "ignored": list(self.ignored),
            "z": dict(self.z),
            "weather": list(self.weather),
        }


@dataclass(frozen=True, slots=True)
class GroupShift:
    """The verdict on one group's shifts.

    Attributes:
        group: the device group.
        verdict: ``drift`` (a shared sensor), ``ok`` or ``no data`` (no device reported a shift test).
        shared: per shared sensor, the devices that shifted on it (sorted).
        reporting: devices with a shift report inside the window.
        devices: per device with a report, its verdict: ``group_drift``, ``device_local``, ``fault``, ``ok``.
        since_ms: per shared sensor, the earliest time a device saw it.
        reason: one sentence saying why.
    """

    group: str
    verdict: str
    shared: dict[str, tuple[str, ...]]
    reporting: int
    devices: dict[str, str]
    since_ms: dict[str, int]
    reason: str
    evidence: dict[str, DeviceShift] = field(default_factory=dict)

    def action(self, device_id: str) -> str:
        """What the verdict asks for ``device_id`` (``none`` for a device without a report)."""
        return ACTIONS[self.devices.get(device_id, "no data")]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values, with each device's action."""
        return {
            "group": self.group,
            "verdict": self.verdict,
            "shared": {k: list(v) for k, v in self.shared.items()},
            "reporting": self.reporting,
            "devices": {d: {"verdict": v, "action": ACTIONS[v]} for d, v in self.devices.items()},
            "since_ms": dict(self.since_ms),
            "reason": self.reason,
            "evidence": {d: e.to_dict() for d, e in sorted(self.evidence.items())},
        }


@dataclass(frozen=True, slots=True)
class GroupResponse:
    """What one group's shift verdict asks for, cheapest first: the tiered response's input.

    Attributes:
        group: the device group.
        retrain_group: a sensor shifted on enough of the group's devices (shared drift): retrain.
        recalibrate: devices whose shift is their own (device-local, not fault-like): recalibrate
            each (a new centre/scale on the device, no refit), sorted.
        faults: devices whose change looks like a fault: keep alarming, never absorb it, sorted.
        group_drift: devices that shifted on a shared sensor (what a retrain is for), sorted.
        verdict: the :class:`GroupShift` it was planned from (the evidence: sensors, shifts, since).
        reason: one sentence saying why.
    """

    group: str
    retrain_group: bool
    recalibrate: tuple[str, ...]
    faults: tuple[str, ...]
    group_drift: tuple[str, ...]
    verdict: GroupShift
    reason: str

    @property
    def acts(self) -> bool:
        """Whether anything is asked for beyond alarming (a retrain or a recalibration)."""
        return self.retrain_group or bool(self.recalibrate)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values, the verdict included as evidence."""
        return {
            "group": self.group,
            "retrain_group": self.retrain_group,
            "recalibrate": list(self.recalibrate),
            "faults": list(self.faults),
            "group_drift": list(self.group_drift),
            "reason": self.reason,
            "verdict": self.verdict.to_dict(),
        }


def model_affected(verdict: GroupShift) -> bool:
    """Whether a group's shared shift hurts its model: what makes a drift worth a retrain.

    A shift every pump of a group shares (a season, a new set-point) that the
    model scores below its threshold costs no false alarm; retraining for it
    spends the hub's time and a rollout on nothing. It is affected when at least
    half of the group-drift devices that sent their model's median score ratio
    have it above 1 (the stale model alarms on most rows), or when none sent one
    (an agent without it: act on the shift alone, as before).

    >>> ev = {"a": DeviceShift("a", score_ratio=3.0), "b": DeviceShift("b", score_ratio=0.4)}
    >>> both = {"a": "group_drift", "b": "group_drift"}
    >>> v = GroupShift("g", "drift", {"s": ("a", "b")}, 2, both, {}, "", ev)
    >>> model_affected(v)
    True
    >>> ev["a"] = DeviceShift("a", score_ratio=0.5)
    >>> model_affected(GroupShift("g", "drift", {}, 2, v.devices, {}, "", ev))
    False
    """
    ratios = [
        e.score_ratio
        for d, e in verdict.evidence.items()
        if verdict.devices.get(d) == "group_drift" and e.score_ratio is not None
    ]
    return not ratios or 2 * sum(r > 1.0 for r in ratios) >= len(ratios)


def plan_response(verdict: GroupShift) -> GroupResponse:
    """The tiered response one group's verdict asks for.

    Devices in group drift are left to the retrain (no recalibration of each):
    the group's model is what no longer fits them. A shared shift the model
    tolerates (:func:`model_affected` false) is reported, not retrained for.

    >>> v = GroupShift("g", "ok", {}, 3, {"a": "device_local", "b": "fault", "c": "ok"}, {}, "why")
    >>> r = plan_response(v)
    >>> r.retrain_group, r.recalibrate, r.faults, r.acts
    (False, ('a',), ('b',), True)
    """

    def having(word: str) -> tuple[str, ...]:
        return tuple(sorted(d for d, v in verdict.devices.items() if v == word))

    retrain = verdict.verdict == "drift" and model_affected(verdict)
    recalibrate, faults, drifting = having("device_local"), having("fault"), having("group_drift")
    parts = [f"retrain the group ({len(drifting)} device(s) share a shift)"] if retrain else []
    if verdict.verdict == "drift" and not retrain:
        shared = len(drifting)
        parts += [f"no retrain: the model scores the shift shared by {shared} device(s) below threshold"]
    parts += [f"recalibrate {', '.join(recalibrate)}"] if recalibrate else []
    parts += [f"keep alarming on {', '.join(faults)}"] if faults else []
    reason = "; ".join(parts) if parts else f"nothing to do ({verdict.verdict})"
    return GroupResponse(verdict.group, retrain, recalibrate, faults, drifting, verdict, reason)


def device_shift(device_id: str, records: Iterable[AgentRecord]) -> DeviceShift:
    """The newest drift report of ``device_id`` that carries a shift test's answer.

    Bodies are read defensively and never raise: a report whose ``hint`` is not
    one of :data:`HINTS` is not a shift report; a sensor name that is not a
    string, a number that is not finite, a confirmed sensor that did not shift,
    or a list that is not a list is left out. What was left out is said in
    ``DeviceShift.ignored``.
    """
    newest: tuple[tuple[int, int], dict[str, Any]] | None = None
    ignored: list[str] = []
    for record in records:
        if record.device_id != device_id or record.kind != "drift":
            continue
        body = record.body()
        hint = body.get("hint")
        if hint not in HINTS:
            if hint not in (None, ""):  # no hint: an agent without a shift test, nothing to say
                ignored.append(f"report seq {record.seq}: unknown hint {str(hint)[:40]!r}")
            continue
        key = (record.ts_ms, record.seq)
        if newest is None or key > newest[0]:
            newest = (key, body)
    if newest is None:
        return DeviceShift(device_id, ignored=tuple(ignored[:8]))
    body = newest[1]
    shifted = _names(body.get("shifted"), "shifted", ignored)
    confirmed = _names(body["confirmed"], "confirmed", ignored) if "confirmed" in body else shifted
    if any(s not in shifted for s in confirmed):
        ignored.append("confirmed sensors that did not shift")
        confirmed = [s for s in confirmed if s in shifted]
    detail = _mapping(body.get("shift"))
    since = _mapping(body.get("since_ms"))
    signs = body.get("fault_signs")
    if signs is not None and not isinstance(signs, list):
        ignored.append("fault_signs is not a list")
    sd = _numbers({s: _field(detail.get(s), "shift_sd") for s in shifted})
    si = _numbers({s: _field(detail.get(s), "shift") for s in shifted})
    since_ms = {s: int(v) for s, v in _numbers({s: since.get(s) for s in shifted}).items()}
    if len(sd) < len(shifted) or len(since_ms) < len(shifted):
        ignored.append("shift_sd or since_ms of a shifted sensor is missing or not a finite number")
    weather = tuple(_names(body.get("weather"), "weather", ignored))
    ratio = _numbers({"r": body.get("score_ratio")}).get("r")
    if ratio is None and body.get("score_ratio") is not None:
        ignored.append("score_ratio is not a finite number")
    return DeviceShift(
        device_id,
        ts_ms=newest[0][0],
        shifted=tuple(shifted),
        hint=str(body["hint"]),
        shift_sd=sd,
        shift_si=si,
        since_ms=since_ms,
        fault_signs=tuple(str(x)[:200] for x in signs[:16] if isinstance(x, str))
        if isinstance(signs, list)
        else (),
        confirmed=tuple(confirmed),
        score_ratio=ratio,
        ignored=tuple(ignored[:8]),
        z=_numbers({str(k)[:64]: v for k, v in list(_mapping(body.get("z")).items())[:256]}),
        weather=weather,
    )


def judge_shifts(
    group: str, devices: Sequence[DeviceShift], *, now_ms: int, policy: DriftPolicy, pool_z: float = POOL_Z
) -> GroupShift:
    """Whether ``group``'s shifts are shared drift, device-local shifts or faults (module docstring).

    >>> p = DriftPolicy(window_s=3600, min_fraction=0.4, min_devices=2)
    >>> def dev(name, sensors, hint):
    ...     return DeviceShift(name, 9_000_000, sensors, hint, confirmed=sensors)
    >>> devs = [dev("a", ("flow",), "sensor_shift"), dev("b", ("flow",), "sensor_shift"),
    ...         dev("c", ("vibration",), "sensor_shift"), dev("d", ("flow",), "fault_like"),
    ...         dev("e", ("flow",), "new_shift")]
    >>> v = judge_shifts("g", devs, now_ms=9_000_000, policy=p)
    >>> v.verdict, v.shared
    ('drift', {'flow': ('a', 'b')})
    >>> v.devices
    {'a': 'group_drift', 'b': 'group_drift', 'c': 'device_local', 'd': 'fault', 'e': 'pending'}
    """
    cutoff = policy.cutoff_ms(now_ms)
    reporting = [d for d in devices if d.ts_ms is not None and d.ts_ms >= cutoff]
    if not reporting:
        return GroupShift(
            group, "no data", {}, 0, {}, {}, "no device sent a shift test's answer in the window"
        )
    by_sensor: dict[str, list[str]] = {}
    for d in reporting:
        if d.hint in _DRIFT_HINTS:
            for sensor in d.confirmed:
                by_sensor.setdefault(sensor, []).append(d.device_id)
    n = len(reporting)

    def enough(ids: Sequence[str]) -> bool:
        return len(ids) >= policy.min_devices and len(ids) / n >= policy.min_fraction

    shared = {s: tuple(sorted(ids)) for s, ids in sorted(by_sensor.items()) if enough(ids)}
    pooled = _pooled(reporting, enough, pool_z)
    for sensor, pool in pooled.items():
        shared[sensor] = tuple(sorted(set(shared.get(sensor, ())) | pool))
    shared = dict(sorted(shared.items()))
    verdicts: dict[str, str] = {}
    for d in sorted(reporting, key=lambda d: d.device_id):
        verdicts[d.device_id] = _device_verdict(d, shared)
        if verdicts[d.device_id] in ("ok", "pending", "device_local") and any(
            d.device_id in ids for ids in pooled.values()
        ):
            verdicts[d.device_id] = "group_drift"
    since = {
        s: min(
            d.since_ms.get(s, d.ts_ms if d.ts_ms is not None else now_ms)
            for d in reporting
            if d.device_id in ids
        )
        for s, ids in shared.items()
        if s != MODEL_SCORE
    }
    local = sum(1 for v in verdicts.values() if v == "device_local")
    faults = sum(1 for v in verdicts.values() if v == "fault")
    pending = sum(1 for v in verdicts.values() if v == "pending")
    if shared:
        names = ", ".join(f"{s} ({len(ids)} of {n})" for s, ids in shared.items())
        reason = f"shared shifts on {names}: retrain the group"
    else:
        reason = (
            f"no sensor shifted on at least {policy.min_devices} and {policy.min_fraction:g} of {n} devices"
        )
    reason += f"; {local} device-local shift(s), {faults} fault-like device(s), {pending} pending"
    evidence = {d.device_id: d for d in reporting}
    return GroupShift(group, "drift" if shared else "ok", shared, n, verdicts, since, reason, evidence)


def _pooled(
    reporting: Sequence[DeviceShift], enough: Callable[[Sequence[str]], bool], pool_z: float
) -> dict[str, set[str]]:
    """Shared changes too small for one pump's test: pooled test statistics, and the joint model score."""
    pooled: dict[str, set[str]] = {}
    # A new shift waits for its own confirmation (a developing fault starts as one too).
    candidates = [d for d in reporting if d.hint in ("none", *_DRIFT_HINTS)]
    for sensor in sorted({s for d in candidates for s in d.z}):
        for sign in (1.0, -1.0):
            strong = [
                d.device_id
                for d in candidates
                if sensor not in d.weather and sign * d.z.get(sensor, 0.0) >= pool_z
            ]
            if enough(strong):
                pooled.setdefault(sensor, set()).update(strong)
    # A fault is one pump's; the model alarming on enough pumps of a group at once while no sensor's
    # own test has confirmed a shift on them (hint none, or new_shift: a device's confirmation can take
    # an hour, ``drift_confirm_s``) is the group's joint behaviour changing: drift.
    joint = [
        d.device_id
        for d in reporting
        if d.hint in ("none", "new_shift") and (d.score_ratio or 0.0) >= JOINT_RATIO
    ]
    if enough(joint):
        pooled[MODEL_SCORE] = set(joint)
    return pooled


_DRIFT_HINTS = ("sensor_shift", "operating_shift")


def _device_verdict(d: DeviceShift, shared: dict[str, tuple[str, ...]]) -> str:
    """One reporting device's verdict (module docstring)."""
    if d.hint == "fault_like":
        return "fault"
    if d.hint == "new_shift":
        return "pending"
    if d.hint not in _DRIFT_HINTS or not d.confirmed:
        return "ok"
    if any(s in shared for s in d.confirmed):
        return "group_drift"
    if d.hint == "operating_shift" and d.score_ratio is not None and d.score_ratio > 1.0:
        return "fault"  # many sensors of one pump moved and its model alarms: a fault's pattern
    return "device_local"


def _names(raw: object, field_name: str, ignored: list[str]) -> list[str]:
    """Sensor names from a list, anything else left out (and said), sorted, at most 256."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        ignored.append(f"{field_name} is not a list")
        return []
    names = sorted({s for s in raw if isinstance(s, str) and s})
    if len(names) < len(set(map(str, raw))):
        ignored.append(f"{field_name} holds entries that are not sensor names")
    return names[:256]


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _field(value: object, name: str) -> object:
    return value.get(name) if isinstance(value, dict) else None


def _numbers(values: dict[str, object]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
