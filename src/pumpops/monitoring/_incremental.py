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
- the drift reports ``device_shift`` reads: the newest with a shift test's
  hint and those with an unknown hint (:meth:`FleetState.device_shifts`
  runs ``device_shift`` again only for a device whose reports changed).

A view at ``now`` merges, per device, the totals of the buckets wholly inside
the window and the summaries of the one bucket the window's start cuts
(filtered one by one), so it equals the full recomputation on the same
messages exactly (integers) or to float rounding (sums added in another
order). Buckets older than the window of the latest view are forgotten;
a view further back than that raises. Applying a message twice changes
nothing (buckets are keyed by ``msg_id``, the newest-wins fields compare
strictly), so a reader may re-read an overlap of rows.

The store-backed shell that feeds it batch by batch, :class:`IncrementalMonitor`,
is in :mod:`pumpops.monitoring._watermark`.

May import: ``pumpops.fleet``, ``pumpops.store`` (records and the aggregate
row), this package's pure modules, errors and the standard library.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
from pumpops.monitoring._shift_verdicts import HINTS, DeviceShift, device_shift
from pumpops.store import AgentRecord, HourAggregate

if TYPE_CHECKING:
    from pumpops.fleet import Device

__all__ = ["HOUR_MS", "FleetState", "hour_aggregate"]


HOUR_MS = 3_600_000
ModelKey = tuple[str, str] | None


@dataclass(frozen=True, slots=True)
class _Kept(AgentRecord):
    """An agent record with its body parsed once and its seq and time at hand (views read them each step)."""

    parsed: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    seq_no: int = field(default=0, repr=False, compare=False)
    time_ms: int = field(default=0, repr=False, compare=False)

    @property
    def seq(self) -> int:
        """The outbox's sequence number (parsed from ``msg_id`` once)."""
        return self.seq_no

    @property
    def ts_ms(self) -> int:
        """``ts_us`` in milliseconds."""
        return self.time_ms

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
        seq_no=record.seq,
        time_ms=record.ts_ms,
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
    shift: _Kept | None = None  # the newest drift report with a shift test's hint
    odd_hints: dict[str, _Kept] = field(default_factory=dict)  # drift reports with an unknown hint


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
        self._shifts: dict[str, tuple[tuple[str, ...], DeviceShift]] = {}  # by the ids of its reports

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
            elif rec.kind == "drift":
                if _newer(rec, dev.report):
                    dev.report = rec
                self._apply_shift(dev, rec)
            elif rec.kind in ("summary", "alarm"):
                touched.add((rec.device_id, rec.ts_ms // HOUR_MS))
                self._apply_named(dev, rec)
        return touched

    def _apply_shift(self, dev: _DeviceState, rec: _Kept) -> None:
        # What device_shift reads of a device's drift reports in the window: the newest
        # with a known hint, and those with an unknown one (named in its ``ignored``).
        hint = rec.parsed.get("hint")
        if hint in HINTS:
            if _newer(rec, dev.shift):
                dev.shift = rec
        elif hint not in (None, "") and rec.ts_ms >= (self.horizon_ms or 0):
            dev.odd_hints[rec.msg_id] = rec

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
            if dev.odd_hints:
                dev.odd_hints = {m: r for m, r in dev.odd_hints.items() if r.ts_ms // HOUR_MS >= cut_hour}
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

    def drift_reports(self, now_ms: int, policy: DriftPolicy) -> dict[str, list[AgentRecord]]:
        """Per device, its drift reports in the window that ``device_shift`` reads, in store order.

        The newest report with a shift test's hint (``HINTS``) and every report
        with an unknown hint (which ``device_shift`` names in ``ignored``): what
        the window's drift reports give ``device_shift``, without holding them all.
        Devices without such a report are left out.

        Raises:
            InputError: the window starts before the oldest hour still kept.
        """
        cutoff = policy.cutoff_ms(now_ms)
        if self._horizon_hour is not None and cutoff // HOUR_MS < self._horizon_hour:
            raise InputError(
                f"drift reports at {now_ms} ms: the window starts at {cutoff} ms, before the oldest hour "
                f"the incremental state keeps ({self._horizon_hour * HOUR_MS} ms)"
            )
        out: dict[str, list[AgentRecord]] = {}
        for device_id, dev in self._devices.items():
            if dev.shift is None and not dev.odd_hints:
                continue
            found = [r for r in dev.odd_hints.values() if r.ts_ms >= cutoff]
            if dev.shift is not None and dev.shift.ts_ms >= cutoff:
                found.append(dev.shift)
            if found:
                out[device_id] = sorted(found, key=lambda r: (r.ts_us, r.seq, r.msg_id))
        return out

    def device_shifts(
        self, now_ms: int, policy: DriftPolicy, device_ids: Iterable[str]
    ) -> dict[str, DeviceShift]:
        """``device_shift`` of each of ``device_ids`` over its :meth:`drift_reports` at ``now_ms``.

        A device whose reports are the same as at the last call keeps its
        last answer (``device_shift`` depends on its records only, and a
        stored message id never changes content): a step re-reads no report.

        Raises:
            InputError: the window starts before the oldest hour still kept.
        """
        reports = self.drift_reports(now_ms, policy)
        out: dict[str, DeviceShift] = {}
        for device_id in device_ids:
            own = reports.get(device_id, [])
            key = tuple(r.msg_id for r in own)
            hit = self._shifts.get(device_id)
            if hit is None or hit[0] != key:
                hit = self._shifts[device_id] = (key, device_shift(device_id, own))
            out[device_id] = hit[1]
        return out

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


def _parse(body_json: str) -> dict[str, Any]:
    """The body as a dict, as ``AgentRecord.body`` reads it (orjson: the step parses every new message once).

    orjson refuses what Python's ``json`` reads (``NaN``, ``Infinity``, which the
    store keeps as the agent sent them): those bodies are read by ``json``.

    >>> _parse('{"score_ratio": NaN}')
    {'score_ratio': nan}
    """
    try:
        value = orjson.loads(body_json)
    except orjson.JSONDecodeError:
        try:
            value = json.loads(body_json)
        except json.JSONDecodeError:  # pragma: no cover - the store only keeps JSON objects
            return {}
    return value if isinstance(value, dict) else {}
