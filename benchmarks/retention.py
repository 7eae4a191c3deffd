"""Storage over simulated days with a retention horizon; prune by DROP PARTITION against DELETE (issue 18).

Run: ``.venv/bin/python benchmarks/retention.py [--days 12] [--horizon 4] [--devices 40]``.

For each engine (PostgreSQL in a fresh schema of ``$PUMPOPS_BENCH_PG``,
default the local ``test`` database, dropped afterwards; SQLite in a temporary
file) it simulates ``--days`` days: each day every device sends one message per
minute of 4 sensors (``write_batches``, as ingest writes them), then the hub's
prune runs with ``readings_days = --horizon`` at the end of the day. It prints
per day the rows kept and the size of the readings (PostgreSQL: the total
relation size of every partition with its indexes; SQLite: the pages in use,
file pages minus free pages). After the horizon the size is flat.

Then, on PostgreSQL, the cost of removing one day: the prune that drops the
oldest day's partition against the baseline, a ``DELETE`` of the same day from
an unpartitioned copy of the same rows (same primary key) in the same schema,
in the same run; it prints both times and the ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
import tempfile
import time
import uuid

import numpy as np
import sqlalchemy as sa

from pumpops.fleet import Device
from pumpops.schema import ReadingBatch
from pumpops.store import RetentionPolicy, SqlTelemetryStore, open_sql_store

DAY_US = 86_400_000_000
MINUTE_US = 60_000_000
SENSORS = ("motor_speed", "discharge_pressure", "bearing_temperature", "vibration_rms")
PG = os.environ.get("PUMPOPS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _day_batches(day_start: int, devices: list[str], rng: np.random.Generator) -> list[ReadingBatch]:
    """One message per device per hour, 60 rows (one a minute) of the four sensors."""
    batches = []
    for hour in range(24):
        ts = day_start + hour * 3_600_000_000 + np.arange(60, dtype=np.int64) * MINUTE_US
        for device in devices:
            values = rng.normal(100.0, 5.0, size=(60, len(SENSORS)))
            msg_id = f"{device}:{ts[0]}"
            digest = hashlib.sha256(msg_id.encode()).hexdigest()
            batches.append(ReadingBatch(device, msg_id, digest, ts, SENSORS, values, int(ts[-1])))
    return batches


def _size_bytes(store: SqlTelemetryStore) -> int:
    with store._engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            return int(
                conn.exec_driver_sql(
                    "SELECT coalesce(sum(pg_total_relation_size(relid)), 0) "
                    "FROM pg_partition_tree('readings')"
                ).scalar()
                or 0
            )
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar() or 0
        free = conn.exec_driver_sql("PRAGMA freelist_count").scalar() or 0
        size = conn.exec_driver_sql("PRAGMA page_size").scalar() or 0
        return int((pages - free) * size)


def _simulate(store: SqlTelemetryStore, args: argparse.Namespace) -> list[tuple[int, int, float, float]]:
    devices = [f"p-{i}" for i in range(args.devices)]
    store.register_devices([Device(d, "s1", "acme-ansi", "g1") for d in devices])
    rng = np.random.default_rng(7)
    policy = RetentionPolicy(readings_days=args.horizon, partitions_ahead_days=2)
    start = (time.time_ns() // 1000 // DAY_US - args.days) * DAY_US
    store.prune(policy, actor="bench", now=start)  # the first days' partitions
    rows = []
    for day in range(args.days):
        batches = _day_batches(start + day * DAY_US, devices, rng)
        for i in range(0, len(batches), 200):
            store.write_batches(batches[i : i + 200])
        began = time.perf_counter()
        store.prune(policy, actor="bench", now=start + (day + 1) * DAY_US)
        prune_s = time.perf_counter() - began
        kept = store.counts()["readings"]
        rows.append((day + 1, kept, _size_bytes(store) / 2**20, prune_s))
    return rows


def _drop_against_delete(
    store: SqlTelemetryStore, args: argparse.Namespace
) -> tuple[int, float, float, float]:
    """Remove the oldest stored day by the prune (drop) and from a plain copy by DELETE."""
    with store._writer.begin() as conn:
        conn.exec_driver_sql(
            'CREATE TABLE readings_plain (device_id varchar(64) COLLATE "C", sensor varchar(64) COLLATE "C", '
            "ts_us bigint, value double precision, PRIMARY KEY (device_id, sensor, ts_us))"
        )
        conn.exec_driver_sql("INSERT INTO readings_plain SELECT * FROM readings")
        conn.exec_driver_sql("ANALYZE readings_plain")
        oldest = int(conn.exec_driver_sql("SELECT min(ts_us) FROM readings").scalar() or 0)
    cut = oldest // DAY_US * DAY_US + DAY_US
    now = cut + round(args.horizon * DAY_US)
    policy = RetentionPolicy(readings_days=args.horizon, partitions_ahead_days=2)
    began = time.perf_counter()
    report = store.prune(policy, actor="bench", now=now)
    drop_s = time.perf_counter() - began
    removed = next(k.rows for k in report.kinds if k.kind == "readings")
    began = time.perf_counter()
    with store._writer.begin() as conn:
        deleted = conn.execute(
            sa.text("DELETE FROM readings_plain WHERE ts_us < :cut"), {"cut": cut}
        ).rowcount
    delete_s = time.perf_counter() - began
    began = time.perf_counter()
    with store._engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM readings_plain")
    vacuum_s = time.perf_counter() - began
    if deleted != removed:
        raise SystemExit(f"the baseline removed {deleted} rows, the prune {removed}: not the same day")
    return removed, drop_s, delete_s, vacuum_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=12, help="simulated days")
    parser.add_argument("--horizon", type=float, default=4.0, help="readings_days")
    parser.add_argument("--devices", type=int, default=40)
    args = parser.parse_args(argv)
    cores = os.cpu_count()
    print(f"machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}")
    print(
        f"{args.devices} devices x {len(SENSORS)} sensors x 1 reading/min = "
        f"{args.devices * len(SENSORS) * 1440:,} readings/day; readings_days = {args.horizon:g}"
    )
    schema = f"bench_retention_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG, poolclass=sa.NullPool)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for engine, url in (("postgresql", f"{PG}?schema={schema}"), ("sqlite", f"sqlite:///{folder}/b.db")):
            store = open_sql_store(url)
            try:
                store.upgrade()
                results[engine] = _simulate(store, args)
                if engine == "postgresql":
                    comparison = _drop_against_delete(store, args)
            finally:
                store.close()
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    admin.dispose()
    print()
    header = (
        f"{'day':>4} {'PG rows':>12} {'PG MiB':>8} {'PG prune s':>11} "
        f"{'SQLite rows':>12} {'SQLite MiB':>11} {'SQLite prune s':>15}"
    )
    print(header)
    print("-" * len(header))
    for (day, pg_rows, pg_mib, pg_s), (_, sl_rows, sl_mib, sl_s) in zip(
        results["postgresql"], results["sqlite"], strict=True
    ):
        pg_part = f"{pg_rows:>12,} {pg_mib:>8.1f} {pg_s:>11.3f}"
        print(f"{day:>4} {pg_part} {sl_rows:>12,} {sl_mib:>11.1f} {sl_s:>15.3f}")
    removed, drop_s, delete_s, vacuum_s = comparison
    print()
    print(f"removing one day ({removed:,} readings) on PostgreSQL:")
    print(
        f"  pumpops prune (drops the day's partition; counts its rows; every kind): {drop_s * 1000:9.1f} ms"
    )
    print(f"  baseline DELETE from an unpartitioned copy: {delete_s * 1000:9.1f} ms")
    print(f"  ... and the VACUUM that DELETE needs afterwards: {vacuum_s * 1000:9.1f} ms")
    print(f"  ratio DELETE / prune: {delete_s / drop_s:.1f}x")
    print(f"  ratio DELETE + VACUUM / prune: {(delete_s + vacuum_s) / drop_s:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
