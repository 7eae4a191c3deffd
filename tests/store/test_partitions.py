"""Time partitions (revision 0009, ADR 0015): created ahead, dropped whole, the migration of full tables.

PostgreSQL only, except the migration test, which runs on both engines (SQLite
rebuilds ``agent_messages`` with its new key). Each test has its own schema.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command

from pumpops.errors import StoreError
from pumpops.fleet import Device
from pumpops.schema import ReadingBatch
from pumpops.store import AgentRecord, RetentionPolicy, TelemetryStore, open_store
from pumpops.store import _partitions as partitions_module
from pumpops.store._partitions import PostgresPartitions, day_start, parse_partition, partition_name
from pumpops.store._sql import SqlTelemetryStore, alembic_config

DAY = 86_400_000_000
NOW = 1_767_225_600_000_000 + 60 * DAY  # 2026-03-02T00:00Z
H30 = NOW - 30 * DAY

POSTGRES = [pytest.param("postgres", marks=pytest.mark.postgres)]


def batch(msg_id: str, ts_us: list[int], salt: str = "") -> ReadingBatch:
    ts = np.asarray(ts_us, dtype=np.int64)
    values = np.column_stack([np.arange(len(ts), dtype=np.float64), np.full(len(ts), 300.0)])
    digest = hashlib.sha256(repr((msg_id, ts.tolist(), salt)).encode()).hexdigest()
    return ReadingBatch("p-1", msg_id, digest, ts, ("motor_speed", "bearing_temperature"), values, NOW)


def agent(seq: int, kind: str, ts_us: int) -> AgentRecord:
    digest = hashlib.sha256(repr((seq, kind, ts_us)).encode()).hexdigest()
    return AgentRecord(
        f"p-1:{seq}", "p-1", "site-a", kind, ts_us, "0.1.0", json.dumps({"n": seq}), digest, ts_us
    )


def pg(store: TelemetryStore) -> PostgresPartitions:
    assert isinstance(store, PostgresPartitions)
    return store


def scalar(store: TelemetryStore, statement: str) -> Any:
    with cast(SqlTelemetryStore, store)._engine.connect() as conn:
        return conn.exec_driver_sql(statement).scalar()


def days(store: TelemetryStore, table: str) -> list[int]:
    """The partitions' days relative to NOW, without the migration's (today and tomorrow, real time)."""
    starts = [p.start_us for p in pg(store).partitions(table)]
    return [(start - NOW) // DAY for start in starts if start < NOW + 200 * DAY]


@pytest.fixture
def fleet_store(store: TelemetryStore) -> TelemetryStore:
    """The store with daily partitions from 45 days before NOW to 15 days after."""
    store.prune(RetentionPolicy(partitions_ahead_days=60), actor="ops", now=NOW - 45 * DAY)
    return store


@pytest.mark.parametrize("store_url", POSTGRES, indirect=True)
def test_prune_creates_the_days_ahead_once(store: TelemetryStore) -> None:
    report = store.prune(RetentionPolicy(partitions_ahead_days=3), actor="ops", now=NOW)
    assert days(store, "readings") == [0, 1, 2, 3] == days(store, "agent_messages")
    assert report.partitions_created[:4] == tuple(partition_name("readings", NOW + d * DAY) for d in range(4))
    again = store.prune(RetentionPolicy(partitions_ahead_days=3), actor="ops", now=NOW + DAY // 2)
    assert again.partitions_created == ()
    # Creating partitions alone is no prune: nothing removed, nothing audited.
    assert store.audit_entries() == []


@pytest.mark.parametrize("store_url", POSTGRES, indirect=True)
def test_prune_drops_whole_partitions_past_the_horizon_and_reports_them(fleet_store: TelemetryStore) -> None:
    store = fleet_store
    store.write_batches([batch(f"d{d}", [NOW + d * DAY + 5]) for d in range(-40, -25)])
    report = store.prune(RetentionPolicy(), actor="ops", now=NOW)
    readings = next(k for k in report.kinds if k.kind == "readings")
    dropped = sorted(parse_partition(n).start_us for n in readings.partitions)  # type: ignore[union-attr]
    assert dropped == [NOW + d * DAY for d in range(-45, -30)]
    assert readings.rows == 2 * 10  # days -40..-31 held one message of two readings each
    assert days(store, "readings")[0] == -30  # the day starting exactly at the horizon stays
    assert store.query("p-1").ts_us.tolist() == [NOW + d * DAY + 5 for d in range(-30, -25)]
    entry = store.audit_entries()[-1]
    assert entry.action == "store.pruned"
    assert entry.payload["kinds"]["readings"]["partitions_dropped"] == list(readings.partitions)


@pytest.mark.parametrize("store_url", POSTGRES, indirect=True)
def test_horizon_inside_a_day_is_rounded_down_to_its_partition_boundary(fleet_store: TelemetryStore) -> None:
    store = fleet_store
    now = NOW + DAY // 2  # 12:00 UTC: the readings horizon is H30 + 12 h
    store.write_batches([batch("m", [H30 - 1, H30 + DAY // 4, H30 + DAY // 2])])
    store.prune(RetentionPolicy(), actor="ops", now=now)
    # H30 + 6 h is before the horizon but its day is not wholly past it: kept until the next day.
    assert store.query("p-1").ts_us.tolist() == [H30 + DAY // 4, H30 + DAY // 2]


@pytest.mark.parametrize("store_url", POSTGRES, indirect=True)
def test_agent_partitions_are_dropped_only_past_both_agent_horizons(fleet_store: TelemetryStore) -> None:
    store = fleet_store
    store.put_agent_messages(
        [
            agent(1, "alarm", NOW - 40 * DAY),
            agent(2, "summary", NOW - 40 * DAY),
            agent(3, "alarm", NOW - 5 * DAY),
        ]
    )
    policy = RetentionPolicy(agent_messages_days=30, summaries_days=60)
    report = store.prune(policy, actor="ops", now=NOW)
    by_kind = {k.kind: k for k in report.kinds}
    assert by_kind["agent_messages"].rows == 1
    assert by_kind["summaries"].rows == 0
    assert by_kind["agent_messages"].partitions == ()  # the summary keeps day -40's partition
    assert sorted(r.msg_id for r in store.agent_messages()) == ["p-1:2", "p-1:3"]
    later = store.prune(policy, actor="ops", now=NOW + 30 * DAY)
    by_kind = {k.kind: k for k in later.kinds}
    # the summary of day -40 (now past 60 days) and the alarm of day -5 (now past 30)
    assert (by_kind["summaries"].rows, by_kind["agent_messages"].rows) == (1, 1)
    assert partition_name("agent_messages", NOW - 40 * DAY) in by_kind["summaries"].partitions


@pytest.mark.parametrize("store_url", POSTGRES, indirect=True)
def test_rows_of_the_default_partition(store: TelemetryStore) -> None:
    # No partition for NOW's day yet (the migration made today's, in real time): the default holds it.
    store.write_batches([batch("m", [NOW + 7]), batch("old", [NOW - 100 * DAY])])
    assert scalar(store, "SELECT count(*) FROM readings_default") == 4
    report = store.prune(RetentionPolicy(partitions_ahead_days=1), actor="ops", now=NOW)
    # NOW's partition was created and its rows moved out of the default partition...
    assert scalar(store, f"SELECT count(*) FROM {partition_name('readings', NOW)}") == 2
    # ...and the old rows there were deleted (no partition to drop for them).
    assert scalar(store, "SELECT count(*) FROM readings_default") == 0
    readings = next(k for k in report.kinds if k.kind == "readings")
    assert (readings.rows, readings.partitions) == (2, ())
    assert store.query("p-1").ts_us.tolist() == [NOW + 7]


@pytest.mark.parametrize("store_url", POSTGRES, indirect=True)
def test_replay_across_partitions_is_still_a_no_op(fleet_store: TelemetryStore) -> None:
    store = fleet_store
    spanning = batch("m", [NOW - DAY - 1, NOW - DAY, NOW])  # three days, three partitions
    assert [o.status for o in store.write_batches([spanning])] == ["stored"]
    assert [o.status for o in store.write_batches([spanning])] == ["duplicate"]
    # Another message overlapping one stored reading keeps the first value and reports the overlap.
    (outcome,) = store.write_batches([batch("m2", [NOW, NOW + 1], salt="x")])
    assert outcome.readings_written == 2
    assert outcome.readings_overlapping == 2
    assert scalar(store, "SELECT count(*) FROM readings") == 8


def _upgrade_to(store: TelemetryStore, revision: str) -> None:
    sql_store = cast(SqlTelemetryStore, store)
    config = alembic_config()
    with sql_store._writer.begin() as conn:
        sql_store._prepare_upgrade(conn)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def _downgrade_to(store: TelemetryStore, revision: str) -> None:
    sql_store = cast(SqlTelemetryStore, store)
    config = alembic_config()
    with sql_store._writer.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def test_migration_converts_tables_with_rows_and_keeps_replays_idempotent(
    store_url: Callable[[], str],
) -> None:
    TODAY = day_start(time.time_ns() // 1000)  # noqa: N806 - the migration partitions around the real today
    with open_store(store_url()) as store:
        _upgrade_to(store, "0008")
        store.register_devices([Device("p-1", "site-a", "acme-ansi", "g1")])
        old = batch("m-old", [TODAY - 200 * DAY, TODAY - 2 * DAY, TODAY - DAY, TODAY])
        assert [o.status for o in store.write_batches([old])] == ["stored"]
        record = agent(1, "alarm", TODAY - DAY)
        with cast(SqlTelemetryStore, store)._writer.begin() as conn:  # the 0008 writer's row, as it was
            conn.execute(
                sa.text(
                    "INSERT INTO agent_messages VALUES (:m, 'p-1', 1, 'site-a', 'alarm', :ts, :ts, '0.1.0', "
                    "'{\"n\": 1}', :h)"
                ),
                {"m": record.msg_id, "ts": record.ts_us, "h": record.payload_sha256},
            )
        store.upgrade()
        assert cast(SqlTelemetryStore, store).current_revision() == "0010"
        assert store.query("p-1").ts_us.tolist() == [TODAY - 200 * DAY, TODAY - 2 * DAY, TODAY - DAY, TODAY]
        assert [r.msg_id for r in store.agent_messages()] == ["p-1:1"]
        assert [o.status for o in store.write_batches([old])] == ["duplicate"]
        put = store.put_agent_messages([record])
        assert (put.stored, put.duplicates) == (0, 1)
        if isinstance(store, PostgresPartitions):
            parted = scalar(
                store,
                "SELECT count(*) FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
                "WHERE c.relname IN ('readings', 'agent_messages') AND pg_table_is_visible(c.oid)",
            )
            assert parted == 2
            # a partition for each day the rows covered, at most 120 days back: older rows in the default
            starts = [p.start_us for p in store.partitions("readings")]
            assert starts[0] == TODAY + DAY - 120 * DAY
            assert starts[-1] == TODAY + DAY
            assert scalar(store, "SELECT count(*) FROM readings_default") == 2
            assert scalar(store, "SELECT to_regclass('readings_old') IS NULL") is True
        # and back: plain tables with the same rows
        _downgrade_to(store, "0008")
        assert scalar(store, "SELECT count(*) FROM readings") == 8
        assert scalar(store, "SELECT count(*) FROM agent_messages") == 1
        store.upgrade()
        assert scalar(store, "SELECT count(*) FROM readings") == 8


@pytest.mark.parametrize("store_url", POSTGRES, indirect=True)
def test_prune_gives_up_behind_a_long_reader_instead_of_stalling_ingest(
    fleet_store: TelemetryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = fleet_store
    store.write_batches([batch("old", [NOW - 40 * DAY])])
    monkeypatch.setattr(partitions_module, "LOCK_TIMEOUT", "200ms")
    reader = cast(SqlTelemetryStore, store)._engine.connect()
    transaction = reader.begin()
    reader.exec_driver_sql("SELECT count(*) FROM readings")  # holds ACCESS SHARE on every partition
    try:
        with pytest.raises(StoreError, match="lock timeout"):
            store.prune(RetentionPolicy(), actor="ops", now=NOW)
    finally:
        transaction.rollback()
        reader.close()
    assert store.query("p-1").ts_us.tolist() == [NOW - 40 * DAY]  # nothing dropped
    assert store.audit_entries() == []
    # the next step, with the reader gone, does it
    report = store.prune(RetentionPolicy(), actor="ops", now=NOW)
    assert next(k.rows for k in report.kinds if k.kind == "readings") == 2
