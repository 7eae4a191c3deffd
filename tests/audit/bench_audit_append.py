"""Benchmark: audit appends per second on SQLite and PostgreSQL under concurrent writers, unsigned vs signed.

Run: ``.venv/bin/python tests/audit/bench_audit_append.py [--per-writer N]``.
Each writer is a thread with its own store (own engine and connections, as
separate hub processes would have); all start together and append N entries
each. Every case runs twice in the same run: unsigned (the baseline, as before
revision 0008) and signed with an Ed25519 audit key plus an anchors file line
per append (ADR 0013); the table prints both rates and signed/unsigned. The
chain (and the signatures and anchors, when signed) is verified afterwards.
Not a test: numbers go to docs/benchmarks.md.
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

from pumpops.audit import AuditKey, AuditSigner, read_anchors, verify_trail
from pumpops.store import TelemetryStore, open_store

POSTGRES_URL = os.environ.get(
    "PUMPOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def run(url: str, writers: int, per_writer: int, signer: AuditSigner | None) -> tuple[float, int, bool]:
    """Append ``writers * per_writer`` entries; return (appends/s, count, trail ok)."""
    with open_store(url) as setup:
        setup.upgrade()
    stores: list[TelemetryStore] = [open_store(url, audit_signer=signer) for _ in range(writers)]
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
    key = None if signer is None else signer.key
    anchors = [] if signer is None or signer.anchors_file is None else read_anchors(signer.anchors_file)
    report = verify_trail(entries, key, anchors)
    return (
        writers * per_writer / elapsed,
        len(entries),
        report.ok and report.signed == (len(entries) if key else 0),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-writer", type=int, default=200)
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()
    admin = sa.create_engine(POSTGRES_URL, poolclass=sa.NullPool)
    head = ("engine", "writers", "appends", "unsigned/s", "signed/s", "ratio")
    print(f"{head[0]:8} {head[1]:>7} {head[2]:>7} {head[3]:>10} {head[4]:>9} {head[5]:>6}  verified")
    with tempfile.TemporaryDirectory() as folder:
        for writers in args.writers:
            for name in ("sqlite", "postgres"):
                rates: list[float] = []
                oks: list[bool] = []
                for signed in (False, True):
                    tag = f"{writers}-{'s' if signed else 'u'}"
                    schema = f"pumpops_bench_{uuid.uuid4().hex[:12]}"
                    url = (
                        f"sqlite:///{Path(folder) / f'bench-{tag}.db'}"
                        if name == "sqlite"
                        else f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
                    )
                    signer = AuditSigner(AuditKey.generate(), Path(folder) / f"anchors-{name}-{tag}.jsonl")
                    try:
                        rate, count, ok = run(url, writers, args.per_writer, signer if signed else None)
                    finally:
                        if name == "postgres":
                            with admin.begin() as conn:
                                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                    rates.append(rate)
                    oks.append(ok)
                print(
                    f"{name:8} {writers:7} {count:7} {rates[0]:10.0f} {rates[1]:9.0f} "
                    f"{rates[1] / rates[0]:6.2f}  {all(oks)}"
                )
    admin.dispose()


if __name__ == "__main__":
    main()
