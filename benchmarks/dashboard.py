"""Dashboard server time at fleet scale: the fleet page and the alarm console on PostgreSQL (issue 17).

Run: ``.venv/bin/python benchmarks/dashboard.py [--devices 10000] [--alarms 200000]``.

For each fleet size (the ``--baseline`` of 50 devices, then ``--devices``) it
fills a fresh PostgreSQL schema with ``benchmarks/api.py``'s ``fill`` (devices
in 10 groups and 2 sites, a state message each, ``--alarms`` alarm messages over
30 days), builds the hub's real app (``api_context`` + ``mount_api``, which
mounts the dashboard), logs in through ``POST /ui/login`` with a viewer token
and times whole pages, HTML rendered, in process (FastAPI's TestClient: no
network):

- ``fleet cold``: ``GET /ui/`` with the 2 s fleet-view cache emptied first (the
  whole fleet view is computed: the worst case);
- ``fleet warm``: the same with the cache (every further viewer within 2 s);
- ``fleet csv``: ``GET /ui/?format=csv&table=devices`` (every device, warm);
- ``alarms page 1``: ``GET /ui/alarms`` (50 newest across the fleet);
- ``alarms one pump``: ``GET /ui/alarms?device_id=...``.

It prints p50 and p95 in milliseconds per page and size, and the ratio of the
large fleet to the baseline.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from api import PG, fill, timed  # benchmarks/api.py: the same fleet, the same timer
from pumpops.hub import api_context, create_app
from pumpops.settings import Settings
from pumpops.store import open_store
from pumpops.web import hash_token, mount_api, new_token

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient


def measure(n_devices: int, n_alarms: int, runs: int) -> dict[str, tuple[float, float]]:
    """Fill a fresh schema, log in, time each page; the schema is dropped afterwards."""
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
                    }
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()
    return results


def main(argv: list[str] | None = None) -> int:
    """Measure the baseline and the large fleet; print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--alarms", type=int, default=200_000)
    parser.add_argument("--baseline", type=int, default=50)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)
    python = platform.python_version()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {python}, PostgreSQL")
    base = measure(args.baseline, args.alarms * args.baseline // args.devices, args.runs)
    large = measure(args.devices, args.alarms, args.runs)
    print()
    small, big = f"{args.baseline} dev p50", f"{args.devices} dev p50"
    header = f"{'page':<16} {small:>12} {'p95':>8} {big:>14} {'p95':>8} {'p95 ratio':>10}"
    print(header)
    print("-" * len(header))
    for name in base:
        b50, b95 = base[name]
        l50, l95 = large[name]
        print(f"{name:<16} {b50:>12.1f} {b95:>8.1f} {l50:>14.1f} {l95:>8.1f} {l95 / b95:>10.1f}")
    print("(milliseconds per page, HTML rendered, in process; the baseline's alarms scale with its devices)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
