"""HTTP API server time at fleet scale: the device list and the alarm console on PostgreSQL (issue 17).

Run: ``.venv/bin/python benchmarks/api.py [--devices 10000] [--alarms 200000]``.

For each fleet size (the ``--baseline`` of 50 devices, then ``--devices``) it
fills a fresh PostgreSQL schema (``$PUMPOPS_BENCH_PG``, default the local
``test`` database; the schema is dropped afterwards): the devices in 10 groups
and 2 sites, one ``state`` message per device inside the monitoring window, and
``--alarms`` alarm messages (raised, spread over 30 days, across all devices)
written with ``put_agent_messages`` as ingest writes them. Then it builds the
hub's real app (``api_context`` + ``mount_api``) and times requests in process
(FastAPI's TestClient: no network, so the figure is the server's time plus a
small client overhead):

- ``devices cold``: ``GET /api/devices?limit=50`` with the 2 s fleet-view cache
  emptied first (the whole fleet view is computed: the worst case);
- ``devices warm``: the same with the cache (what every further viewer within
  2 s pays);
- ``alarms page 1``: ``GET /api/alarms?limit=50`` (newest first across the fleet);
- ``alarms one pump``: ``GET /api/alarms?device_id=...&limit=50``;
- ``alarms offset 10k``: ``GET /api/alarms?limit=50&offset=10000``;
- ``alarms after 10k``: the same page by its cursor, ``GET /api/alarms?limit=50&after=<next>``.

It prints p50 and p95 in milliseconds per request kind and size, and the ratio
of the large fleet to the baseline.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from pumpops.fleet import Device
from pumpops.hub import api_context, create_app
from pumpops.settings import Settings
from pumpops.store import AgentRecord, TelemetryStore, open_store
from pumpops.web import hash_token, mount_api, new_token

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

PG = os.environ.get("PUMPOPS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DAY_US = 86_400_000_000


def _record(device: Device, seq: int, kind: str, ts_us: int, body: dict[str, object]) -> AgentRecord:
    text = json.dumps(body, sort_keys=True)
    return AgentRecord(
        msg_id=f"{device.device_id}:{seq}",
        device_id=device.device_id,
        site=device.site,
        kind=kind,
        ts_us=ts_us,
        agent_version="0.1.0",
        body_json=text,
        payload_sha256=hashlib.sha256(f"{device.device_id}:{seq}:{text}".encode()).hexdigest(),
        received_at_us=ts_us + 1000,
    )


def fill(store: TelemetryStore, n_devices: int, n_alarms: int) -> float:
    """Register the fleet and store its messages; return the seconds it took."""
    started = time.perf_counter()
    devices = [Device(f"p-{i:05d}", f"site-{i % 2}", "acme-ansi", f"g-{i % 10}") for i in range(n_devices)]
    store.register_devices(devices)
    now_us = time.time_ns() // 1000
    seq = dict.fromkeys((d.device_id for d in devices), 0)
    batch: list[AgentRecord] = []

    def flush() -> None:
        if batch:
            store.put_agent_messages(batch)
            batch.clear()

    for i in range(n_alarms):
        device = devices[i % n_devices]
        seq[device.device_id] += 1
        ts_us = now_us - 30 * DAY_US + (i * 30 * DAY_US) // max(n_alarms, 1)
        started_ms = ts_us // 1000
        body = {"event": "raised", "alarm_id": f"{device.device_id}:{started_ms}",
                "started_ms": started_ms, "ended_ms": None, "peak_score": 5.0, "threshold": 3.0,
                "model_name": "m", "model_version": 1}  # fmt: skip
        batch.append(_record(device, seq[device.device_id], "alarm", ts_us, body))
        if len(batch) >= 5000:
            flush()
    for device in devices:
        seq[device.device_id] += 1
        body = {"status": "detecting", "model_name": "m", "model_version": 1, "slot": "a", "health": "ok",
                "health_reasons": [], "last_update_error": None, "desired_version": None, "stale": False,
                "counts": {}, "outbox_depth": 0}  # fmt: skip
        batch.append(_record(device, seq[device.device_id], "state", now_us - 60_000_000, body))
        if len(batch) >= 5000:
            flush()
    flush()
    return time.perf_counter() - started


def fill_fast(store: TelemetryStore, url: str, n_devices: int, n_alarms: int) -> float:
    """``fill``'s fleet with the alarms written by one ``INSERT ... SELECT generate_series`` (PostgreSQL).

    The same rows as ``fill`` (ids ``<device>:<seq>``, raised alarms over 30 days,
    then one ``state`` message per device through ``put_agent_messages``), in
    seconds instead of minutes at 1,000,000 alarms. Returns the seconds it took.
    """
    started = time.perf_counter()
    devices = [Device(f"p-{i:05d}", f"site-{i % 2}", "acme-ansi", f"g-{i % 10}") for i in range(n_devices)]
    store.register_devices(devices)
    now_us = time.time_ns() // 1000
    span = 30 * DAY_US
    sql = """
        INSERT INTO agent_messages (msg_id, device_id, seq, site, kind, ts_us, received_at_us,
                                    agent_version, body, payload_sha256)
        SELECT d || ':' || s, d, s, 'site-' || (g % :n % 2), 'alarm', t, t + 1000, '0.1.0',
               format('{"alarm_id": "%s:%s", "ended_ms": null, "event": "raised", "model_name": "m", '
                      '"model_version": 1, "peak_score": 5.0, "started_ms": %s, "threshold": 3.0}',
                      d, t / 1000, t / 1000),
               md5(d || s) || md5(s || d)
        FROM (SELECT g, 'p-' || lpad((g % :n)::text, 5, '0') AS d, g / :n + 1 AS s,
                     :start + (g * :span) / greatest(:alarms, 1) AS t
              FROM generate_series(CAST(0 AS bigint), :alarms - 1) AS g) AS x
    """
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(sql), {"n": n_devices, "alarms": n_alarms, "start": now_us - span, "span": span})
    records = []
    for i, device in enumerate(devices):
        seq = n_alarms // n_devices + (1 if i < n_alarms % n_devices else 0) + 1
        body = {"status": "detecting", "model_name": "m", "model_version": 1, "slot": "a", "health": "ok",
                "health_reasons": [], "last_update_error": None, "desired_version": None, "stale": False,
                "counts": {}, "outbox_depth": 0}  # fmt: skip
        records.append(_record(device, seq, "state", now_us - 60_000_000, body))
    for start in range(0, len(records), 5000):
        store.put_agent_messages(records[start : start + 5000])
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE agent_messages")
    engine.dispose()
    return time.perf_counter() - started


def timed(call: Callable[[], object], runs: int) -> tuple[float, float]:
    """p50 and p95 of ``runs`` calls, in milliseconds."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]


def measure(n_devices: int, n_alarms: int, runs: int) -> dict[str, tuple[float, float]]:
    schema = f"pumpops_bench_{uuid.uuid4().hex[:12]}"
    url = f"{PG}?options=-csearch_path%3D{schema}"
    admin = sa.create_engine(PG, poolclass=sa.NullPool)
    try:
        with tempfile.TemporaryDirectory() as tmp, open_store(url) as store:
            store.upgrade()
            fill_s = fill(store, n_devices, n_alarms)
            print(f"  {n_devices} devices, {n_alarms} alarms stored in {fill_s:.0f} s", flush=True)
            token_id, token = new_token()
            store.add_api_token(
                token_id, name="bench", role="viewer", token_sha256=hash_token(token), created_by="b"
            )
            settings = Settings(workspace=Path(tmp), database_url=url, broker_url="embedded", actor="bench")
            with api_context(settings, store) as context:
                app = create_app(Path(tmp) / "repo", api=lambda a: mount_api(a, context))
                headers = {"Authorization": f"Bearer {token}"}
                with TestClient(app) as client:

                    def get(path: str, **params: object) -> Callable[[], object]:
                        def call() -> object:
                            response = client.get(path, headers=headers, params=params)
                            assert response.status_code == 200, response.text
                            return response

                        return call

                    def cold() -> object:
                        context.cache.clear()
                        return get("/api/devices", limit=50)()

                    (row,) = store.alarm_messages(limit=1, offset=9_999) or store.alarm_messages(limit=1)
                    deep_next = f"{int(row.ts_us)}:{row.msg_id}"
                    results = {
                        "devices cold": timed(cold, max(5, runs // 3)),
                        "devices warm": timed(get("/api/devices", limit=50), runs),
                        "alarms page 1": timed(get("/api/alarms", limit=50), runs),
                        "alarms one pump": timed(get("/api/alarms", device_id="p-00007", limit=50), runs),
                        "alarms offset 10k": timed(get("/api/alarms", limit=50, offset=10_000), runs),
                        "alarms after 10k": timed(get("/api/alarms", limit=50, after=deep_next), runs),
                    }
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--alarms", type=int, default=200_000)
    parser.add_argument("--baseline", type=int, default=50)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)
    cores = os.cpu_count()
    print(f"machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}, PostgreSQL")
    base = measure(args.baseline, args.alarms * args.baseline // args.devices, args.runs)
    large = measure(args.devices, args.alarms, args.runs)
    print()
    small, big = f"{args.baseline} dev p50", f"{args.devices} dev p50"
    header = f"{'request':<18} {small:>12} {'p95':>8} {big:>14} {'p95':>8} {'p95 ratio':>10}"
    print(header)
    print("-" * len(header))
    for name in base:
        b50, b95 = base[name]
        l50, l95 = large[name]
        print(f"{name:<18} {b50:>12.1f} {b95:>8.1f} {l50:>14.1f} {l95:>8.1f} {l95 / b95:>10.1f}")
    print("(milliseconds per request, in process; the baseline's alarms scale with its devices)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
