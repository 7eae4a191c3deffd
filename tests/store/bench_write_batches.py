"""Throughput of ``TelemetryStore.write_batches`` alone (no broker, no decoding), on one engine.

Run: ``.venv/bin/python tests/store/bench_write_batches.py sqlite|postgres [--calls N] [--batches B]``
(PostgreSQL: ``$PUMPOPS_TEST_POSTGRES_URL``, default the test server; a scratch
schema is created and dropped). Not a test: numbers are reported, never asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from pumpops.fleet import Device
from pumpops.schema import ReadingBatch
from pumpops.store import open_store

SENSORS = (
    "suction_pressure", "discharge_pressure", "flow_rate", "motor_speed",
    "motor_current", "motor_temperature", "bearing_temperature", "vibration_velocity",
)  # fmt: skip
POSTGRES_URL = os.environ.get(
    "PUMPOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def make_calls(
    n_calls: int, n_batches: int, rows: int, n_devices: int, seed: int
) -> list[list[ReadingBatch]]:
    """Batches of ``rows`` time steps × 8 sensors (80 readings for rows=10), devices in turn."""
    rng = np.random.default_rng(seed)
    calls = []
    clock = dict.fromkeys(range(n_devices), 1_700_000_000_000_000)
    for msg in range(n_calls):
        batches = []
        for b in range(n_batches):
            device = (msg + b) % n_devices
            ts = clock[device] + np.arange(rows, dtype=np.int64) * 1_000_000
            clock[device] = int(ts[-1]) + 1_000_000
            values = rng.normal(100.0, 5.0, size=(rows, len(SENSORS)))
            digest = hashlib.sha256(f"{msg}-{b}".encode()).hexdigest()
            batches.append(ReadingBatch(f"p-{device:04d}", f"m-{msg}-{b}", digest, ts, SENSORS, values, 0))
        calls.append(batches)
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("engine", choices=["sqlite", "postgres"])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--rows", type=int, default=10, help="time steps per batch (8 sensors each)")
    parser.add_argument("--devices", type=int, default=100)
    args = parser.parse_args()
    calls = make_calls(args.calls, args.batches, args.rows, args.devices, seed=1)
    redelivered = calls[: max(1, len(calls) // 5)]
    with tempfile.TemporaryDirectory() as tmp:
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        url = (
            f"sqlite:///{Path(tmp) / 'bench.db'}"
            if args.engine == "sqlite"
            else f"{POSTGRES_URL}?schema={schema}"
        )
        try:
            with open_store(url) as store:
                store.upgrade()
                store.register_devices(
                    Device(f"p-{d:04d}", "site-a", "acme-ansi", "g") for d in range(args.devices)
                )
                readings = sum(b.n_readings for call in calls for b in call)
                start = time.perf_counter()
                for call in calls:
                    store.write_batches(call)
                elapsed = time.perf_counter() - start
                start = time.perf_counter()
                for call in redelivered:
                    outcomes = store.write_batches(call)
                    assert all(o.status == "duplicate" for o in outcomes)
                dup_elapsed = time.perf_counter() - start
                assert store.counts()["readings"] == readings
            per_batch = args.rows * len(SENSORS)
            print(
                f"{args.engine}: {args.calls} calls x {args.batches} batches x {per_batch} readings "
                f"= {readings:,} readings in {elapsed:.2f} s: {readings / elapsed:,.0f} readings/s, "
                f"{args.calls * args.batches / elapsed:,.0f} batches/s, "
                f"{elapsed / args.calls * 1000:.1f} ms per call; "
                f"a redelivered call (all duplicates): {dup_elapsed / len(redelivered) * 1000:.1f} ms"
            )
        finally:
            if args.engine == "postgres":
                engine = sa.create_engine(POSTGRES_URL)
                with engine.begin() as conn:
                    conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                engine.dispose()


if __name__ == "__main__":
    main()
