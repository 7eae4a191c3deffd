"""Benchmark: audit appends per second on SQLite and PostgreSQL under concurrent writers.

Run: ``.venv/bin/python tests/audit/bench_audit_append.py [--per-writer N]``.
Each writer is a thread with its own store (own engine and connections, as
separate hub processes would have); all start together and append N entries
each. The chain is verified afterwards. Not a test: numbers go to the ADR.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from pumpops.audit import verify_chain
from pumpops.store import TelemetryStore, open_store

POSTGRES_URL = os.environ.get(
    "PUMPOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def run(url: str, writers: int, per_writer: int) -> tuple[float, int, bool]:
    """Append ``writers * per_writer`` entries; return (appends/s, count, chain ok)."""
    with open_store(url) as setup:
        setup.upgrade()
    stores: list[TelemetryStore] = [open_store(url) for _ in range(writers)]
    barrier = threading.Barrier(writers + 1)

    def write(index: int, store: TelemetryStore) -> None:
        barrier.wait()
        for n in range(per_writer):
            store.append_audit(f"bench-{index}@local", "bench.append", f"w/{index}", {"n": n})

    threads = [threading.Thread(target=write, args=(i, s)) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    for store in stores:
        store.close()
    with open_store(url) as check:
        entries = check.audit_entries()
    return writers * per_writer / elapsed, len(entries), verify_chain(entries).ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-writer", type=int, default=200)
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()
    admin = sa.create_engine(POSTGRES_URL, poolclass=sa.NullPool)
    with tempfile.TemporaryDirectory() as folder:
        for writers in args.writers:
            sqlite_url = f"sqlite:///{Path(folder) / f'bench-{writers}.db'}"
            schema = f"pumpops_bench_{uuid.uuid4().hex[:12]}"
            postgres_url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
            for name, url in (("sqlite", sqlite_url), ("postgres", postgres_url)):
                try:
                    rate, count, ok = run(url, writers, args.per_writer)
                finally:
                    if name == "postgres":
                        with admin.begin() as conn:
                            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                print(
                    f"{name:8} writers={writers:3} appends={count:6} rate={rate:8.0f} appends/s chain_ok={ok}"
                )
    admin.dispose()


if __name__ == "__main__":
    main()
