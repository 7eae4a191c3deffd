"""Dashboard server time at fleet scale: the fleet page and the alarm console on PostgreSQL (issue 17).

Run: ``.venv/bin/python benchmarks/dashboard.py [--devices 10000] [--alarms 1000000]``.

For each fleet size (the ``--baseline`` of 50 devices, then ``--devices``) it
fills a fresh PostgreSQL schema with ``benchmarks/api.py``'s ``fill_fast`` (devices
in 10 groups and 2 sites, a state message each, ``--alarms`` raised alarms over
30 days written by one ``INSERT ... SELECT generate_series``) and a day of 1 Hz
readings of four sensors for two pumps (``p-00007``, whose page and telemetry
are requested, and ``p-00003``; 345,600 rows each, one ``INSERT ... SELECT``),
builds the hub's real app (``api_context`` + ``mount_api``, which mounts
the dashboard), logs in through ``POST /ui/login`` with a viewer token
and times whole pages, HTML rendered, in process (FastAPI's TestClient: no
network):

- ``fleet cold``: ``GET /ui/`` with the 2 s fleet-view cache emptied first (the
  whole fleet view is computed: the worst case);
- ``fleet warm``: the same with the cache (every further viewer within 2 s);
- ``fleet csv``: ``GET /ui/?format=csv&table=devices`` (every device, warm);
- ``alarms page 1``: ``GET /ui/alarms`` (50 newest across the fleet);
- ``alarms one pump``: ``GET /ui/alarms?device_id=...``;
- ``pump page``: ``GET /ui/pumps/p-00007`` (its 24 h chart of 86,400 readings
  per sensor downsampled to 1,000 points, alarms, summaries, drift);
- ``telemetry 24h``: ``GET /api/devices/p-00007/telemetry?points=2000`` (the
  chart's data route of the API: four series, at most 2,000 points each).

Then the event stream: the same app served by uvicorn on 127.0.0.1, one client
holding ``GET /api/events`` open (httpx, streamed), and ``--sse`` alarms written
one by one with ``put_agent_messages`` (ingest's store write) 0.3-0.7 s apart;
``sse delay`` is from just before the write to the alarm's ``data:`` line read
by the client.

It prints p50 and p95 in milliseconds per page and size, and the ratio of the
large fleet to the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import httpx
import sqlalchemy as sa
import uvicorn

from api import PG, _record, fill_fast, timed  # benchmarks/api.py: the same fleet, the same timer
from pumpops.fleet import Device
from pumpops.hub import api_context, create_app
from pumpops.settings import Settings
from pumpops.store import TelemetryStore, open_store
from pumpops.web import hash_token, mount_api, new_token

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

SENSORS = ("suction_pressure", "discharge_pressure", "flow_rate", "motor_current")


def fill_readings(url: str, device_ids: list[str]) -> float:
    """A day of 1 Hz readings of four sensors for each pump, ending now; return the seconds it took."""
    started = time.perf_counter()
    end_us = time.time_ns() // 1000
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO readings (device_id, sensor, ts_us, value) "
                "SELECT d, s, :start + k::bigint * 1000000, 1e5 + 1e3 * sin(k / 600.0) + 50 * random() "
                "FROM unnest(CAST(:devices AS text[])) AS d, "
                "unnest(CAST(:sensors AS text[])) AS s, generate_series(0, 86399) AS k"
            ),
            {"start": end_us - 86_400_000_000, "devices": device_ids, "sensors": list(SENSORS)},
        )
        conn.exec_driver_sql("ANALYZE readings")
    engine.dispose()
    return time.perf_counter() - started


def sse_delay(
    app: object, store: TelemetryStore, token: str, first_seq: int, count: int
) -> tuple[float, float]:
    """p50 and p95 (ms) from an alarm's store write to its event read by an open SSE client."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    arrived: dict[str, float] = {}
    opened = threading.Event()

    def listen() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        url = f"http://127.0.0.1:{port}/api/events"
        with httpx.stream("GET", url, headers=headers, params={"max_events": count}, timeout=60) as response:
            for line in response.iter_lines():
                if line.startswith("retry:"):
                    opened.set()
                if line.startswith("data:"):
                    arrived[json.loads(line[5:])["msg_id"]] = time.perf_counter()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    if not opened.wait(30):
        raise RuntimeError("the event stream did not open in 30 s")
    device = Device("p-00011", "site-1", "acme-ansi", "g-1")
    written: dict[str, float] = {}
    rng = random.Random(17)
    for k in range(count):
        now_us = time.time_ns() // 1000
        body = {"event": "raised", "alarm_id": f"{device.device_id}:{now_us // 1000}",
                "started_ms": now_us // 1000, "ended_ms": None, "peak_score": 5.0, "threshold": 3.0,
                "model_name": "m", "model_version": 1}  # fmt: skip
        record = _record(device, first_seq + k, "alarm", now_us, body)
        written[record.msg_id] = time.perf_counter()
        store.put_agent_messages([record])
        time.sleep(rng.uniform(0.3, 0.7))
    listener.join(10)
    server.should_exit = True
    thread.join(10)
    missing = sorted(set(written) - set(arrived))
    if missing:
        raise RuntimeError(f"{len(missing)} alarms never reached the client: {missing[:3]}")
    delays = sorted((arrived[m] - written[m]) * 1000 for m in written)
    return statistics.median(delays), delays[min(len(delays) - 1, round(0.95 * (len(delays) - 1)))]


def measure(n_devices: int, n_alarms: int, runs: int, sse: int) -> dict[str, tuple[float, float]]:
    """Fill a fresh schema, log in, time each page; the schema is dropped afterwards."""
    schema = f"pumpops_bench_{uuid.uuid4().hex[:12]}"
    url = f"{PG}?options=-csearch_path%3D{schema}"
    admin = sa.create_engine(PG, poolclass=sa.NullPool)
    try:
        with tempfile.TemporaryDirectory() as tmp, open_store(url) as store:
            store.upgrade()
            fill_s = fill_fast(store, url, n_devices, n_alarms)
            print(f"  {n_devices} devices, {n_alarms} alarms stored in {fill_s:.0f} s", flush=True)
            tele_s = fill_readings(url, ["p-00007", "p-00003"])
            print(f"  a day of 1 Hz readings, 4 sensors, 2 pumps, stored in {tele_s:.0f} s", flush=True)
            token_id, token = new_token()
            store.add_api_token(
                token_id, name="bench", role="viewer", token_sha256=hash_token(token), created_by="b"
            )
            settings = Settings(workspace=Path(tmp), database_url=url, broker_url="embedded", actor="bench")
            with api_context(settings, store) as context:
                app = create_app(Path(tmp) / "repo", api=lambda a: mount_api(a, context))
                with TestClient(app) as client:
                    login = client.post("/ui/login", data={"token": token}, follow_redirects=False)
                    assert login.status_code == 303, login.text

                    def get(path: str, **params: object) -> Callable[[], object]:
                        def call() -> object:
                            response = client.get(path, params=params, follow_redirects=False)
                            assert response.status_code == 200, response.text[:300]
                            return response

                        return call

                    def cold() -> object:
                        context.cache.clear()
                        return get("/ui/")()

                    results = {
                        "fleet cold": timed(cold, max(5, runs // 3)),
                        "fleet warm": timed(get("/ui/"), runs),
                        "fleet csv": timed(get("/ui/", format="csv", table="devices"), max(5, runs // 3)),
                        "alarms page 1": timed(get("/ui/alarms"), runs),
                        "alarms one pump": timed(get("/ui/alarms", device_id="p-00007"), runs),
                        "pump page": timed(get("/ui/pumps/p-00007"), max(5, runs // 3)),
                    }
                    headers = {"Authorization": f"Bearer {token}"}

                    def telemetry() -> object:
                        response = client.get("/api/devices/p-00007/telemetry", params={"points": 2000},
                                              headers=headers)  # fmt: skip
                        assert response.status_code == 200, response.text[:300]
                        series = response.json()["series"]
                        assert len(series) == len(SENSORS), series
                        assert all(len(s["values"]) <= 2000 for s in series), series
                        return response

                    results["telemetry 24h"] = timed(telemetry, max(5, runs // 3))
                results["sse delay"] = sse_delay(app, store, token, n_alarms // n_devices + 2, sse)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()
    return results


def main(argv: list[str] | None = None) -> int:
    """Measure the baseline and the large fleet; print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--alarms", type=int, default=1_000_000)
    parser.add_argument("--baseline", type=int, default=50)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--sse", type=int, default=20, help="alarms timed through the event stream")
    args = parser.parse_args(argv)
    python = platform.python_version()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {python}, PostgreSQL")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    base = measure(args.baseline, args.alarms * args.baseline // args.devices, args.runs, args.sse)
    large = measure(args.devices, args.alarms, args.runs, args.sse)
    print()
    small, big = f"{args.baseline} dev p50", f"{args.devices} dev p50"
    header = f"{'page':<16} {small:>12} {'p95':>8} {big:>14} {'p95':>8} {'p95 ratio':>10}"
    print(header)
    print("-" * len(header))
    for name in base:
        b50, b95 = base[name]
        l50, l95 = large[name]
        print(f"{name:<16} {b50:>12.1f} {b95:>8.1f} {l50:>14.1f} {l95:>8.1f} {l95 / b95:>10.1f}")
    print("(milliseconds; pages HTML rendered, in process; sse delay over uvicorn on 127.0.0.1;")
    print(
        " the baseline's alarms scale with its devices;"
        " targets: pages and telemetry <= 300 ms, sse <= 2000 ms)"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
