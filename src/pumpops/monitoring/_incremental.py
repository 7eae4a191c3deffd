"""Incremental fleet monitoring: the fleet view kept up to date batch by batch (issue 18).

:func:`~pumpops.monitoring.build_fleet_view` reads every message of the
window at each step: linear in devices x window. :class:`FleetState` keeps,
per device, only what the view needs and updates it from each new batch:

- the newest message of any kind, the newest ``state``, the newest ``drift``
  report and the newest summary or alarm naming a model (by ``(ts_ms, seq)``,
  the order of the full view);
- the device's summaries in **hour buckets** (by message time): per summary
  its mergeable sums (:class:`~pumpops.monitoring._fleet.SummaryStats`), per
  bucket and model key their total, and the ids of its alarm messages.

A view at ``now`` merges, per device, the totals of the buckets wholly inside
the window and the summaries of the one bucket the window's start cuts
(filtered one by one), so it equals the full recomputation on the same
messages exactly (integers) or to float rounding (sums added in another
order). Buckets older than the window of the latest view are forgotten;
a view further back than that raises. Applying a message twice changes
nothing (buckets are keyed by ``msg_id``, the newest-wins fields compare
strictly), so a reader may re-read an overlap of rows.

:class:`IncrementalMonitor` is the store-backed shell: it reads the rows
stored since its watermark (``received_at_us``, re-reading ``overlap_s`` of
receipt time so a batch committed a little after a later one is not missed;
ingest dates each agent message at the attempt that stores it, so only a
single store call longer than ``overlap_s`` could still be missed),
applies them, and writes the touched device-hours to the store's
``agent_hour_aggregates`` (absolute values, so a rewrite is idempotent). A
message older than every kept bucket (an outbox's day-old backlog) still
updates the newest-of fields; its device-hour aggregate is recomputed from
the stored summaries and alarms of that hour.

May import: ``pumpops.fleet``, ``pumpops.store`` (records and the aggregate
row), errors and the standard library.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

import orjson

from pumpops.errors import InputError
from pumpops.monitoring._drift import DriftPolicy
from pumpops.monitoring._fleet import (
    DeviceParts,
    DeviceView,
    FleetView,
    SummaryStats,
    _model_key,
    assemble_fleet_view,
)
from pumpops.store import AgentRecord, HourAggregate

if TYPE_CHECKING:
    from pumpops.fleet import Device

__all__ = ["HOUR_MS", "FleetState", "IncrementalMonitor", "hour_aggregate", "incremental_monitor"]

_log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
ModelKey = tuple[str, str] | None


@dataclass(frozen=True, slots=True)
class _Kept(AgentRecord):
    """An agent record with its body parsed once (views read it at every step)."""

    parsed: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def body(self) -> dict[str, Any]:
        """The parsed body (read only)."""
        return self.parsed


def _kept(record: AgentRecord) -> _Kept:
    if isinstance(record, _Kept):
        return record
    return _Kept(
        msg_id=record.msg_id,
        device_id=record.device_id,
        site=record.site,
        kind=record.kind,
        ts_us=record.ts_us,
        agent_version=record.agent_version,
        body_json=record.body_json,
        payload_sha256=record.payload_sha256,
        received_at_us=record.received_at_us,
        parsed=_parse(record.body_json),
    )


@dataclass(slots=True)
class _Bucket:
    """One device's summaries and alarms of one hour."""

    items: dict[str, tuple[int, ModelKey, SummaryStats]] = field(default_factory=dict)
    alarms: dict[str, ModelKey] = field(default_factory=dict)
    _totals: dict[ModelKey, SummaryStats] | None = None

    def totals(self) -> dict[ModelKey, SummaryStats]:
        """Per model key, the sums of every summary of the hour (cached until the next add)."""
        if self._totals is None:
            totals: dict[ModelKey, SummaryStats] = {}
            for _, key, stats in self.items.values():
                totals.setdefault(key, SummaryStats()).merge(stats)
            self._totals = totals
        return self._totals

    def since(self, cutoff_ms: int) -> dict[ModelKey, SummaryStats]:
        """Per model key, the sums of the hour's summaries at or after ``cutoff_ms``."""
        out: dict[ModelKey, SummaryStats] = {}
        for ts_ms, key, stats in self.items.values():
            if ts_ms >= cutoff_ms:
                out.setdefault(key, SummaryStats()).merge(stats)
        return out


@dataclass(slots=True)
class _DeviceState:
    newest: _Kept | None = None
    state: _Kept | None = None
    report: _Kept | None = None
    named: _Kept | None = None
    buckets: dict[int, _Bucket] = field(default_factory=dict)


def _newer(new: _Kept, old: _Kept | None) -> bool:
    return old is None or (new.ts_ms, new.seq) > (old.ts_ms, old.seq)


class FleetState:
    """Per-device state for fleet views, updated from batches of stored agent messages.

    Pure (no I/O). :meth:`apply` takes messages in any order, repeats
    included; :meth:`view` equals ``build_fleet_view`` over every message
    applied so far (see the module docstring for the one limit: a view's
    window may not start before the window of the newest view taken).

    >>> from pumpops.monitoring._drift import DriftPolicy
    >>> s = FleetState()
    >>> r = AgentRecord("p:1", "p", "s", "summary", 7_200_000_000, "0", '{"alarms_raised": 1, '
    ...     '"period_start_ms": 0, "period_end_ms": 3600000}', "0" * 64, 0)
    >>> sorted(s.apply([r, r]))
    [('p', 2)]
    >>> s.view(7_300_000, [], DriftPolicy(window_s=3600)).devices[0].alarms.alarms_raised
    1
    """

    def __init__(self) -> None:
        self._devices: dict[str, _DeviceState] = {}
        self._horizon_hour: int | None = None  # buckets before this hour are forgotten
        self._views: dict[str, tuple[object, DeviceView]] = {}  # the last view of each device, by key

    @property
    def horizon_ms(self) -> int | None:
        """The start of the oldest hour still kept in buckets (None: nothing forgotten yet)."""
        return None if self._horizon_hour is None else self._horizon_hour * HOUR_MS

    def devices(self) -> int:
        """Devices with at least one message applied."""
        return len(self._devices)

    def apply(self, records: Iterable[AgentRecord]) -> set[tuple[str, int]]:
        """Update the state from ``records`` (any order, repeats change nothing).

        Returns:
            The ``(device_id, hour)`` pairs (hour = ``ts_ms // HOUR_MS``) whose
            summaries or alarms the batch touched, including hours older than
            the kept buckets (whose aggregates must then be recomputed from the store).
        """
        touched: set[tuple[str, int]] = set()
        for record in records:
            rec = _kept(record)
            dev = self._devices.get(rec.device_id)
            if dev is None:
                dev = self._devices[rec.device_id] = _DeviceState()
            if _newer(rec, dev.newest):
                dev.newest = rec
            if rec.kind == "state" and _newer(rec, dev.state):
                dev.state = rec
            elif rec.kind == "drift" and _newer(rec, dev.report):
                dev.report = rec
            elif rec.kind in ("summary", "alarm"):
                touched.add((rec.device_id, rec.ts_ms // HOUR_MS))
                self._apply_named(dev, rec)
        return touched

    def _apply_named(self, dev: _DeviceState, rec: _Kept) -> None:
        key = _model_key(rec.parsed)
        if key is not None and _newer(rec, dev.named):
            dev.named = rec
        hour = rec.ts_ms // HOUR_MS
        if self._horizon_hour is not None and hour < self._horizon_hour:
            return  # outside every future window: only the store's aggregate needs it
        bucket = dev.buckets.get(hour)
        if bucket is None:
            bucket = dev.buckets[hour] = _Bucket()
        if rec.kind == "alarm":
            bucket.alarms[rec.msg_id] = key
        elif rec.msg_id not in bucket.items:
            stats = SummaryStats()
            stats.add(rec.parsed)
            bucket.items[rec.msg_id] = (rec.ts_ms, key, stats)
            bucket._totals = None

    def view(self, now_ms: int, devices: Sequence[Device], policy: DriftPolicy) -> FleetView:
        """The fleet view at ``now_ms``; forgets the buckets wholly before its window.

        Raises:
            InputError: the window starts before the oldest hour still kept
                (an earlier view moved the horizon past it).
        """
        cutoff = policy.cutoff_ms(now_ms)
        cut_hour = cutoff // HOUR_MS
        if self._horizon_hour is not None and cut_hour < self._horizon_hour:
            raise InputError(
                f"fleet view at {now_ms} ms: its window starts at {cutoff} ms, before the oldest hour the "
                f"incremental state keeps ({self._horizon_hour * HOUR_MS} ms); take views in time order "
                "or use build_fleet_view over the stored messages"
            )
        self._horizon_hour = cut_hour
        parts: list[DeviceParts] = []
        for device_id, dev in self._devices.items():
            window: dict[ModelKey, SummaryStats] = {}
            for hour in [h for h in dev.buckets if h < cut_hour]:
                del dev.buckets[hour]
            for hour, bucket in dev.buckets.items():
                sums = bucket.since(cutoff) if hour == cut_hour else bucket.totals()
                for key, stats in sums.items():
                    window.setdefault(key, SummaryStats()).merge(stats)
            kept = (dev.newest, dev.state, dev.report, dev.named)
            own = sorted({id(r): r for r in kept if r is not None}.values(), key=lambda r: (r.ts_ms, r.seq))
            # The view changes only with these records, the window's sums, and which of
            # the records' times are inside the window (reporting, drift word in the window).
            same = (*kept, window, *(r is not None and r.ts_ms >= cutoff for r in kept))
            parts.append(DeviceParts(device_id, own, window, same))
        return assemble_fleet_view(parts, devices, now_ms=now_ms, policy=policy, cache=self._views)

    def hour_aggregates(self, touched: Iterable[tuple[str, int]], *, updated_us: int) -> list[HourAggregate]:
        """The store rows of the touched device-hours still kept in buckets (absolute values)."""
        rows: list[HourAggregate] = []
        for device_id, hour in sorted(touched):
            bucket = self._devices[device_id].buckets.get(hour) if device_id in self._devices else None
            if bucket is not None:
                rows += hour_aggregate(
                    device_id, hour, bucket.totals(), Counter_of(bucket.alarms.values()), updated_us
                )
        return rows


def Counter_of(keys: Iterable[ModelKey]) -> dict[ModelKey, int]:  # noqa: N802 - a tiny Counter
    out: dict[ModelKey, int] = {}
    for key in keys:
        out[key] = out.get(key, 0) + 1
    return out


def _model_text(key: ModelKey) -> str:
    return "" if key is None else f"{key[0]}/{key[1]}"


def hour_aggregate(
    device_id: str,
    hour: int,
    totals: Mapping[ModelKey, SummaryStats],
    alarms: Mapping[ModelKey, int],
    updated_us: int,
) -> list[HourAggregate]:
    """The ``agent_hour_aggregates`` rows of one device-hour, one per model key (``""``: none named).

    >>> s = SummaryStats()
    >>> s.add({"alarms_raised": 2, "period_start_ms": 0, "period_end_ms": 600000})
    >>> [(r.model, r.summaries, r.alarms_raised, r.alarm_messages) for r in
    ...  hour_aggregate("p", 5, {("m", "1"): s}, {("m", "1"): 3, None: 1}, 0)]
    [('', 0, 0, 1), ('m/1', 1, 2, 3)]
    """
    keys = sorted(set(totals) | set(alarms), key=_model_text)
    rows = []
    for key in keys:
        stats = totals.get(key, SummaryStats())
        rows.append(
            HourAggregate(
                device_id=device_id,
                hour_us=hour * HOUR_MS * 1000,
                model=_model_text(key),
                summaries=stats.alarm_summaries,
                alarms_raised=stats.alarms_raised,
                period_ms=stats.period_ms,
                scored=stats.scored,
                p50_sum=stats.p50_sum,
                p50_n=stats.p50_n,
                p95_max=stats.p95_max,
                score_max=stats.score_max,
                mean_wsum=stats.mean_wsum,
                mean_w=stats.mean_w,
                alarm_messages=alarms.get(key, 0),
                updated_at_us=updated_us,
            )
        )
    return rows


class AggregateStore(Protocol):
    """The part of the store :class:`IncrementalMonitor` uses."""

    def agent_messages_after(
        self,
        *,
        received_after_us: int,
        after_msg_id: str = "",
        limit: int = 20_000,
        skip_ids: Container[str] = (),
    ) -> list[tuple[str, int, AgentRecord | None]]: ...  # pragma: no cover - protocol
    def agent_messages(
        self,
        *,
        device_id: str | None = None,
        kind: str | None = None,
        since_us: int | None = None,
        limit: int | None = None,
    ) -> list[AgentRecord]: ...  # pragma: no cover - protocol
    def put_hour_aggregates(self, rows: Sequence[HourAggregate]) -> int: ...  # pragma: no cover


class IncrementalMonitor:
    """A :class:`FleetState` fed from the store by receipt-time watermark; writes hour aggregates.

    Args:
        store: the hub's store.
        overlap_s: receipt time re-read at each step (a row committed this much
            after a later-received row is still seen; repeats are skipped by id).
        page: rows read per query.
        write_aggregates: write the touched device-hours to ``agent_hour_aggregates``.
    """

    def __init__(
        self,
        store: AggregateStore,
        *,
        overlap_s: float = 120.0,
        page: int = 20_000,
        write_aggregates: bool = True,
    ) -> None:
        if not overlap_s >= 0 or page < 1:
            raise InputError(f"overlap_s {overlap_s!r} must be 0 or more and page {page!r} at least 1")
        self._store = store
        self._overlap_us = round(overlap_s * 1_000_000)
        self._page = page
        self._write = write_aggregates
        self.state = FleetState()
        self._watermark_us: int | None = None
        self._seen: dict[str, int] = {}  # msg_id -> received_at_us, inside the overlap only
        self.last_read = 0
        self._booted = False
        self._lock = threading.Lock()

    @property
    def watermark_us(self) -> int | None:
        """The newest receipt time read so far (None before the first step)."""
        return self._watermark_us

    def bootstrap(self, *, since_us: int, devices: Sequence[Device], now_us: int) -> int:
        """Start from the store: the messages from ``since_us`` on and each device's newest older state.

        What a hub process reads once at its first step (today's full view
        reads as much at every step); later steps read only what arrived.
        Messages older than ``since_us`` other than that state (a drift
        report, a summary naming the model) are not read: until the device
        sends newer ones the view shows what the full view of the window shows.

        Raises:
            StoreError: the database failed (the state stays empty).
        """
        records = self._store.agent_messages(since_us=since_us)
        with_state = {r.device_id for r in records if r.kind == "state"}
        for device in devices:
            if device.device_id not in with_state:
                records += self._store.agent_messages(device_id=device.device_id, kind="state", limit=1)
        newest = max((r.received_at_us for r in records), default=-1)
        self._watermark_us = newest if newest >= 0 else None
        floor = -1 if self._watermark_us is None else self._watermark_us - self._overlap_us
        self._seen = {r.msg_id: r.received_at_us for r in records if r.received_at_us > floor}
        self.last_read = len(records)
        touched = self.state.apply(records)
        if self._write and touched:
            self._write_hours(touched, now_us)
        return len(records)

    def refresh(self, *, now_us: int) -> int:
        """Read and apply the rows received since the watermark (less the overlap); how many were new.

        Raises:
            StoreError: the database failed (the state keeps what it had; the next step re-reads).
        """
        after = -1 if self._watermark_us is None else self._watermark_us - self._overlap_us
        after_id = ""
        fresh: list[AgentRecord] = []
        newest = self._watermark_us if self._watermark_us is not None else -1
        read = 0
        while True:
            rows = self._store.agent_messages_after(
                received_after_us=after, after_msg_id=after_id, limit=self._page, skip_ids=self._seen
            )
            read += len(rows)
            for msg_id, received_us, record in rows:
                if record is not None and msg_id not in self._seen:
                    fresh.append(record)
                    self._seen[msg_id] = received_us
                newest = max(newest, received_us)
            if len(rows) < self._page:
                break
            after, after_id = rows[-1][1], rows[-1][0]
        self.last_read = read
        self._watermark_us = newest if newest >= 0 else None
        if self._watermark_us is not None:
            floor = self._watermark_us - self._overlap_us
            self._seen = {m: r for m, r in self._seen.items() if r > floor}
        touched = self.state.apply(fresh)
        if self._write and touched:
            self._write_hours(touched, now_us)
        return len(fresh)

    def view(self, now_ms: int, devices: Sequence[Device], policy: DriftPolicy) -> FleetView:
        """Bootstrap (first call) or refresh, then the fleet view at ``now_ms`` (see :meth:`FleetState.view`).

        Raises:
            InputError: ``now_ms`` is further back than the kept hours allow.
            StoreError: the database failed.
        """
        with self._lock:
            if self._watermark_us is None and not self._booted:
                since = policy.cutoff_ms(now_ms) // HOUR_MS * HOUR_MS
                self.bootstrap(since_us=since * 1000, devices=devices, now_us=now_ms * 1000)
                self._booted = True
            else:
                self.refresh(now_us=now_ms * 1000)
            return self.state.view(now_ms, devices, policy)

    def try_view(self, now_ms: int, devices: Sequence[Device], policy: DriftPolicy) -> FleetView | None:
        """:meth:`view`, or None when ``now_ms`` is before the kept hours (the caller reads in full)."""
        try:
            return self.view(now_ms, devices, policy)
        except InputError:
            return None

    def _write_hours(self, touched: set[tuple[str, int]], now_us: int) -> None:
        horizon = self.state.horizon_ms
        kept = {t for t in touched if horizon is None or t[1] * HOUR_MS >= horizon}
        rows = self.state.hour_aggregates(kept, updated_us=now_us)
        for device_id, hour in sorted(touched - kept):  # a backlog older than the window: from the store
            rows += self._hour_from_store(device_id, hour, now_us)
        self._store.put_hour_aggregates(rows)

    def _hour_from_store(self, device_id: str, hour: int, now_us: int) -> list[HourAggregate]:
        start_us, end_us = hour * HOUR_MS * 1000, (hour + 1) * HOUR_MS * 1000
        totals: dict[ModelKey, SummaryStats] = {}
        alarms: dict[ModelKey, int] = {}
        for kind in ("summary", "alarm"):
            for rec in self._store.agent_messages(device_id=device_id, kind=kind, since_us=start_us):
                if rec.ts_us >= end_us:
                    continue
                body = _body(rec)
                key = _model_key(body)
                if kind == "alarm":
                    alarms[key] = alarms.get(key, 0) + 1
                else:
                    totals.setdefault(key, SummaryStats()).add(body)
        return hour_aggregate(device_id, hour, totals, alarms, now_us)


def _parse(body_json: str) -> dict[str, Any]:
    """The body as a dict (orjson: the step parses every new message once)."""
    try:
        value = orjson.loads(body_json)
    except orjson.JSONDecodeError:  # pragma: no cover - the store only keeps checked JSON objects
        return {}
    return value if isinstance(value, dict) else {}


def _body(record: AgentRecord) -> dict[str, Any]:
    try:
        return record.body()
    except json.JSONDecodeError:  # pragma: no cover - the store only keeps checked JSON objects
        return {}


_MONITORS: weakref.WeakKeyDictionary[object, IncrementalMonitor] = weakref.WeakKeyDictionary()
_MONITORS_LOCK = threading.Lock()


def incremental_monitor(store: object) -> IncrementalMonitor | None:
    """The one :class:`IncrementalMonitor` of ``store`` in this process, or None if the store cannot feed one.

    Kept as long as the store object lives, so that monitoring steps (and the
    dashboard's fleet view) of one hub process share one state and each step
    reads only what arrived since the last, even when every step builds a new
    ``MonitoringService``. A store without ``agent_messages_after`` and
    ``put_hour_aggregates`` (a test fake) gets None: the full recomputation.
    """
    if not all(hasattr(store, m) for m in ("agent_messages_after", "put_hour_aggregates", "agent_messages")):
        return None
    with _MONITORS_LOCK:
        found = _MONITORS.get(store)
        if found is None:
            found = _MONITORS[store] = IncrementalMonitor(cast("AggregateStore", store))
        return found
