"""Fleet views: per device, per group and per model, what the agents' messages say.

Pure code, no I/O: :func:`build_fleet_view` takes agent messages (as the
store lists them), the registered devices, the time and the
:class:`~pumpops.monitoring.DriftPolicy`, and returns a :class:`FleetView`
of frozen dataclasses that :meth:`FleetView.to_dict` turns into JSON-ready
values. What each figure means:

- **state** (status, model, health, staleness, calibration, outbox depth):
  from the device's newest ``state`` message (latest ``ts_ms``, the ``seq`` breaking ties:
  a forged huge ``seq`` cannot hide newer states), however old; ``healthy`` is
  health ``ok``, ``stale`` the agent's own flag (model past its maximum age).
  Without a state, the model is the one named by the newest summary or alarm.
- **last seen**: the newest message of any kind, in message time (``ts_ms``);
  a device **reports** when that is inside the window.
- **alarm rate**: alarms raised per hour, from the summaries in the window:
  the sum of ``alarms_raised`` over the sum of their periods.
- **scores**: from the same summaries: the mean of their medians (p50), the
  highest p95 and maximum, and the mean of their means weighted by windows scored.
- **drift**: :func:`~pumpops.monitoring.device_drift` per device and
  :func:`~pumpops.monitoring.judge_group` per group (the rule is there).

Bodies are stored as the agents sent them, so every field is read
defensively: a field of the wrong type counts as absent.

May import: ``pumpops.fleet`` (``Device``), errors and the standard library.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeGuard

from pumpops.monitoring._drift import DeviceDrift, DriftPolicy, GroupDrift, device_drift, judge_group

if TYPE_CHECKING:
    from pumpops.fleet import Device
    from pumpops.store import AgentRecord

__all__ = [
    "UNREGISTERED_GROUP",
    "AlarmStats",
    "DeviceParts",
    "DeviceView",
    "FleetView",
    "GroupView",
    "ModelView",
    "ScoreStats",
    "SummaryStats",
    "assemble_fleet_view",
    "build_fleet_view",
]

#: The group of devices that report but are not registered (commissioning).
UNREGISTERED_GROUP = "(unregistered)"
_MS_PER_H = 3_600_000


@dataclass(frozen=True, slots=True)
class AlarmStats:
    """Alarms raised per hour over summed summary periods.

    Attributes:
        summaries: summaries counted.
        alarms_raised: their ``alarms_raised``, summed.
        hours: their periods (``period_end_ms - period_start_ms``), summed, in hours.
        rate_per_h: ``alarms_raised / hours``; None when no period was summarised.
    """

    summaries: int = 0
    alarms_raised: int = 0
    hours: float = 0.0  # h
    rate_per_h: float | None = None


@dataclass(frozen=True, slots=True)
class ScoreStats:
    """Anomaly score statistics over summaries.

    Attributes:
        summaries: summaries that carried scores.
        p50_mean: the mean of their medians.
        p95_max: the highest of their 95th percentiles.
        max: the highest score.
        mean: the mean of their means, weighted by windows scored.
    """

    summaries: int = 0
    p50_mean: float | None = None
    p95_max: float | None = None
    max: float | None = None
    mean: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceView:
    """One device as the fleet sees it.

    Attributes:
        device_id: the device.
        site: its site (registered, else from its messages).
        group: its device group (``(unregistered)`` if it is not registered).
        registered: whether the hub knows it.
        last_seen_ms: its newest message of any kind (message time), None if never.
        reporting: whether it reported in the window.
        status: the agent's one-word status (``detecting``, ``calibrating``, ...).
        model_name: the model it runs.
        model_version: that model's version, as text.
        health: the installed model's health check result (``ok``, ``failed``, ...).
        healthy: ``health == "ok"``.
        stale: the agent says its model is past the maximum age without an update check.
        calibration: calibration status.
        outbox_depth: messages waiting in its outbox.
        last_update_error: the agent's last update error, if any.
        alarms: its alarm rate in the window.
        scores: its score statistics in the window.
        drift: what it last said about drift.
        drifting: whether it counts as drifting in the window (the group rule's device part).
    """

    device_id: str
    site: str
    group: str
    registered: bool
    last_seen_ms: int | None
    reporting: bool
    status: str | None
    model_name: str | None
    model_version: str | None
    health: str | None
    healthy: bool
    stale: bool
    calibration: str | None
    outbox_depth: int | None
    last_update_error: str | None
    alarms: AlarmStats
    scores: ScoreStats
    drift: DeviceDrift
    drifting: bool

    @property
    def model(self) -> str | None:
        """``<model_name>/<model_version>``, or None without a model."""
        return _model_label(self.model_name, self.model_version)


@dataclass(frozen=True, slots=True)
class GroupView:
    """One device group.

    Attributes:
        group: the group.
        device_ids: its devices, sorted.
        reporting: devices that reported in the window.
        model_versions: ``{"<name>/<version>": devices running it}`` (from state).
        healthy: devices whose health is ``ok``.
        stale: devices whose model is stale.
        alarms: alarm rate of the group's summaries in the window.
        scores: score statistics of those summaries.
        drift: the fleet-level drift verdict.
    """

    group: str
    device_ids: tuple[str, ...]
    reporting: int
    model_versions: dict[str, int]
    healthy: int
    stale: int
    alarms: AlarmStats
    scores: ScoreStats
    drift: GroupDrift


@dataclass(frozen=True, slots=True)
class ModelView:
    """One model version across the fleet.

    Attributes:
        model_name: the model.
        model_version: its version, as text.
        device_ids: devices whose newest state says they run it, sorted.
        alarms: alarm rate of the summaries it scored in the window (any device).
        scores: score statistics of those summaries.
    """

    model_name: str
    model_version: str
    device_ids: tuple[str, ...]
    alarms: AlarmStats
    scores: ScoreStats


@dataclass(frozen=True, slots=True)
class FleetView:
    """The whole fleet at ``now_ms``: devices, groups and models, each sorted by name.

    Attributes:
        now_ms: the end of the window, ms since the epoch.
        window_s: the window's length.
        devices: one view per registered or reporting device.
        groups: one view per group.
        models: one view per model version seen in states or summaries.
    """

    now_ms: int
    window_s: float
    devices: tuple[DeviceView, ...] = ()
    groups: tuple[GroupView, ...] = ()
    models: tuple[ModelView, ...] = field(default=())

    def group(self, name: str) -> GroupView | None:
        """The view of group ``name``, or None."""
        return next((g for g in self.groups if g.group == name), None)

    def devices_of(self, group: str) -> list[DeviceView]:
        """The views of ``group``'s devices, sorted by id."""
        return [d for d in self.devices if d.group == group]

    def to_dict(self) -> dict[str, Any]:
        """The view as JSON-ready values (lists, dicts, numbers, text, None)."""
        return asdict(self)


def build_fleet_view(
    records: Iterable[AgentRecord], devices: Sequence[Device], *, now_ms: int, policy: DriftPolicy
) -> FleetView:
    """Compute the fleet's view from agent messages.

    Args:
        records: agent messages, any order; those older than the window
            still give a device its state and its last-seen time.
        devices: the registered devices (their groups and sites).
        now_ms: the end of the window, ms since the epoch (message time).
        policy: the window and the group drift thresholds.

    Returns:
        Views of every registered or reporting device, every group and every model.
    """
    by_device: dict[str, list[AgentRecord]] = defaultdict(list)
    for record in records:
        by_device[record.device_id].append(record)
    cutoff = policy.cutoff_ms(now_ms)
    devices_out: list[DeviceParts] = []
    for device_id, own in by_device.items():
        own.sort(key=lambda r: (r.ts_ms, r.seq))
        per_model: dict[tuple[str, str] | None, SummaryStats] = defaultdict(SummaryStats)
        for record in own:
            if record.kind == "summary" and record.ts_ms >= cutoff:
                body = record.body()
                per_model[_model_key(body)].add(body)
        devices_out.append(DeviceParts(device_id, own, dict(per_model)))
    return assemble_fleet_view(devices_out, devices, now_ms=now_ms, policy=policy)


@dataclass(slots=True)
class SummaryStats:
    """Mergeable sums of summaries: what :class:`AlarmStats` and :class:`ScoreStats` are made of.

    One definition of the arithmetic for the full recomputation
    (:func:`build_fleet_view`) and the incremental state
    (:mod:`pumpops.monitoring._incremental`): add summary bodies, merge
    partial sums (sums add, maxima take the larger), then read the stats.
    A body field of the wrong type counts as absent, as everywhere here.

    >>> a = SummaryStats()
    >>> a.add({"period_start_ms": 0, "period_end_ms": 3_600_000, "alarms_raised": 2,
    ...        "score": {"p50": 1.0, "max": 4.0}})
    >>> b = SummaryStats()
    >>> b.add({"score": {"p50": 3.0, "p95": 2.0}})
    >>> a.merge(b)
    >>> a.alarm_stats(), a.score_stats().p50_mean
    (AlarmStats(summaries=1, alarms_raised=2, hours=1.0, rate_per_h=2.0), 2.0)
    """

    alarm_summaries: int = 0
    alarms_raised: int = 0
    period_ms: int = 0  # ms
    scored: int = 0
    p50_sum: float = 0.0
    p50_n: int = 0
    p95_max: float | None = None
    score_max: float | None = None
    mean_wsum: float = 0.0
    mean_w: int = 0

    def add(self, body: Mapping[str, Any]) -> None:
        """Count one summary body."""
        start, end, alarms = body.get("period_start_ms"), body.get("period_end_ms"), body.get("alarms_raised")
        if _is_int(start) and _is_int(end) and _is_int(alarms) and end >= start and alarms >= 0:
            self.alarm_summaries += 1
            self.alarms_raised += alarms
            self.period_ms += end - start
        score = body.get("score")
        if not isinstance(score, dict) or not score:
            return
        p50, p95, top, mean = (_finite(score.get(k)) for k in ("p50", "p95", "max", "mean"))
        if p50 is None and p95 is None and top is None and mean is None:
            return
        self.scored += 1
        if p50 is not None:
            self.p50_sum += p50
            self.p50_n += 1
        self.p95_max = _larger(self.p95_max, p95)
        self.score_max = _larger(self.score_max, top)
        if mean is not None:
            windows = body.get("windows_scored")
            n = windows if _is_int(windows) and windows > 0 else 1
            self.mean_wsum += mean * n
            self.mean_w += n

    def merge(self, other: SummaryStats) -> None:
        """Add ``other``'s sums to these."""
        self.alarm_summaries += other.alarm_summaries
        self.alarms_raised += other.alarms_raised
        self.period_ms += other.period_ms
        self.scored += other.scored
        self.p50_sum += other.p50_sum
        self.p50_n += other.p50_n
        self.p95_max = _larger(self.p95_max, other.p95_max)
        self.score_max = _larger(self.score_max, other.score_max)
        self.mean_wsum += other.mean_wsum
        self.mean_w += other.mean_w

    def alarm_stats(self) -> AlarmStats:
        """Alarms per hour over the summed periods."""
        hours = self.period_ms / _MS_PER_H
        rate = self.alarms_raised / hours if self.period_ms > 0 else None
        return AlarmStats(self.alarm_summaries, self.alarms_raised, hours, rate)

    def score_stats(self) -> ScoreStats:
        """Mean of medians, highest p95 and maximum, weighted mean of means."""
        return ScoreStats(
            summaries=self.scored,
            p50_mean=self.p50_sum / self.p50_n if self.p50_n else None,
            p95_max=self.p95_max,
            max=self.score_max,
            mean=self.mean_wsum / self.mean_w if self.mean_w else None,
        )


@dataclass(frozen=True, slots=True)
class DeviceParts:
    """What a fleet view needs of one device that sent messages.

    Attributes:
        device_id: the device.
        own: its messages sorted by ``(ts_ms, seq)``; enough of them for its
            newest state, drift report, model-naming summary or alarm and
            newest message of any kind (the incremental state keeps just those).
        window: its summaries in the window, summed per model key (None: no model named).
        key: for a view cache: a value equal to the last view's exactly when the
            device's view is unchanged (None: no caching).
    """

    device_id: str
    own: Sequence[AgentRecord]
    window: Mapping[tuple[str, str] | None, SummaryStats]
    key: object = None


def assemble_fleet_view(
    parts: Iterable[DeviceParts],
    devices: Sequence[Device],
    *,
    now_ms: int,
    policy: DriftPolicy,
    cache: dict[str, tuple[object, DeviceView]] | None = None,
) -> FleetView:
    """The fleet view from each reporting device's parts and the registered devices.

    The common end of :func:`build_fleet_view` (parts from all messages) and
    the incremental state (parts kept up to date batch by batch). With
    ``cache``, a device whose part has a ``key`` equal to the cached one (and
    the same registration) keeps its cached view instead of a new one.
    """
    by_device = {p.device_id: p for p in parts}
    registered = {d.device_id: d for d in devices}
    cutoff = policy.cutoff_ms(now_ms)
    views: list[DeviceView] = []
    model_stats: dict[tuple[str, str], SummaryStats] = defaultdict(SummaryStats)
    group_stats: dict[str, SummaryStats] = defaultdict(SummaryStats)
    for device_id in sorted(set(registered) | set(by_device)):
        part = by_device.get(device_id)
        device = registered.get(device_id)
        total = SummaryStats()
        for key, stats in part.window.items() if part is not None else ():
            total.merge(stats)
            if key is not None:
                model_stats[key].merge(stats)
        group_stats[device.group if device is not None else UNREGISTERED_GROUP].merge(total)
        same: object = (
            (part.key, device) if cache is not None and part is not None and part.key is not None else None
        )
        hit = cache.get(device_id) if cache is not None and same is not None else None
        if hit is not None and hit[0] == same:
            views.append(hit[1])
            continue
        view = _device_view(device_id, device, part.own if part else (), total, cutoff)
        if cache is not None and same is not None:
            cache[device_id] = (same, view)
        views.append(view)
    groups: dict[str, list[DeviceView]] = defaultdict(list)
    for view in views:
        groups[view.group].append(view)
    group_views = tuple(
        _group_view(name, members, group_stats[name], now_ms=now_ms, policy=policy)
        for name, members in sorted(groups.items())
    )
    running: dict[tuple[str, str], list[str]] = defaultdict(list)
    for view in views:
        if view.model_name is not None and view.model_version is not None:
            running[(view.model_name, view.model_version)].append(view.device_id)
    empty = SummaryStats()
    model_views = tuple(
        ModelView(
            name,
            version,
            tuple(sorted(running.get((name, version), ()))),
            model_stats.get((name, version), empty).alarm_stats(),
            model_stats.get((name, version), empty).score_stats(),
        )
        for name, version in sorted(set(running) | set(model_stats))
    )
    return FleetView(now_ms, policy.window_s, tuple(views), group_views, model_views)


def _device_view(
    device_id: str,
    device: Device | None,
    own: Sequence[AgentRecord],
    stats: SummaryStats,
    cutoff: int,
) -> DeviceView:
    states = [r for r in own if r.kind == "state"]
    state = states[-1].body() if states else {}
    named = [r.body() for r in own if r.kind in ("summary", "alarm")]
    model = (
        _model_key(state)
        if states
        else next((k for k in (_model_key(b) for b in reversed(named)) if k is not None), None)
    )
    drift = device_drift(device_id, own)
    last_seen = drift.last_seen_ms
    reporting = last_seen is not None and last_seen >= cutoff
    health = _text(state.get("health"))
    depth = state.get("outbox_depth")
    return DeviceView(
        device_id=device_id,
        site=device.site if device is not None else (own[-1].site if own else ""),
        group=device.group if device is not None else UNREGISTERED_GROUP,
        registered=device is not None,
        last_seen_ms=last_seen,
        reporting=reporting,
        status=_text(state.get("status")),
        model_name=model[0] if model else None,
        model_version=model[1] if model else None,
        health=health,
        healthy=health == "ok",
        stale=state.get("stale") is True,
        calibration=_text(state.get("calibration")),
        outbox_depth=depth if isinstance(depth, int) and not isinstance(depth, bool) else None,
        last_update_error=_text(state.get("last_update_error")),
        alarms=stats.alarm_stats(),
        scores=stats.score_stats(),
        drift=drift,
        drifting=bool(
            reporting and drift.drifting and drift.drift_ms is not None and drift.drift_ms >= cutoff
        ),
    )


def _group_view(
    name: str,
    members: Sequence[DeviceView],
    stats: SummaryStats,
    *,
    now_ms: int,
    policy: DriftPolicy,
) -> GroupView:
    versions = Counter(m.model for m in members if m.model is not None)
    return GroupView(
        group=name,
        device_ids=tuple(m.device_id for m in members),
        reporting=sum(m.reporting for m in members),
        model_versions=dict(sorted(versions.items())),
        healthy=sum(m.healthy for m in members),
        stale=sum(m.stale for m in members),
        alarms=stats.alarm_stats(),
        scores=stats.score_stats(),
        drift=judge_group(name, [m.drift for m in members], now_ms=now_ms, policy=policy),
    )


def _alarm_stats(summaries: Sequence[Mapping[str, Any]]) -> AlarmStats:
    """Alarms per hour over the summed periods.

    >>> _alarm_stats([{"period_start_ms": 0, "period_end_ms": 1_800_000, "alarms_raised": 1},
    ...               {"period_start_ms": 0, "period_end_ms": 1_800_000, "alarms_raised": 2}])
    AlarmStats(summaries=2, alarms_raised=3, hours=1.0, rate_per_h=3.0)
    """
    return _summed(summaries).alarm_stats()


def _score_stats(summaries: Sequence[Mapping[str, Any]]) -> ScoreStats:
    """Mean of medians, highest p95 and maximum, weighted mean of means.

    >>> _score_stats([{"score": {"p50": 1.0, "p95": 2.0, "max": 3.0, "mean": 1.0}, "windows_scored": 1},
    ...               {"score": {"p50": 3.0, "p95": 5.0, "max": 9.0, "mean": 4.0}, "windows_scored": 3}])
    ScoreStats(summaries=2, p50_mean=2.0, p95_max=5.0, max=9.0, mean=3.25)
    """
    return _summed(summaries).score_stats()


def _summed(summaries: Iterable[Mapping[str, Any]]) -> SummaryStats:
    stats = SummaryStats()
    for body in summaries:
        stats.add(body)
    return stats


def _larger(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None or a >= b else b


def _model_key(body: Mapping[str, Any]) -> tuple[str, str] | None:
    name, version = body.get("model_name"), body.get("model_version")
    if not isinstance(name, str) or not name or version is None or isinstance(version, bool | dict | list):
        return None
    return name, str(version)


def _model_label(name: str | None, version: str | None) -> str | None:
    return f"{name}/{version}" if name is not None and version is not None else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
