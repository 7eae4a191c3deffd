"""The hub under 1,000 agents: ingest of state, summaries and drift reports, and fleet monitoring (issue 7).

Run: ``.venv/bin/python benchmarks/hub_load.py`` (or ``make bench``); about 5 minutes.

A load generator stands in for the agents (no agent processes, no broker):
``--devices`` registered devices in three groups, each sending per simulated
10 minutes one summary, one drift report and one state message, for
``--rounds`` rounds (36: 6 hours; 108,000 messages at 1,000 devices). The
messages are the real envelope (``AgentMessage``, ``encode_agent_message``,
``with_msg_id``: ``<device_id>:<seq>`` as the agent's outbox numbers them) on
``<prefix>/<site>/<device>/summaries|drift|state``, with the bodies of
``docs/protocol.md`` ("Agent messages"). From round 18 on, 40 % of one
group's devices report drift, so monitoring opens one fleet drift alert.

Each round's messages go through the real ingest path,
``IngestService.process`` (decode, check, ``put_agent_messages``, dead
letters), in batches of ``ingest.batch_max_messages`` (500), into a fresh
SQLite database in a temporary workspace and into PostgreSQL (own schema,
dropped afterwards; ``$PUMPOPS_BENCH_PG``). After each round, one monitoring
step ``MonitoringService.evaluate`` at the round's simulated end (its window
is 6 hours of agent time, so by the last round it reads every message).

Each configuration runs in a fresh process of its own, so that its peak
memory (VmHWM from ``/proc/self/status``) and CPU seconds (``utime + stime``
of ``getrusage``, ingest and monitoring only; message encoding excluded) are
its own. The same run measures a baseline of ``--baseline`` devices (same
rounds, same message mix) and reports the ratio. With PostgreSQL the
database server's CPU and memory are not in the hub's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pumpops.fleet import Device
from pumpops.monitoring import MonitoringService
from pumpops.registry import EventSink
from pumpops.schema import TOPIC_OF_KIND, AgentMessage, encode_agent_message, with_msg_id
from pumpops.settings import Settings
from pumpops.store import open_store
from pumpops.telemetry import BrokerAddress, IngestService, build_topic

PG_URL = os.environ.get("PUMPOPS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
GROUPS = ("group-a", "group-b", "group-c")
PROFILES = ("acme-ansi", "nordhav-multistage", "sakura-esp")
SENSORS = ("SUCT_PRESS", "DISCH_PRESS", "FLOW", "SPEED", "MTR_CURRENT", "MTR_VOLT", "MTR_TEMP", "BRG_TEMP")
ROUND_MS = 600_000  # one round: 10 simulated minutes
DRIFT_FROM_ROUND = 18  # from here on, a share of group-a reports drift
DRIFT_SHARE = 0.4
AGENT_VERSION = "0.1.0"


# ----------------------------------------------------------------------------- the load generator


def fleet(n: int) -> tuple[Device, ...]:
    """``n`` devices over 3 groups (each group one make), 20 devices a site."""
    return tuple(
        Device(f"p-{i:05d}", f"site-{i // 20:03d}", PROFILES[i % 3], GROUPS[i % 3]) for i in range(n)
    )


def _bodies(device: Device, idx: int, rnd: int, t_ms: int, rng: np.random.Generator) -> dict[str, dict]:
    """A summary, a drift report and a state body as the agent sends them (docs/protocol.md)."""
    drifting = device.group == GROUPS[0] and rnd >= DRIFT_FROM_ROUND and (idx // 3) % 5 < 5 * DRIFT_SHARE
    model = {"model_name": f"{device.group}-model", "model_version": 3}
    scores = np.sort(rng.gamma(2.0, 0.2 if not drifting else 0.6, 5))
    rows = 600
    psi = {
        s: round(float(v), 4)
        for s, v in zip(SENSORS, rng.uniform(0, 0.4 if drifting else 0.1, 8), strict=True)
    }
    drifted = [s for s, v in psi.items() if v > 0.25]
    summary = {
        "period_start_ms": t_ms - ROUND_MS,
        "period_end_ms": t_ms,
        "rows": rows,
        "windows_scored": rows - 9,
        "score": {
            "min": round(float(scores[0]), 4),
            "p50": round(float(scores[2]), 4),
            "p95": round(float(scores[3]), 4),
            "max": round(float(scores[4]), 4),
            "mean": round(float(scores.mean()), 4),
        },
        "alarms_raised": int(drifting and rng.random() < 0.2),
        "alarm_rows": 0,
        **model,
    }
    ratio = round(float(scores[2]) / 0.5, 4)
    drift = {
        "rows": rows * (rnd + 1),
        "scores": (rows - 9) * (rnd + 1),
        "window_counts": dict.fromkeys(SENSORS, 3600),
        "psi": psi,
        "psi_alert": 0.25,
        "drifted": drifted,
        "change": {"fired": drifting, "detections": int(drifting), "statistic": round(float(scores[4]), 4)},
        "alert": drifting,
        "reason": "change" if drifting else "schedule",
        "psi_alert_sensors": drifted,
        "median_score_over_threshold": ratio,
        **model,
    }
    state = {
        "status": "detecting",
        "agent_version": AGENT_VERSION,
        **model,
        "slot": "a",
        "manifest_sha256": "0" * 64,
        "execution_provider": "CPUExecutionProvider",
        "health": "ok",
        "health_reasons": [],
        "calibration": "done",
        "threshold": 0.5,
        "last_update_check_ms": t_ms - 60_000,
        "last_update_ok_ms": t_ms - 60_000,
        "last_update_error": None,
        "desired_version": 3,
        "stale": False,
        "outbox_depth": 0,
        "outbox_bytes": 0,
        "outbox_dropped": {},
        "drift_status": {
            "status": "drift" if drifting else "ok",
            "median_score_over_threshold": ratio,
            "drifted": drifted,
            "change_fired": drifting,
            "rows": rows * (rnd + 1),
        },
        "alarm_active": False,
        "counts": {"rows": rows * (rnd + 1), "alarms": 0},
    }
    return {"summary": summary, "drift": drift, "state": state}


def round_messages(
    devices: Sequence[Device], rnd: int, t_ms: int, prefix: str, rng: np.random.Generator
) -> list[tuple[str, bytes]]:
    """One round's ``(topic, payload)`` pairs: per device a summary, a drift report, a state."""
    out = []
    for idx, device in enumerate(devices):
        for k, (kind, body) in enumerate(_bodies(device, idx, rnd, t_ms, rng).items()):
            seq = 3 * rnd + k  # the outbox's sequence: never reused
            message = AgentMessage(
                device_id=device.device_id,
                site=device.site,
                kind=kind,
                ts_ms=t_ms + k,
                agent_version=AGENT_VERSION,
                body=body,
            )
            payload = with_msg_id(encode_agent_message(message), f"{device.device_id}:{seq}")
            topic = build_topic(device.site, device.device_id, TOPIC_OF_KIND[kind], prefix=prefix)
            out.append((topic, payload))
    return out


# ----------------------------------------------------------------------------- one configuration


def _proc_status() -> dict[str, float]:
    kb = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            kb[key] = int(value.split()[0]) / 1024
    return kb


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _db_size(url: str) -> int:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    import sqlalchemy as sa

    schema = url.rsplit("schema=", 1)[1]
    engine = sa.create_engine(PG_URL)
    with engine.connect() as conn:
        size = conn.execute(
            sa.text(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s AND c.relkind = 'r'"
            ),
            {"s": schema},
        ).scalar_one()
    engine.dispose()
    return int(size)


def run_one(engine: str, n_devices: int, rounds: int, seed: int) -> dict[str, Any]:
    """Ingest and monitor ``rounds`` rounds of ``n_devices`` agents; the figures of this process."""
    tmp = Path(tempfile.mkdtemp(prefix="pumpops-hubload-"))
    url = "" if engine == "sqlite" else f"{PG_URL}?schema=hubload_{uuid.uuid4().hex[:10]}"
    settings = Settings(workspace=tmp, database_url=url)
    url = settings.resolved_database_url
    prefix = settings.topic_prefix
    devices = fleet(n_devices)
    rng = np.random.default_rng(seed)
    t0_ms = (int(time.time() * 1000) // ROUND_MS - rounds) * ROUND_MS
    batch = settings.ingest.batch_max_messages
    commit_s: list[float] = []
    eval_s: list[float] = []
    ingest_wall = ingest_cpu = eval_cpu = 0.0
    opened: list[str] = []
    try:
        with open_store(url) as store:
            store.upgrade()
            store.register_devices(devices)
            service = IngestService(  # no broker: process() is the path messages from MQTT take
                store, BrokerAddress("127.0.0.1", 1), settings=settings.ingest, topic_prefix=prefix
            )
            monitor = MonitoringService(store, EventSink(store, None), settings.monitoring)
            rss_start = _proc_status()["VmRSS"]
            for rnd in range(rounds):
                t_ms = t0_ms + (rnd + 1) * ROUND_MS
                messages = round_messages(devices, rnd, t_ms - ROUND_MS // 2, prefix, rng)
                c0, w0 = _cpu_s(), time.perf_counter()
                for start in range(0, len(messages), batch):
                    b0 = time.perf_counter()
                    service.process(messages[start : start + batch])
                    commit_s.append(time.perf_counter() - b0)
                ingest_wall += time.perf_counter() - w0
                c1 = _cpu_s()
                ingest_cpu += c1 - c0
                e0 = time.perf_counter()
                evaluation = monitor.evaluate(t_ms * 1000)
                eval_s.append(time.perf_counter() - e0)
                eval_cpu += _cpu_s() - c1
                opened += [c.alert_id for c in evaluation.changes if c.action == "opened"]
            stats = service.stats()
            counts = store.counts()
            last_view = evaluation.view
        size = _db_size(url)
    finally:
        if engine != "sqlite":
            _drop_pg_schema(url)
        shutil.rmtree(tmp, ignore_errors=True)
    mem = _proc_status()
    return {
        "engine": engine,
        "devices": n_devices,
        "rounds": rounds,
        "messages": stats.received,
        "stored": stats.agent_messages,
        "duplicates": stats.duplicates,
        "dead_letters": counts["dead_letters"],
        "msg_s": stats.received / ingest_wall,
        "ingest_wall_s": ingest_wall,
        "commit_p50_ms": float(np.percentile(commit_s, 50)) * 1000,
        "commit_p99_ms": float(np.percentile(commit_s, 99)) * 1000,
        "batches": len(commit_s),
        "eval_p50_ms": float(np.percentile(eval_s, 50)) * 1000,
        "eval_max_ms": float(np.max(eval_s)) * 1000,
        "eval_last_ms": eval_s[-1] * 1000,
        "ingest_cpu_s": ingest_cpu,
        "eval_cpu_s": eval_cpu,
        "rss_start_mib": rss_start,
        "rss_end_mib": mem["VmRSS"],
        "hwm_mib": mem["VmHWM"],
        "db_bytes": size,
        "alerts_opened": opened,
        "groups_drifting": sorted(g.group for g in last_view.groups if g.drift.drifting),
    }


def _drop_pg_schema(url: str) -> None:
    import sqlalchemy as sa

    schema = url.rsplit("schema=", 1)[1]
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def _pg_available() -> bool:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception:
        return False
    return True


# ----------------------------------------------------------------------------- the report


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _spawn(engine: str, devices: int, rounds: int, seed: int) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter; its JSON result."""
    out = subprocess.run(
        [sys.executable, __file__, "--worker", engine, str(devices), str(rounds), str(seed)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--baseline", type=int, default=100, help="devices in the baseline run")
    parser.add_argument("--rounds", type=int, default=36, help="rounds of 10 simulated minutes")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--worker", nargs=4, metavar=("ENGINE", "DEVICES", "ROUNDS", "SEED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        engine, devices, rounds, seed = args.worker
        print(json.dumps(run_one(engine, int(devices), int(rounds), int(seed))))
        return 0

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    print(
        f"# hub load — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs "
        f"({_cpu_model()}), Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"# {args.rounds} rounds of 10 simulated minutes ({args.rounds / 6:g} h); per device and round "
        "1 summary + 1 drift report + 1 state; IngestService.process in batches of 500; "
        "one MonitoringService.evaluate per round"
    )
    results: list[dict[str, Any]] = []
    for engine in engines:
        if engine == "postgresql" and not _pg_available():
            print(f"# PostgreSQL not reachable at {PG_URL}: skipped")
            continue
        for n in (args.baseline, args.devices):
            t = time.perf_counter()
            results.append(_spawn(engine, n, args.rounds, args.seed))
            print(f"# {engine}, {n} devices: {time.perf_counter() - t:.0f} s", flush=True)
    print()
    header = (
        "store",
        "devices",
        "messages",
        "messages/s ingested",
        "commit p50 ms",
        "commit p99 ms",
        "evaluate p50 ms",
        "evaluate max ms",
        "VmHWM MiB",
        "CPU s ingest + monitor",
        "DB size MiB",
    )
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    for r in results:
        print(
            f"| {r['engine']} | {r['devices']:,} | {r['messages']:,} | {r['msg_s']:,.0f} | "
            f"{r['commit_p50_ms']:.0f} | {r['commit_p99_ms']:.0f} | {r['eval_p50_ms']:.0f} | "
            f"{r['eval_max_ms']:.0f} | {r['hwm_mib']:.0f} | "
            f"{r['ingest_cpu_s']:.1f} + {r['eval_cpu_s']:.1f} | "
            f"{r['db_bytes'] / 2**20:.1f} |"
        )
    print()
    print(f"Ratio {args.devices:,} / {args.baseline:,} devices (10× the load):")
    print()
    print(
        "| store | messages/s | commit p50 | commit p99 | evaluate p50 | evaluate max "
        "| VmHWM | CPU s | DB size |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for engine in engines:
        pair = [r for r in results if r["engine"] == engine]
        if len(pair) != 2:
            continue
        base, big = pair

        def ratio(key: str, b: dict[str, Any] = big, a: dict[str, Any] = base) -> str:
            return f"{b[key] / a[key]:.2f}"

        cpu = (big["ingest_cpu_s"] + big["eval_cpu_s"]) / (base["ingest_cpu_s"] + base["eval_cpu_s"])
        print(
            f"| {engine} | {ratio('msg_s')} | {ratio('commit_p50_ms')} | {ratio('commit_p99_ms')} | "
            f"{ratio('eval_p50_ms')} | {ratio('eval_max_ms')} | {ratio('hwm_mib')} | {cpu:.2f} | "
            f"{ratio('db_bytes')} |"
        )
    print()
    for r in results:
        print(
            f"# {r['engine']}, {r['devices']} devices: stored {r['stored']:,}, duplicates {r['duplicates']}, "
            f"dead letters {r['dead_letters']}, {r['batches']} batches, "
            f"ingest {r['ingest_wall_s']:.1f} s wall, evaluate at the last round {r['eval_last_ms']:.0f} ms, "
            f"VmRSS {r['rss_start_mib']:.0f} MiB after setup → {r['rss_end_mib']:.0f} MiB at the end, "
            f"alerts opened {r['alerts_opened']}, "
            f"drifting at the end {r['groups_drifting']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
