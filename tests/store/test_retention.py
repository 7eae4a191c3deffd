"""Retention (revision 0009, ADR 0015): prune by kind at the horizon, on SQLite and PostgreSQL.

Every test picks ``NOW`` at 00:00 UTC, so the horizons of whole days fall on
partition boundaries: there both engines remove exactly the rows with time
``< horizon`` and keep the row exactly at the horizon. (Between boundaries
PostgreSQL rounds the horizon down to 00:00: ``test_partitions.py``.)
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from pumpops.audit import verify_chain
from pumpops.errors import ConfigError, InputError
from pumpops.schema import DeadLetter, ReadingBatch
from pumpops.settings import load_settings
from pumpops.store import AgentRecord, RetentionPolicy, TelemetryStore
from pumpops.store._sql import SqlTelemetryStore

DAY = 86_400_000_000
NOW = 1_767_225_600_000_000 + 60 * DAY  # 2026-03-02T00:00Z
H30 = NOW - 30 * DAY  # the default readings / dead letters horizon


def batch(msg_id: str, ts_us: list[int], device_id: str = "p-1", salt: str = "") -> ReadingBatch:
    """One message of two sensors at the given times."""
    ts = np.asarray(ts_us, dtype=np.int64)
    values = np.column_stack([np.arange(len(ts), dtype=np.float64), np.full(len(ts), 300.0)])
    digest = hashlib.sha256(repr((device_id, msg_id, ts.tolist(), salt)).encode()).hexdigest()
    return ReadingBatch(device_id, msg_id, digest, ts, ("motor_speed", "bearing_temperature"), values, NOW)


def agent(seq: int, kind: str, ts_us: int, device_id: str = "p-1", salt: str = "") -> AgentRecord:
    body = json.dumps({"n": seq})
    digest = hashlib.sha256(repr((device_id, seq, kind, ts_us, salt)).encode()).hexdigest()
    return AgentRecord(
        msg_id=f"{device_id}:{seq}",
        device_id=device_id,
        site="site-a",
        kind=kind,
        ts_us=ts_us,
        agent_version="0.1.0",
        body_json=body,
        payload_sha256=digest,
        received_at_us=ts_us,
        topic=f"pumpops/v1/site-a/{device_id}/alarms",
        payload=b"raw",
    )


def letter(received_at_us: int) -> DeadLetter:
    return DeadLetter(
        topic="pumpops/v1/x", payload=b"\x00", reason="bad_json", detail="d", received_at_us=received_at_us
    )


def sql(store: TelemetryStore) -> SqlTelemetryStore:
    assert isinstance(store, SqlTelemetryStore)
    return store


def rows(store: TelemetryStore, table: str) -> int:
    with sql(store)._engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() or 0)


def fill(store: TelemetryStore) -> None:
    """Of each kind: one row just before its horizon and one exactly at it (default policy)."""
    store.write_batches([batch("old", [H30 - 1]), batch("edge", [H30]), batch("new", [NOW - DAY])])
    h90, h365 = NOW - 90 * DAY, NOW - 365 * DAY
    store.put_agent_messages(
        [
            agent(1, "alarm", h90 - 1),
            agent(2, "drift", h90),
            agent(3, "state", NOW - DAY),
            agent(4, "summary", h365 - 1),
            agent(5, "summary", h365),
            agent(6, "summary", h90 - 1),  # an old summary: kept, summaries live a year
        ]
    )
    store.write_dead_letters([letter(H30 - 1), letter(H30)])
    store.append_event("model.registered", "m/1", {}, time_us=h365 - 1)
    store.append_event("model.registered", "m/2", {}, time_us=h365)


def test_prune_removes_each_kind_before_its_horizon_and_keeps_the_row_at_it(store: TelemetryStore) -> None:
    fill(store)
    report = store.prune(RetentionPolicy(), actor="ops", now=NOW)
    by_kind = {k.kind: k for k in report.kinds}
    # readings: message "old" had 2 readings (two sensors) before the horizon
    assert {kind: k.rows for kind, k in by_kind.items()} == {
        "readings": 2,
        "agent_messages": 1,
        "summaries": 1,
        "hour_aggregates": 0,  # none written here: tests/store/test_aggregates.py prunes them
        "dead_letters": 1,
        "events": 1,
    }
    assert by_kind["readings"].horizon_us == H30
    frame = store.query("p-1")
    assert frame.ts_us.tolist() == [H30, NOW - DAY]
    assert sorted(r.msg_id for r in store.agent_messages()) == ["p-1:2", "p-1:3", "p-1:5", "p-1:6"]
    assert [d.received_at_us for d in store.dead_letters()] == [H30]
    assert [e.subject for e in store.events()] == ["m/2"]


def test_prune_is_audited_as_one_store_pruned_entry_with_the_counts(store: TelemetryStore) -> None:
    fill(store)
    report = store.prune(RetentionPolicy(), actor="ops", now=NOW)
    entries = [e for e in store.audit_entries() if e.action == "store.pruned"]
    assert len(entries) == 1
    assert report.audit_seq == entries[0].seq
    assert entries[0].actor == "ops"
    assert entries[0].payload["kinds"]["readings"]["rows"] == 2
    assert entries[0].payload["kinds"]["events"]["horizon_us"] == NOW - 365 * DAY
    # nothing left to remove: no second entry
    again = store.prune(RetentionPolicy(), actor="ops", now=NOW)
    assert again.rows == 0
    assert again.audit_seq is None
    assert len([e for e in store.audit_entries() if e.action == "store.pruned"]) == 1


def test_prune_never_deletes_audit_entries_however_old(store: TelemetryStore) -> None:
    for i in range(5):
        store.append_audit("ops", "model.promoted", f"m/{i}", {"i": i}, time_us=NOW - 3650 * DAY + i)
    before = store.audit_entries()
    store.write_batches([batch("old", [NOW - 400 * DAY])])
    everything_short = RetentionPolicy(
        readings_days=1, agent_messages_days=1, summaries_days=1, dead_letters_days=1, events_days=1
    )
    store.prune(everything_short, actor="ops", now=NOW)
    after = store.audit_entries()
    assert after[: len(before)] == before  # every old entry still there, unchanged
    assert [e.action for e in after[len(before) :]] == ["store.pruned"]
    assert verify_chain(after).ok


def test_prune_dry_run_counts_the_same_and_writes_nothing(store: TelemetryStore) -> None:
    fill(store)
    tables = ("readings", "agent_messages", "dead_letters", "events", "audit", "messages")
    before = {t: rows(store, t) for t in tables}
    dry = store.prune(RetentionPolicy(), actor="ops", now=NOW, dry_run=True)
    assert {t: rows(store, t) for t in tables} == before
    assert dry.dry_run
    assert dry.audit_seq is None
    real = store.prune(RetentionPolicy(), actor="ops", now=NOW)
    assert [(k.kind, k.rows, k.partitions) for k in dry.kinds] == [
        (k.kind, k.rows, k.partitions) for k in real.kinds
    ]


def test_prune_zero_days_keeps_that_kind_forever(store: TelemetryStore) -> None:
    fill(store)
    report = store.prune(
        RetentionPolicy(readings_days=0, events_days=0, summaries_days=0), actor="ops", now=NOW
    )
    by_kind = {k.kind: k for k in report.kinds}
    assert by_kind["readings"].horizon_us is None
    assert by_kind["readings"].rows == 0
    assert rows(store, "readings") == 6
    assert len(store.events()) == 2
    assert sorted(r.msg_id for r in store.agent_messages(kind="summary")) == ["p-1:4", "p-1:5", "p-1:6"]
    assert by_kind["agent_messages"].rows == 1  # the other kinds still apply


def test_prune_in_small_batches_removes_everything_before_the_horizon(store: TelemetryStore) -> None:
    old = [H30 - DAY + i * 1_000_000 for i in range(25)]
    store.write_batches([batch("a", old), batch("b", old, device_id="p-2"), batch("keep", [H30])])
    store.put_agent_messages([agent(i, "alarm", NOW - 100 * DAY + i) for i in range(1, 12)])
    store.write_dead_letters([letter(H30 - 10 - i) for i in range(7)])
    report = store.prune(RetentionPolicy(batch_rows=3), actor="ops", now=NOW)
    by_kind = {k.kind: k.rows for k in report.kinds}
    assert by_kind["readings"] == 100
    assert by_kind["agent_messages"] == 11
    assert by_kind["dead_letters"] == 7
    assert rows(store, "readings") == 2
    assert store.agent_messages() == []


def test_replayed_message_after_its_readings_were_pruned_is_still_a_duplicate(store: TelemetryStore) -> None:
    old = batch("m-old", [H30 - DAY, H30 - DAY + 1_000_000])
    store.write_batches([old])
    store.prune(RetentionPolicy(), actor="ops", now=NOW)
    assert rows(store, "readings") == 0
    # The ledger (messages) is kept: a replay of a pruned message does not bring its readings back.
    (outcome,) = store.write_batches([old])
    assert outcome.status == "duplicate"
    assert rows(store, "readings") == 0


def test_agent_message_replay_is_a_no_op_and_a_reused_id_with_another_time_is_a_conflict(
    store: TelemetryStore,
) -> None:
    first = agent(7, "alarm", NOW - DAY)
    assert store.put_agent_messages([first]).stored == 1
    replay = store.put_agent_messages([first])
    assert (replay.stored, replay.duplicates) == (0, 1)
    # The key is (msg_id, ts_us) since 0009: the same id at another time must still be refused.
    forged = agent(7, "alarm", NOW - 2 * DAY, salt="forged")
    put = store.put_agent_messages([forged])
    assert put.stored == 0
    assert [r.ts_us for r in store.agent_messages()] == [NOW - DAY]
    assert [d.reason for d in store.dead_letters()] == ["msg_id_conflict"]


def test_agent_message_concurrent_writers_of_one_id_at_two_times_store_it_once(store: TelemetryStore) -> None:
    url = sql(store).url
    from pumpops.store import open_store

    others = [open_store(url.replace("***", "")) for _ in range(2)]
    records = [[agent(i, "alarm", NOW - DAY, salt=f"w{w}") for i in range(1, 40)] for w in range(2)]
    records[1] = [agent(i, "alarm", NOW - 2 * DAY, salt="w1") for i in range(1, 40)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        barrier.wait()
        try:
            others[worker].put_agent_messages(records[worker])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for other in others:
        other.close()
    assert errors == []
    stored = store.agent_messages()
    assert sorted(r.msg_id for r in stored) == sorted({f"p-1:{i}" for i in range(1, 40)})
    assert len({r.ts_us for r in stored}) == 1  # all from one writer; the other's became conflicts
    assert len(store.dead_letters(limit=1000)) == 39


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("readings_days", -1.0, "0 (keep forever) or a number of days"),
        ("summaries_days", 0.5, "at least 1 day"),
        ("events_days", float("nan"), "0 (keep forever) or a number of days"),
        ("batch_rows", 0, "batch_rows must be at least 1"),
        ("partitions_ahead_days", 0, "partitions_ahead_days must be 1 to 366"),
    ],
)
def test_retention_policy_refuses_bad_values_with_the_reason(field: str, value: float, reason: str) -> None:
    with pytest.raises(InputError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        RetentionPolicy(**{field: value})


@pytest.mark.parametrize(
    ("toml", "reason"),
    [
        ("readings_days = 0.25", "at least 1 day"),
        ("dead_letters_days = -3", "dead_letters_days"),
        ("interval_s = 1", "interval_s"),
        ("audit_days = 30", "audit_days"),  # there is no such setting: audit is never pruned
    ],
)
def test_retention_settings_refuse_bad_values_with_the_reason(
    tmp_path: Path, toml: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path
    (folder / "pumpops.toml").write_text(f"[retention]\n{toml}\n")
    monkeypatch.delenv("PUMPOPS_WORKSPACE", raising=False)
    with pytest.raises(ConfigError, match=reason):
        load_settings(folder)


def test_retention_settings_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pumpops.toml").write_text("")
    monkeypatch.delenv("PUMPOPS_WORKSPACE", raising=False)
    settings = load_settings(tmp_path)
    r = settings.retention
    assert (r.readings_days, r.agent_messages_days, r.dead_letters_days) == (30, 90, 30)
    policy = RetentionPolicy(**r.model_dump(exclude={"interval_s"}))
    assert policy.horizon_us("readings", NOW) == H30
    assert policy.horizon_us("events", NOW) == NOW - 365 * DAY


def test_prune_on_an_empty_store_removes_nothing_and_audits_nothing(store: TelemetryStore) -> None:
    report = store.prune(RetentionPolicy(), actor="ops", now=NOW)
    assert report.rows == 0
    assert report.audit_seq is None
    assert store.audit_entries() == []
    with sql(store)._engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM audit")) == 0
