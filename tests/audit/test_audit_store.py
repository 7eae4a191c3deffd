"""The audit trail in the store on SQLite and PostgreSQL: round trip, tampering by SQL, parallel writers."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable

import pytest

from pumpops.audit import GENESIS_HASH, chain_entry, verify_chain
from pumpops.errors import ConfigError, InputError
from pumpops.store import TelemetryStore, open_store

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
SECOND = 1_000_000

Raw = Callable[[str], None]


def fill(store: TelemetryStore, n: int = 5) -> None:
    for i in range(1, n + 1):
        store.append_audit(
            "ann@hq",
            "model.promoted" if i % 2 else "run.trained",
            f"m/{i % 2}",
            {"i": i, "f1": 0.5 + i / 10, "note": "ü"},
            time_us=T0 + i * SECOND,
        )


def test_append_audit_round_trip_links_and_verifies(store: TelemetryStore) -> None:
    first = store.append_audit("ann@hq", "dataset.snapshot", "ds/abc", {"rows": 3, "tags": ["a"]})
    second = store.append_audit("bob@hq", "run.trained", "run/1", time_us=T0)
    assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
    assert (second.seq, second.prev_hash, second.time_us, second.payload) == (2, first.hash, T0, {})
    entries = store.audit_entries()
    assert entries == [first, second]
    assert entries[0].payload == {"rows": 3, "tags": ["a"]}
    report = verify_chain(entries)
    assert (report.ok, report.count, report.head_hash) == (True, 2, second.hash)


def test_audit_entries_filters_by_seq_time_subject_and_limit(store: TelemetryStore) -> None:
    fill(store, 6)
    assert [e.seq for e in store.audit_entries(since_seq=4)] == [4, 5, 6]
    assert [e.seq for e in store.audit_entries(since_us=T0 + 5 * SECOND)] == [5, 6]
    assert [e.seq for e in store.audit_entries(subject="m/1")] == [1, 3, 5]
    assert [e.seq for e in store.audit_entries(limit=2)] == [5, 6]
    assert [e.seq for e in store.audit_entries(subject="m/0", limit=2)] == [4, 6]
    assert store.audit_entries(limit=0) == []
    with pytest.raises(InputError):
        store.audit_entries(limit=-1)


def test_append_audit_empty_actor_raises_config_error_and_writes_nothing(store: TelemetryStore) -> None:
    with pytest.raises(ConfigError, match="actor"):
        store.append_audit("", "model.promoted", "m/1")
    with pytest.raises(InputError):
        store.append_audit("ann", "model.promoted", "m/1", {"x": float("inf")})
    assert store.audit_entries() == []


def test_store_audit_has_no_update_or_delete_methods(store: TelemetryStore) -> None:
    audit_methods = {name for name in dir(store) if "audit" in name and not name.startswith("_")}
    assert audit_methods == {"append_audit", "audit_entries"}


# -- tampering directly in the database ------------------------------------------------------------


def _forged_sql(seq: int, prev_hash: str) -> str:
    entry = chain_entry(seq, T0, "mallory@x", "model.promoted", "m/evil", {"forced": True}, prev_hash)
    return (
        "INSERT INTO audit (seq, time_us, actor, action, subject, payload, prev_hash, hash) VALUES "
        f"({entry.seq}, {entry.time_us}, '{entry.actor}', '{entry.action}', '{entry.subject}', "
        f"'{entry.payload_json}', '{entry.prev_hash}', '{entry.hash}')"
    )


def _modify_payload(store: TelemetryStore, raw: Raw) -> None:
    raw("""UPDATE audit SET payload = '{"f1":0.99,"i":3,"note":"ü"}' WHERE seq = 3""")


def _modify_and_rehash(store: TelemetryStore, raw: Raw) -> None:
    old = store.audit_entries(since_seq=3)[0]
    new = chain_entry(3, old.time_us, "mallory@x", old.action, old.subject, old.payload, old.prev_hash)
    raw(f"UPDATE audit SET actor = 'mallory@x', hash = '{new.hash}' WHERE seq = 3")


def _delete(store: TelemetryStore, raw: Raw) -> None:
    raw("DELETE FROM audit WHERE seq = 3")


def _delete_and_renumber(store: TelemetryStore, raw: Raw) -> None:
    raw("DELETE FROM audit WHERE seq = 3")
    raw("UPDATE audit SET seq = seq + 1000 WHERE seq > 3")
    raw("UPDATE audit SET seq = seq - 1001 WHERE seq > 1000")


def _insert_linking_back(store: TelemetryStore, raw: Raw) -> None:
    second = store.audit_entries(since_seq=2)[0]
    raw(_forged_sql(6, second.hash))


def _insert_with_renumbering(store: TelemetryStore, raw: Raw) -> None:
    third = store.audit_entries(since_seq=3)[0]
    raw("UPDATE audit SET seq = seq + 1000 WHERE seq >= 4")
    raw("UPDATE audit SET seq = seq - 999 WHERE seq > 1000")
    raw(_forged_sql(4, third.hash))


def _swap_seq(store: TelemetryStore, raw: Raw) -> None:
    raw("UPDATE audit SET seq = -1 WHERE seq = 3")
    raw("UPDATE audit SET seq = 3 WHERE seq = 4")
    raw("UPDATE audit SET seq = 4 WHERE seq = -1")


# (name, tamper, first bad seq, kind)
DB_SCENARIOS = [
    ("modify-payload", _modify_payload, 3, "modified"),
    ("modify-and-rehash", _modify_and_rehash, 3, "modified"),
    ("delete", _delete, 4, "deleted"),
    ("delete-and-renumber", _delete_and_renumber, 3, "deleted"),
    ("insert-linking-back", _insert_linking_back, 6, "inserted"),
    ("insert-with-renumbering", _insert_with_renumbering, 4, "inserted"),
    ("reorder-swap-seq", _swap_seq, 3, "reordered"),
]


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "kind"), [s[1:] for s in DB_SCENARIOS], ids=[s[0] for s in DB_SCENARIOS]
)
def test_verify_tampered_database_names_first_bad_entry_and_kind(
    store: TelemetryStore, raw: Raw, tamper: Callable[[TelemetryStore, Raw], None], bad_seq: int, kind: str
) -> None:
    fill(store, 5)
    assert verify_chain(store.audit_entries()).ok
    tamper(store, raw)
    report = verify_chain(store.audit_entries())
    assert (report.bad_seq, report.kind) == (bad_seq, kind), report.detail


# -- concurrent writers ----------------------------------------------------------------------------

WRITERS = 6
PER_WRITER = 25


def test_append_audit_concurrent_writers_leave_one_unforked_chain(db_url: str, store: TelemetryStore) -> None:
    # Each writer has its own engine and connections, as separate hub processes would.
    stores = [open_store(db_url) for _ in range(WRITERS)]
    barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def write(index: int, writer: TelemetryStore) -> None:
        try:
            barrier.wait()
            for n in range(PER_WRITER):
                writer.append_audit(f"writer-{index}@test", "test.append", f"w/{index}", {"n": n})
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i, s)) for i, s in enumerate(stores)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        for writer in stores:
            writer.close()
    assert errors == []
    entries = store.audit_entries()
    assert [e.seq for e in entries] == list(range(1, WRITERS * PER_WRITER + 1))
    assert len({e.prev_hash for e in entries}) == len(entries)  # no two entries share a parent: no fork
    report = verify_chain(entries)
    assert report.ok, report.detail
    for index in range(WRITERS):
        mine = [e.payload["n"] for e in entries if e.subject == f"w/{index}"]
        assert mine == list(range(PER_WRITER))


_WRITER_SCRIPT = """
import sys
from pumpops.store import open_store
with open_store(sys.argv[1]) as store:
    for n in range(int(sys.argv[3])):
        store.append_audit(f"proc-{sys.argv[2]}@test", "test.append", f"p/{sys.argv[2]}", {"n": n})
"""


def test_append_audit_concurrent_processes_leave_one_unforked_chain(
    db_url: str, store: TelemetryStore
) -> None:
    processes, per_process = 3, 20
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER_SCRIPT, db_url, str(i), str(per_process)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    for proc in procs:
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
    entries = store.audit_entries()
    assert len(entries) == processes * per_process
    report = verify_chain(entries)
    assert report.ok, report.detail
