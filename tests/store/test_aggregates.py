"""Hour aggregates (revision 0010) and the incremental monitor over a real store, SQLite and PostgreSQL.

The monitor reads the rows stored since its watermark, so its view must equal
``build_fleet_view`` over everything stored, whatever order and repeats the
messages came in, and the ``agent_hour_aggregates`` rows it writes must equal
the sums recomputed from the stored summaries and alarms of each hour.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Collection
from typing import cast

import pytest

from pumpops.errors import InputError
from pumpops.fleet import Device
from pumpops.monitoring import DriftPolicy, build_fleet_view
from pumpops.monitoring._fleet import SummaryStats, _model_key
from pumpops.monitoring._incremental import HOUR_MS, hour_aggregate
from pumpops.monitoring._watermark import IncrementalMonitor
from pumpops.store import AgentRecord, HourAggregate, RetentionPolicy, TelemetryStore
from pumpops.store._sql import SqlTelemetryStore

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00Z
MIN = 60_000
DEVICES = [Device("p-1", "site-a", "acme-ansi", "g1"), Device("p-2", "site-b", "sakura-esp", "g2")]
POLICY = DriftPolicy(window_s=3 * 3600, min_fraction=0.5, min_devices=1)


def sql(store: TelemetryStore) -> SqlTelemetryStore:
    return cast(SqlTelemetryStore, store)


def message(
    device: str, seq: int, kind: str, ts_ms: int, body: dict[str, object], received_ms: int
) -> AgentRecord:
    text = json.dumps(body, sort_keys=True)
    return AgentRecord(
        f"{device}:{seq}",
        device,
        "site-a",
        kind,
        ts_ms * 1000,
        "0.1.0",
        text,
        f"{seq:064x}",
        received_ms * 1000,
    )


def row(device: str = "p-1", hour: int = 10, model: str = "m/1", alarms: int = 2) -> HourAggregate:
    return HourAggregate(
        device, hour * HOUR_MS * 1000, model, 3, alarms, 1_800_000, 3, 3.0, 3, 2.0, 4.0, 9.0, 9, 1, 5
    )


def traffic(seed: int) -> list[AgentRecord]:
    """Six hours of three devices (one unregistered), out of order in receipt, with repeats."""
    rng = random.Random(seed)
    out: list[AgentRecord] = []
    for device in ("p-1", "p-2", "p-9"):
        for i in range(36):
            ts = T0_MS + i * 10 * MIN + rng.randrange(MIN)
            model = {"model_name": "m", "model_version": 1 + (i > 20)}
            summary = {
                "period_start_ms": ts - 600_000,
                "period_end_ms": ts,
                "alarms_raised": rng.randrange(3),
                "windows_scored": 50,
                "score": {"p50": rng.random(), "p95": 2 * rng.random(), "max": 3.0, "mean": rng.random()},
                **model,
            }
            out.append(message(device, 4 * i + 1, "summary", ts, summary, 0))
            out.append(
                message(
                    device,
                    4 * i + 2,
                    "state",
                    ts + 1,
                    {"health": "ok", **model, "drift_status": {"status": "ok"}},
                    0,
                )
            )
            if rng.random() < 0.3:
                out.append(message(device, 4 * i + 3, "alarm", ts + 2, {"event": "raised", **model}, 0))
            if i % 6 == 5:
                out.append(message(device, 4 * i + 4, "drift", ts + 3, {"alert": rng.random() < 0.5}, 0))
    rng.shuffle(out)
    out += rng.sample(out, 15)  # repeats: the broker delivered them again
    return out


def stored_hour_aggregates(store: TelemetryStore) -> dict[tuple[str, int, str], HourAggregate]:
    """The aggregates recomputed from every stored summary and alarm (the reference)."""
    totals: dict[tuple[str, int], dict[tuple[str, str] | None, SummaryStats]] = {}
    alarms: dict[tuple[str, int], dict[tuple[str, str] | None, int]] = {}
    for rec in store.agent_messages():
        key = (rec.device_id, rec.ts_ms // HOUR_MS)
        model = _model_key(rec.body())
        if rec.kind == "summary":
            totals.setdefault(key, {}).setdefault(model, SummaryStats()).add(rec.body())
        elif rec.kind == "alarm":
            counts = alarms.setdefault(key, {})
            counts[model] = counts.get(model, 0) + 1
    out = {}
    for device, hour in set(totals) | set(alarms):
        for agg in hour_aggregate(
            device, hour, totals.get((device, hour), {}), alarms.get((device, hour), {}), 0
        ):
            out[(agg.device_id, agg.hour_us, agg.model)] = agg
    return out


def test_put_hour_aggregates_replaces_the_row_of_the_same_hour_and_model(store: TelemetryStore) -> None:
    assert sql(store).put_hour_aggregates([row(alarms=2), row(model="")]) == 2
    sql(store).put_hour_aggregates([row(alarms=7)])
    got = sql(store).hour_aggregates(device_id="p-1")
    assert [(r.model, r.alarms_raised) for r in got] == [("", 2), ("m/1", 7)]
    assert got[1].alarm_rate_per_h == pytest.approx(14.0)
    assert sql(store).hour_aggregates(since_us=11 * HOUR_MS * 1000) == []
    assert len(sql(store).hour_aggregates(since_us=10 * HOUR_MS * 1000, until_us=11 * HOUR_MS * 1000)) == 2


def test_put_hour_aggregates_keeps_floats_exactly_and_the_last_of_a_repeated_key(
    store: TelemetryStore,
) -> None:
    """One statement for all rows (PostgreSQL: a JSON array): every value round-trips, None stays None."""
    odd = dataclasses.replace(
        row(), p50_sum=0.1 + 0.2, p95_max=None, score_max=1e-300, mean_wsum=2.0**60 + 0.5
    )
    many = [dataclasses.replace(row(), device_id=f"q-{i}", mean_w=i) for i in range(1200)]
    assert sql(store).put_hour_aggregates([row(alarms=1), odd, *many]) == 1201
    got = {r.device_id: r for r in sql(store).hour_aggregates()}
    assert got["p-1"] == odd
    assert len(got) == 1201
    assert got["q-1199"].mean_w == 1199


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (
            HourAggregate("p-1", 123, "", 0, 0, 0, 0, 0.0, 0, None, None, 0.0, 0, 0, 0),
            "not the start of an hour",
        ),
        (HourAggregate("", 0, "", 0, 0, 0, 0, 0.0, 0, None, None, 0.0, 0, 0, 0), "device_id is empty"),
        (HourAggregate("p-1", 0, "", 0, -1, 0, 0, 0.0, 0, None, None, 0.0, 0, 0, 0), "a count is negative"),
        (
            HourAggregate("p-1", 0, "", 0, 0, 0, 0, float("nan"), 0, None, None, 0.0, 0, 0, 0),
            "not finite",
        ),
        (
            HourAggregate("p-1", 0, "", 0, 0, 0, 0, 0.0, 0, float("inf"), None, 0.0, 0, 0, 0),
            "not finite",
        ),
    ],
)
def test_put_hour_aggregates_refuses_a_malformed_row_and_writes_nothing(
    store: TelemetryStore, bad: HourAggregate, reason: str
) -> None:
    with pytest.raises(InputError, match=reason):
        sql(store).put_hour_aggregates([row(), bad])
    assert sql(store).hour_aggregates() == []


def test_agent_messages_after_pages_by_receipt_time_and_id_without_gaps_or_repeats(
    store: TelemetryStore,
) -> None:
    records = [message("p-1", i, "state", T0_MS + i, {}, 1_000 + i // 5) for i in range(1, 26)]
    store.put_agent_messages(records)
    got: list[str] = []
    after, after_id = -1, ""
    while True:
        page = sql(store).agent_messages_after(received_after_us=after, after_msg_id=after_id, limit=7)
        got += [msg_id for msg_id, _, record in page if record is not None and record.msg_id == msg_id]
        if len(page) < 7:
            break
        after, after_id = page[-1][1], page[-1][0]
    assert sorted(got) == sorted(r.msg_id for r in records)
    assert len(got) == len(set(got))
    skipped = sql(store).agent_messages_after(received_after_us=-1, skip_ids={"p-1:3"})
    assert [(m, r is None) for m, _, r in skipped if m in ("p-1:2", "p-1:3")] == [
        ("p-1:2", False),
        ("p-1:3", True),
    ]
    with pytest.raises(InputError, match="limit must be 1 or more"):
        sql(store).agent_messages_after(received_after_us=0, limit=0)


def test_agent_message_ids_and_by_id_read_a_receipt_span_with_both_ends(store: TelemetryStore) -> None:
    records = [message("p-1", i, "state", T0_MS + i, {"i": i}, 1_000 + i) for i in range(1, 11)]
    store.put_agent_messages(records)
    span = {"received_from_us": 1_003_000, "received_until_us": 1_006_000}
    assert sorted(sql(store).agent_message_ids(**span)) == [f"p-1:{i}" for i in range(3, 7)]
    got = sql(store).agent_messages_by_id(["p-1:2", "p-1:4", "p-1:6", "p-1:nope"], **span)
    assert sorted((r.msg_id, r.body()["i"]) for r in got) == [("p-1:4", 4), ("p-1:6", 6)]
    assert got[0] == next(r for r in records if r.msg_id == got[0].msg_id)


def test_the_overlap_is_read_as_ids_and_only_a_late_row_whole(
    store: TelemetryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step re-reads the overlap's ids, not its bodies; a row committed late is fetched alone."""
    state = {"health": "ok", "model_name": "m", "model_version": 1, "drift_status": {"status": "ok"}}
    store.put_agent_messages([message("p-1", i, "state", T0_MS + i, state, 1_000_000 + i) for i in range(5)])
    monitor = IncrementalMonitor(sql(store), overlap_s=60)
    now = T0_MS + HOUR_MS
    monitor.view(now, DEVICES, POLICY)
    whole: list[list[str]] = []
    by_id = sql(store).agent_messages_by_id

    def spy(ids: Collection[str], **span: int) -> list[AgentRecord]:
        whole.append(sorted(ids))
        return by_id(ids, **span)

    monkeypatch.setattr(sql(store), "agent_messages_by_id", spy)
    assert monitor.refresh(now_us=now * 1000) == 0
    assert whole == []  # five ids re-read, no row fetched again
    store.put_agent_messages([message("p-2", 1, "state", T0_MS + 9, state, 1_000_000 - 1)])  # late
    store.put_agent_messages([message("p-2", 2, "state", T0_MS + 10, state, 1_000_010)])  # new
    assert monitor.refresh(now_us=now * 1000) == 2
    assert whole == [["p-2:1"]]
    assert monitor.view(now, DEVICES, POLICY).devices[1].last_seen_ms == T0_MS + 10


@pytest.mark.parametrize("seed", [1, 2])
def test_incremental_monitor_equals_full_view_and_writes_the_hours_it_saw(
    store: TelemetryStore, seed: int
) -> None:
    monitor = IncrementalMonitor(sql(store), overlap_s=0.5)
    msgs = traffic(seed)
    received = 0
    for step, start in enumerate(range(0, len(msgs), 60)):
        batch = []
        for rec in msgs[start : start + 60]:
            received += 1  # a later receipt for each message; repeats keep the id, get a new time
            batch.append(dataclasses.replace(rec, received_at_us=received * 1000))
        store.put_agent_messages(batch)
        now_ms = T0_MS + 3 * HOUR_MS + step * 5 * MIN
        full = build_fleet_view(store.agent_messages(), DEVICES, now_ms=now_ms, policy=POLICY)
        got = monitor.view(now_ms, DEVICES, POLICY)
        assert_same(got.to_dict(), full.to_dict())
    want = stored_hour_aggregates(store)
    have = {(r.device_id, r.hour_us, r.model): r for r in sql(store).hour_aggregates()}
    assert have.keys() == want.keys()
    for key, agg in want.items():
        h = have[key]
        assert (h.summaries, h.alarms_raised, h.period_ms, h.scored, h.p50_n, h.mean_w, h.alarm_messages) == (
            agg.summaries,
            agg.alarms_raised,
            agg.period_ms,
            agg.scored,
            agg.p50_n,
            agg.mean_w,
            agg.alarm_messages,
        ), key
        assert h.p50_sum == pytest.approx(agg.p50_sum)
        assert h.p95_max == agg.p95_max
        assert h.score_max == agg.score_max


def assert_same(got: object, want: object, path: str = "view") -> None:
    """Equal, floats to 1e-9 relative (sums added in another order)."""
    if isinstance(want, float) and isinstance(got, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), path
    elif isinstance(want, dict):
        assert isinstance(got, dict), path
        assert got.keys() == want.keys(), path
        for key in want:
            assert_same(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, list | tuple):
        assert isinstance(got, list | tuple), path
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{path}[{i}]")
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"


def test_a_backlog_older_than_the_window_gets_its_hour_recomputed_from_the_store(
    store: TelemetryStore,
) -> None:
    monitor = IncrementalMonitor(sql(store), overlap_s=0)
    summary = {
        "period_start_ms": 0,
        "period_end_ms": 600_000,
        "alarms_raised": 1,
        "model_name": "m",
        "model_version": 1,
    }
    store.put_agent_messages([message("p-1", 1, "summary", T0_MS + 5 * MIN, summary, 1)])
    monitor.view(T0_MS + 10 * HOUR_MS, DEVICES, POLICY)  # the window has moved on: hour 0 is forgotten
    store.put_agent_messages([message("p-1", 2, "summary", T0_MS + 7 * MIN, summary, 2)])
    view = monitor.view(T0_MS + 10 * HOUR_MS + MIN, DEVICES, POLICY)
    assert view.devices[0].alarms.alarms_raised == 0  # outside the window
    (agg,) = sql(store).hour_aggregates(device_id="p-1")
    assert (agg.hour_us, agg.model, agg.summaries, agg.alarms_raised) == (T0_MS * 1000, "m/1", 2, 2)


def test_prune_removes_hour_aggregates_with_the_summaries_horizon(store: TelemetryStore) -> None:
    now_us = (T0_MS + 400 * 24 * HOUR_MS) * 1000
    horizon_hour = (now_us // 1000 - 365 * 24 * HOUR_MS) // HOUR_MS
    sql(store).put_hour_aggregates(
        [row(hour=horizon_hour - 2), row(hour=horizon_hour - 1), row(hour=horizon_hour)]
    )
    dry = store.prune(RetentionPolicy(), actor="t", now=now_us, dry_run=True)
    assert {k.kind: k.rows for k in dry.kinds}["hour_aggregates"] == 2
    assert len(sql(store).hour_aggregates()) == 3
    report = store.prune(RetentionPolicy(), actor="t", now=now_us)
    assert {k.kind: k.rows for k in report.kinds}["hour_aggregates"] == 2
    assert [r.hour_us for r in sql(store).hour_aggregates()] == [horizon_hour * HOUR_MS * 1000]
    kept = store.prune(RetentionPolicy(summaries_days=0), actor="t", now=now_us + 10**12)
    assert {k.kind: k.rows for k in kept.kinds}["hour_aggregates"] == 0


def test_a_row_committed_late_is_read_within_the_overlap_and_missed_beyond_it(store: TelemetryStore) -> None:
    """The watermark's stated limit: receipt time, re-read ``overlap_s`` back (ADR 0016)."""
    state = {"health": "ok", "model_name": "m", "model_version": 1, "drift_status": {"status": "ok"}}
    now = T0_MS + HOUR_MS
    store.put_agent_messages([message("p-1", 1, "state", T0_MS + 1, state, 1_000_000)])
    monitor = IncrementalMonitor(sql(store), overlap_s=60)
    assert monitor.view(now, DEVICES, POLICY).devices[1].last_seen_ms is None
    # p-2's message was received 30 s before p-1's but committed after the step: inside the overlap
    store.put_agent_messages([message("p-2", 1, "state", T0_MS + 2, state, 1_000_000 - 30_000)])
    assert monitor.view(now, DEVICES, POLICY).devices[1].last_seen_ms == T0_MS + 2
    # one received 90 s before the watermark and committed now: beyond the overlap, missed
    store.put_agent_messages([message("p-2", 2, "state", T0_MS + 3, state, 1_000_000 - 90_000)])
    assert monitor.view(now, DEVICES, POLICY).devices[1].last_seen_ms == T0_MS + 2
    full = build_fleet_view(store.agent_messages(), DEVICES, now_ms=now, policy=POLICY)
    assert full.devices[1].last_seen_ms == T0_MS + 3


def test_a_late_row_re_dated_after_its_commit_is_read_as_new(store: TelemetryStore) -> None:
    """Ingest's repair of a slow commit (``ingest.redate_after_s``): the missed row is read next step."""
    state = {"health": "ok", "model_name": "m", "model_version": 1, "drift_status": {"status": "ok"}}
    now = T0_MS + HOUR_MS
    store.put_agent_messages([message("p-1", 1, "state", T0_MS + 1, state, 1_000_000)])
    monitor = IncrementalMonitor(sql(store), overlap_s=60)
    monitor.view(now, DEVICES, POLICY)
    late = message("p-2", 1, "state", T0_MS + 3, state, 1_000_000 - 90_000)
    store.put_agent_messages([late])
    assert monitor.view(now, DEVICES, POLICY).devices[1].last_seen_ms is None  # beyond the overlap
    moved = store.redate_agent_messages(
        [late.msg_id], since_us=late.received_at_us, received_at_us=1_000_500_000
    )
    assert moved == 1
    assert monitor.view(now, DEVICES, POLICY).devices[1].last_seen_ms == T0_MS + 3
    assert [r.received_at_us for r in store.agent_messages(device_id="p-2")] == [1_000_500_000]


def test_redate_moves_only_the_calls_rows_forward(store: TelemetryStore) -> None:
    """Rows received before ``since_us`` (stored by another call) or already later keep their time."""
    body = {"health": "ok"}
    older = message("p-1", 1, "state", T0_MS, body, 100)  # another call's row
    ours = message("p-1", 2, "state", T0_MS + 1, body, 200)
    newer = message("p-1", 3, "state", T0_MS + 2, body, 900)  # already after the new time
    store.put_agent_messages([older, ours, newer])
    ids = [older.msg_id, ours.msg_id, newer.msg_id, "p-1:99"]  # an id never stored is ignored
    assert store.redate_agent_messages(ids, since_us=150_000, received_at_us=500_000) == 1
    got = {r.msg_id: r.received_at_us for r in store.agent_messages(device_id="p-1")}
    assert got == {older.msg_id: 100_000, ours.msg_id: 500_000, newer.msg_id: 900_000}
    assert store.redate_agent_messages([], since_us=0, received_at_us=1) == 0
