"""Does the per-schema lock of ``put_agent_messages`` on PostgreSQL limit several ingest workers?

Run: ``.venv/bin/python benchmarks/agent_put.py [--records 20000] [--batch 500]``.

Since revision 0009 agent messages are keyed ``(msg_id, ts_us)`` (partitioned
by time), so a writer looks its ids up first under a per-schema advisory lock
(``_lock_agent_messages``): agent-message writers take turns. In one run this
prints records/s for 1 and 2 writer processes (each its own connection, as
ingest workers are) with the lock as shipped and, as the baseline, with the
lock turned into a no-op (unsafe for real use: it only shows what the lock
costs). If 2 writers with the lock gain about what 2 writers without it gain,
the lock is not what limits scaling on this machine.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

PG_URL = os.environ.get("PUMPOPS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _writer(
    db_url: str, index: int, n_records: int, batch: int, locked: bool, start: mp.synchronize.Event
) -> None:
    import hashlib

    from pumpops.store import AgentRecord, open_store

    store = open_store(db_url)
    if not locked:
        store._lock_agent_messages = lambda conn: None  # type: ignore[attr-defined,method-assign]
    now_us = time.time_ns() // 1000
    records = [
        AgentRecord(
            # the writers share the devices, as ingest workers on one shared subscription do
            msg_id=f"d{i % 200}:{i * 2 + index + 1}",
            device_id=f"d{i % 200}",
            site="bench",
            kind="summary",
            ts_us=now_us - 3_600_000_000 + i * 1000,
            agent_version="1.0.0",
            body_json='{"rows": 60, "median_score": 0.4}',
            payload_sha256=hashlib.sha256(f"{index}:{i}".encode()).hexdigest(),
            received_at_us=now_us,
        )
        for i in range(n_records)
    ]
    store.put_agent_messages(records[:10])  # connect and warm up
    start.wait()
    for lo in range(10, n_records, batch):
        store.put_agent_messages(records[lo : lo + batch])
    store.close()


def run(n_writers: int, locked: bool, n_records: int, batch: int) -> float:
    import sqlalchemy as sa

    from pumpops.store import open_store

    schema = f"bench_agent_{uuid.uuid4().hex[:8]}"
    url = f"{PG_URL}?schema={schema}"
    store = open_store(url)
    store.upgrade()
    store.close()
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    per = n_records // n_writers
    procs = [
        ctx.Process(target=_writer, args=(url, i, per, batch, locked, start), daemon=True)
        for i in range(n_writers)
    ]
    try:
        for proc in procs:
            proc.start()
        time.sleep(4.0)  # imports and connections
        t0 = time.perf_counter()
        start.set()
        for proc in procs:
            proc.join(600)
        elapsed = time.perf_counter() - t0
    finally:
        engine = sa.create_engine(PG_URL)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
    return (per - 10) * n_writers / elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--records", type=int, default=20_000, help="agent messages per run, split over writers"
    )
    parser.add_argument("--batch", type=int, default=500, help="messages per put_agent_messages call")
    args = parser.parse_args(argv)
    print(
        f"# put_agent_messages on PostgreSQL — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.machine()}, {os.cpu_count()} cores; load {Path('/proc/loadavg').read_text().split()[:3]}"
    )
    results = {
        (n, locked): run(n, locked, args.records, args.batch) for locked in (True, False) for n in (1, 2)
    }
    print("| lock | 1 writer, records/s | 2 writers, records/s | 2 writers / 1 writer |")
    print("|---|---|---|---|")
    for locked in (True, False):
        one, two = results[(1, locked)], results[(2, locked)]
        label = "per-schema advisory lock (as shipped)" if locked else "no lock (baseline, unsafe)"
        print(f"| {label} | {one:,.0f} | {two:,.0f} | {two / one:.2f} |")
    print(f"# load after: {Path('/proc/loadavg').read_text().split()[:3]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
