"""Reading a pump's readings back for training: ``store.query`` against SQLAlchemy rows (issue 18).

Run: ``.venv/bin/python benchmarks/store_read.py [--devices 4] [--hours 8] [--repeat 3]``.

A training run's load step is ``store.query`` per pump (one query per sensor,
then a pivot into one ``(rows, sensors)`` array). For each engine (SQLite in a
temporary file, PostgreSQL in a fresh schema of ``$PUMPOPS_BENCH_PG``) the
script writes ``--devices`` simulated pumps x ``--hours`` at 1 Hz as ingest
writes them, then times, best of ``--repeat``, in the same run:

- ``store.query``: as shipped (SQLite: the driver's rows read straight into a
  NumPy array, since c723629; PostgreSQL: a binary ``COPY ... TO STDOUT``, as before);
- baseline: the same statements read through SQLAlchemy ``Row`` objects, as
  ``store.query`` did before (the same pivot after).

Both must return the same arrays (checked). It prints readings per second and
the ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from pumpops.schema import ReadingBatch
from pumpops.sim import FleetSimulator, Scenario, build_fleet, to_epoch_ms
from pumpops.store import SqlTelemetryStore, _plan, open_sql_store
from pumpops.store import _tables as tables
from pumpops.store._core import build_select

PG = os.environ.get("PUMPOPS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
START = "2025-06-01T00:00:00Z"


def fill(store: SqlTelemetryStore, devices: int, hours: float, seed: int) -> list[str]:
    """Simulate ``devices`` pumps into the store, one message per hour each; return their ids."""
    fleet = build_fleet(devices, seed=seed, profiles=["acme-ansi"])
    scenario = Scenario(devices=fleet, start_ms=to_epoch_ms(START), duration_s=hours * 3600, seed=seed)
    simulator = FleetSimulator(scenario)
    store.register_devices(fleet)
    for device in fleet:
        trace = simulator.device(device.device_id).trace()
        values = np.column_stack([trace.si(s) for s in trace.sensors])
        ts_us = trace.ts_ms.astype(np.int64) * 1000
        batches = [
            ReadingBatch(
                device.device_id,
                f"m-{i}",
                hashlib.sha256(f"{device.device_id}-{i}".encode()).hexdigest(),
                ts_us[i : i + 3600],
                trace.sensors,
                values[i : i + 3600],
                0,
            )
            for i in range(0, ts_us.size, 3600)
        ]
        store.write_batches(batches)
    return [d.device_id for d in fleet]


def query_by_rows(engine: sa.Engine, device_id: str, sensors: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The baseline: each sensor's rows through SQLAlchemy ``Row`` objects, then the same pivot."""
    t = tables.readings.c
    series = []
    with engine.connect() as conn:
        for sensor in sensors:
            stmt = build_select(
                [t.ts_us, t.value], where=[t.device_id == device_id, t.sensor == sensor], order_by=[t.ts_us]
            )
            rows = conn.execute(stmt).all()
            ts = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
            values = np.fromiter((row[1] for row in rows), dtype=np.float64, count=len(rows))
            series.append((ts, values))
    return _plan.pivot(series)


def _best(repeat: int, run: object) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best


def measure(url: str, args: argparse.Namespace) -> dict[str, float]:
    store = open_sql_store(url)
    try:
        store.upgrade()
        ids = fill(store, args.devices, args.hours, args.seed)
        frames = {d: store.query(d) for d in ids}
        readings = sum(int(np.isfinite(f.values).sum()) for f in frames.values())
        for d, frame in frames.items():  # same answer both ways
            ts, values = query_by_rows(store._engine, d, frame.sensors)
            if not (np.array_equal(ts, frame.ts_us) and np.array_equal(values, frame.values, equal_nan=True)):
                raise SystemExit(f"{d}: store.query and the baseline differ")
        shipped = _best(args.repeat, lambda: [store.query(d) for d in ids])
        engine = store._engine
        baseline = _best(args.repeat, lambda: [query_by_rows(engine, d, frames[d].sensors) for d in ids])
    finally:
        store.close()
    return {"readings": readings, "shipped_s": shipped, "baseline_s": baseline}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    loadavg = Path("/proc/loadavg")
    load = " ".join(loadavg.read_text().split()[:3]) if loadavg.exists() else "n/a"
    print(
        f"# store.query, {args.devices} pumps x {args.hours:g} h at 1 Hz; {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; load average {load}"
    )
    schema = f"bench_read_{uuid.uuid4().hex[:10]}"
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for engine, url in (("sqlite", f"sqlite:///{folder}/r.db"), ("postgresql", f"{PG}?schema={schema}")):
            rows.append((engine, measure(url, args)))
    admin = sa.create_engine(PG, poolclass=sa.NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    admin.dispose()
    print(
        "| engine | readings | store.query s | readings/s | baseline (Row objects) s | readings/s | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for engine, m in rows:
        n = m["readings"]
        print(
            f"| {engine} | {n:,.0f} | {m['shipped_s']:.3f} | {n / m['shipped_s']:,.0f} | "
            f"{m['baseline_s']:.3f} | {n / m['baseline_s']:,.0f} | "
            f"**{m['baseline_s'] / m['shipped_s']:.2f}x** |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
