"""The incremental monitor's store-backed shell: a fleet state fed by receipt-time watermark (issue 18).

:class:`IncrementalMonitor` keeps a :class:`~pumpops.monitoring._incremental.FleetState`
up to date from the store: it reads the rows stored since its watermark
(``received_at_us``; of the ``overlap_s`` of receipt time before it, the ids,
and whole rows only for ids not applied yet, so a batch committed a little
after a later one is not missed; ingest dates each agent message at the
attempt that stores it, and re-dates the rows of a store call slower than
``ingest.redate_after_s`` (below ``overlap_s``) to after its commit, so no
committed row is passed over), applies them, and writes the touched
device-hours to the store's ``agent_hour_aggregates`` (absolute values, so a
rewrite is idempotent). A message older than every kept bucket (an outbox's
day-old backlog) still updates the newest-of fields; its device-hour
aggregate is recomputed from the stored summaries and alarms of that hour.
:func:`incremental_monitor` gives the one monitor of a store object in a process.

May import: ``pumpops.fleet``, ``pumpops.store`` (records and the aggregate
row), this package's pure modules, errors and the standard library.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Collection, Container, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from pumpops.errors import InputError
from pumpops.monitoring._drift import DriftPolicy
from pumpops.monitoring._fleet import FleetView, SummaryStats, _model_key
from pumpops.monitoring._incremental import HOUR_MS, FleetState, ModelKey, hour_aggregate
from pumpops.monitoring._shift_verdicts import DeviceShift
from pumpops.store import AgentRecord, HourAggregate

if TYPE_CHECKING:
    from pumpops.fleet import Device

__all__ = ["IncrementalMonitor", "incremental_monitor"]

DEFAULT_OVERLAP_S = 30.0  # monitoring.overlap_s's default


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
    def agent_message_ids(
        self, *, received_from_us: int, received_until_us: int
    ) -> list[str]: ...  # pragma: no cover - protocol
    def agent_messages_by_id(
        self, msg_ids: Collection[str], *, received_from_us: int, received_until_us: int
    ) -> list[AgentRecord]: ...  # pragma: no cover - protocol
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
        overlap_s: float = DEFAULT_OVERLAP_S,
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

    def set_overlap(self, overlap_s: float) -> None:
        """Re-read ``overlap_s`` of receipt time from the next step on.

        Raises:
            InputError: negative or not a number.
        """
        if not overlap_s >= 0:
            raise InputError(f"overlap_s {overlap_s!r} must be 0 or more")
        with self._lock:
            self._overlap_us = round(overlap_s * 1_000_000)

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
        """Read and apply the rows received since the watermark, and those of the overlap not read yet.

        Rows received after the watermark are read whole, in keyset pages. Of
        the overlap (``overlap_s`` of receipt time up to the watermark) only the
        ids are read, and whole rows only for ids not applied yet (a batch
        committed after the step that read past its receipt time): an overlap
        costs its ids, not its bodies again. Returns how many rows were new.

        Raises:
            StoreError: the database failed (the state keeps what it had; the next step re-reads).
        """
        fresh: list[AgentRecord] = []
        read = 0
        watermark = self._watermark_us
        if watermark is not None:
            span = {"received_from_us": watermark - self._overlap_us, "received_until_us": watermark}
            ids = self._store.agent_message_ids(**span)
            read += len(ids)
            late = [msg_id for msg_id in ids if msg_id not in self._seen]
            if late:
                fresh += self._store.agent_messages_by_id(late, **span)
        after = -1 if watermark is None else watermark + 1
        after_id = ""
        newest = -1 if watermark is None else watermark
        while True:
            rows = self._store.agent_messages_after(
                received_after_us=after, after_msg_id=after_id, limit=self._page, skip_ids=self._seen
            )
            read += len(rows)
            fresh += [record for _, _, record in rows if record is not None]
            newest = max(newest, rows[-1][1]) if rows else newest
            if len(rows) < self._page:
                break
            after, after_id = rows[-1][1], rows[-1][0]
        fresh = [r for r in {r.msg_id: r for r in fresh}.values() if r.msg_id not in self._seen]
        self._seen.update((r.msg_id, r.received_at_us) for r in fresh)
        self.last_read = read
        self._watermark_us = newest if newest >= 0 else None
        if self._watermark_us is not None:
            floor = self._watermark_us - self._overlap_us
            self._seen = {m: r for m, r in self._seen.items() if r >= floor}
        touched = self.state.apply(fresh)
        if self._write and touched:
            self._write_hours(touched, now_us)
        return len(fresh)

    def _catch_up(self, now_ms: int, devices: Sequence[Device], policy: DriftPolicy) -> None:
        """Bootstrap (first call) or refresh; the caller holds the lock."""
        if self._watermark_us is None and not self._booted:
            since = policy.cutoff_ms(now_ms) // HOUR_MS * HOUR_MS
            self.bootstrap(since_us=since * 1000, devices=devices, now_us=now_ms * 1000)
            self._booted = True
        else:
            self.refresh(now_us=now_ms * 1000)

    def view(self, now_ms: int, devices: Sequence[Device], policy: DriftPolicy) -> FleetView:
        """Bootstrap (first call) or refresh, then the fleet view at ``now_ms`` (see :meth:`FleetState.view`).

        Raises:
            InputError: ``now_ms`` is further back than the kept hours allow.
            StoreError: the database failed.
        """
        with self._lock:
            self._catch_up(now_ms, devices, policy)
            return self.state.view(now_ms, devices, policy)

    def try_view(self, now_ms: int, devices: Sequence[Device], policy: DriftPolicy) -> FleetView | None:
        """:meth:`view`, or None when ``now_ms`` is before the kept hours (the caller reads in full)."""
        try:
            return self.view(now_ms, devices, policy)
        except InputError:
            return None

    def try_device_shifts(
        self, now_ms: int, devices: Sequence[Device], policy: DriftPolicy, *, refresh: bool = True
    ) -> dict[str, DeviceShift] | None:
        """:meth:`FleetState.device_shifts` of ``devices``, or None when ``now_ms`` is before the kept hours.

        None: the caller reads the window's drift reports in full. ``refresh``
        false: the state as the last step left it (a view of the same step
        has just refreshed it), unless nothing was read yet.

        Raises:
            StoreError: the database failed.
        """
        with self._lock:
            if refresh or not self._booted:
                self._catch_up(now_ms, devices, policy)
            try:
                return self.state.device_shifts(now_ms, policy, [d.device_id for d in devices])
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


def _body(record: AgentRecord) -> dict[str, Any]:
    try:
        return record.body()
    except json.JSONDecodeError:  # pragma: no cover - the store only keeps checked JSON objects
        return {}


_STORE_METHODS = (
    "agent_messages_after",
    "agent_message_ids",
    "agent_messages_by_id",
    "put_hour_aggregates",
    "agent_messages",
)
_MONITORS: weakref.WeakKeyDictionary[object, IncrementalMonitor] = weakref.WeakKeyDictionary()
_MONITORS_LOCK = threading.Lock()


def incremental_monitor(store: object, *, overlap_s: float = DEFAULT_OVERLAP_S) -> IncrementalMonitor | None:
    """The one :class:`IncrementalMonitor` of ``store`` in this process, or None if the store cannot feed one.

    Kept as long as the store object lives, so that monitoring steps (and the
    dashboard's fleet view) of one hub process share one state and each step
    reads only what arrived since the last, even when every step builds a new
    ``MonitoringService``. A store without the watermark reads and
    ``put_hour_aggregates`` (a test fake) gets None: the full recomputation.
    ``overlap_s`` (``monitoring.overlap_s``) is the monitor's from the call that
    creates it on; a later call with another value changes it.
    """
    if not all(hasattr(store, m) for m in _STORE_METHODS):
        return None
    with _MONITORS_LOCK:
        found = _MONITORS.get(store)
        if found is None:
            found = _MONITORS[store] = IncrementalMonitor(cast("AggregateStore", store), overlap_s=overlap_s)
        else:
            found.set_overlap(overlap_s)
        return found
