"""The hub under 10,000 agents through a real broker: ingest, incremental monitoring, retention (issue 18).

Run: ``.venv/bin/python benchmarks/hub_load.py --devices 10000 --minutes 20`` (about 25 min at load 12-19;
``--direct`` measures the monitoring step alone, see below).

What runs (each its own process, CPU and peak memory measured per process):

- **Mosquitto** on a free port (``benchmarks/_mosquitto.py``, zero-loss queue settings);
- **ingest**: ``--workers`` real ``IngestService`` processes (a shared
  subscription when more than one), QoS 1, ack after commit, into PostgreSQL
  (own schema, dropped afterwards; ``$PUMPOPS_BENCH_PG``) or SQLite;
- **agents**: ``--agent-procs`` processes of lightweight simulated agents, each
  process one MQTT connection publishing for its share of the devices (the real
  envelope: ``AgentMessage``, ``encode_agent_message``, ``with_msg_id`` with
  the outbox's ``<device_id>:<seq>``, on each device's own topics). Per
  simulated minute every device sends its ``state``; every 10th minute also a
  summary, every 60th a drift report (from minute 30 on, 40 % of group-a
  report drift, so monitoring opens one fleet drift alert);
- **monitoring** in this process: after each simulated minute has been
  published (PUBACKed), one ``MonitoringService.evaluate`` at the minute's end
  — the hub's step, which now reads only the rows received since the last
  step (``monitoring/_incremental.py``). **Baseline in the same run**: every
  ``--full-every`` minutes the old full recomputation (the window's messages +
  each silent device's newest state → ``build_fleet_view``) on the same
  store at the same instant, timed, and compared with the incremental view
  (they must be equal; the count of differing fields is printed).

Simulated time is compressed: a minute is published as fast as the agents,
broker and ingest allow, or, with ``--minute-s S``, one simulated minute per
``S`` wall seconds (the step at the end of each slot, as the hub's timer would
run it; how many messages were still uncommitted when each step started is
printed). Message times start at 00:00 UTC yesterday. At the
end: every published message must be stored exactly once (stored rows counted
against the published ids; the key makes a stored duplicate impossible, the
ingest's duplicate counter says how many redeliveries it absorbed); then the
database size before and after a prune (``store.prune``, the ``pumpops db
prune`` path) with a one-day horizon at two days after the start.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _mosquitto import mosquitto
from pumpops.fleet import Device
from pumpops.monitoring import DriftPolicy, FleetView, MonitoringService, build_fleet_view
from pumpops.registry import EventSink
from pumpops.schema import TOPIC_OF_KIND, AgentMessage, encode_agent_message, with_msg_id
from pumpops.settings import IngestSettings, Settings
from pumpops.store import AgentRecord, RetentionPolicy, TelemetryStore, open_store
from pumpops.telemetry import IngestService, build_topic, parse_broker_url

PG_URL = os.environ.get("PUMPOPS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
GROUPS = ("group-a", "group-b", "group-c")
PROFILES = ("acme-ansi", "nordhav-multistage", "sakura-esp")
SENSORS = ("SUCT_PRESS", "DISCH_PRESS", "FLOW", "SPEED", "MTR_CURRENT", "MTR_VOLT", "MTR_TEMP", "BRG_TEMP")
ROUND_MS = 600_000  # a summary covers 10 simulated minutes
MINUTE_MS = 60_000
DRIFT_FROM_ROUND = 3  # from minute 30 on, a share of group-a reports drift
DRIFT_SHARE = 0.4
AGENT_VERSION = "0.1.0"
DAY_MS = 86_400_000


# ----------------------------------------------------------------------------- the load generator


def fleet(n: int) -> tuple[Device, ...]:
    """``n`` devices over 3 groups (each group one make), 20 devices a site."""
    return tuple(
        Device(f"p-{i:05d}", f"site-{i // 20:03d}", PROFILES[i % 3], GROUPS[i % 3]) for i in range(n)
    )


def _bodies(
    device: Device, idx: int, rnd: int, t_ms: int, rng: np.random.Generator
) -> dict[str, dict[str, Any]]:
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


def minute_kinds(minute: int) -> tuple[str, ...]:
    """What each agent sends in minute ``minute``: a state; each 10th a summary, each 60th a drift report."""
    return ("state",) + (("summary",) if minute % 10 == 9 else ()) + (("drift",) if minute % 60 == 59 else ())


def minute_records(
    devices: Sequence[Device],
    seqs: list[int],
    rnd: int,
    t_ms: int,
    kinds: Sequence[str],
    rng: np.random.Generator,
) -> list[AgentRecord]:
    """The stored records of every device's messages of one instant (``--direct``: what ingest would store).

    Each device sends ``kinds`` at ``t_ms`` (+1 ms per kind), numbered on from ``seqs`` (updated),
    with the bodies of :func:`_bodies` for round ``rnd``; received now.
    """
    records = []
    for i, device in enumerate(devices):
        bodies = _bodies(device, i, rnd, t_ms, rng)
        for k, kind in enumerate(kinds):
            seqs[i] += 1
            body = json.dumps(bodies[kind], separators=(",", ":"))
            records.append(
                AgentRecord(
                    f"{device.device_id}:{seqs[i]}",
                    device.device_id,
                    device.site,
                    kind,
                    (t_ms + k) * 1000,
                    AGENT_VERSION,
                    body,
                    hashlib.sha256(body.encode()).hexdigest(),
                    time.time_ns() // 1000,
                )
            )
    return records


def _hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ----------------------------------------------------------------------------- agent processes


def _agents_proc(
    url: str, prefix: str, n: int, lo: int, hi: int, t0_ms: int, seed: int, conn: Connection
) -> None:
    """Simulated agents ``lo..hi`` of the fleet on one MQTT connection; publishes a minute when told."""
    devices = fleet(n)[lo:hi]
    rng = np.random.default_rng(seed + lo)
    addr = parse_broker_url(url)
    assert addr is not None
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-agents-{lo}", protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    acked = threading.Semaphore(0)
    client.on_publish = lambda *a: acked.release()
    client.connect(addr.host, addr.port)
    client.loop_start()
    seqs = [0] * len(devices)
    published = 0
    conn.send("ready")
    while (minute := conn.recv()) is not None:
        t_ms = t0_ms + minute * MINUTE_MS + 30_000
        kinds = minute_kinds(minute)
        count = 0
        for i, device in enumerate(devices):
            bodies = _bodies(device, lo + i, minute // 10, t_ms, rng)
            for k, kind in enumerate(kinds):
                seqs[i] += 1
                message = AgentMessage(
                    device_id=device.device_id,
                    site=device.site,
                    kind=kind,
                    ts_ms=t_ms + k,
                    agent_version=AGENT_VERSION,
                    body=bodies[kind],
                )
                payload = with_msg_id(encode_agent_message(message), f"{device.device_id}:{seqs[i]}")
                topic = build_topic(device.site, device.device_id, TOPIC_OF_KIND[kind], prefix=prefix)
                client.publish(topic, payload, qos=1)
                count += 1
        for _ in range(count):
            if not acked.acquire(timeout=300):
                raise RuntimeError("a publish was not acknowledged within 300 s")
        published += count
        conn.send(count)
    client.loop_stop()
    client.disconnect()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    conn.send({"published": published, "cpu_s": ru.ru_utime + ru.ru_stime, "hwm_mib": _hwm_mib()})


# ----------------------------------------------------------------------------- ingest processes


def _ingest_proc(
    url: str,
    db_url: str,
    prefix: str,
    index: int,
    shared: bool,
    ready: Any,
    stop: Any,
    stored: Any,
    conn: Connection,
) -> None:
    """One real ingest worker; times each store commit of agent messages."""
    store = open_store(db_url)
    addr = parse_broker_url(url)
    assert addr is not None
    commits: list[float] = []
    put = store.put_agent_messages

    def timed_put(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        result = put(*args, **kwargs)
        commits.append(time.perf_counter() - t)
        with stored.get_lock():
            stored.value += result.stored
        return result

    store.put_agent_messages = timed_put  # type: ignore[method-assign]
    settings = IngestSettings(
        client_id=f"bench-ingest-{uuid.uuid4().hex[:6]}-{index}",
        shared_group="hubload" if shared else None,
        batch_max_messages=500,
        batch_max_wait_s=0.05,
    )
    service = IngestService(store, addr, settings=settings, topic_prefix=prefix)
    service.start()
    service.wait_ready(60)
    ready.set()
    stop.wait()
    stats = service.stop()
    store.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    conn.send(
        {
            "commits": commits,
            "cpu_s": ru.ru_utime + ru.ru_stime,
            "hwm_mib": _hwm_mib(),
            "duplicates": stats.duplicates,
            "rejected": stats.rejected_messages,
        }
    )


# ----------------------------------------------------------------------------- the old full step (baseline)


def full_view(
    store: TelemetryStore, devices: Sequence[Device], now_ms: int, policy: DriftPolicy
) -> FleetView:
    """The step before issue 18: the window's messages + each silent device's newest state, recomputed."""
    records = store.agent_messages(since_us=policy.cutoff_ms(now_ms) * 1000)
    with_state = {r.device_id for r in records if r.kind == "state"}
    older = []
    for device in devices:
        if device.device_id not in with_state:
            older += store.agent_messages(device_id=device.device_id, kind="state", limit=1)
    return build_fleet_view([*records, *older], devices, now_ms=now_ms, policy=policy)


def differences(got: object, want: object) -> int:
    """Fields that differ (floats to 1e-9 relative)."""
    if isinstance(want, float) and isinstance(got, float):
        return int(not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12))
    if isinstance(want, dict) and isinstance(got, dict):
        return sum(differences(got.get(k), want[k]) for k in want) + len(set(got) - set(want))
    if isinstance(want, list | tuple) and isinstance(got, list | tuple):
        return sum(differences(g, w) for g, w in zip(got, want, strict=False)) + abs(len(got) - len(want))
    return int(got != want)


# ----------------------------------------------------------------------------- one run


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


def _drop_pg_schema(url: str) -> None:
    import sqlalchemy as sa

    schema = url.rsplit("schema=", 1)[1]
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if len(values) else float("nan")


def run(args: argparse.Namespace, n: int) -> dict[str, Any]:
    """Everything for ``n`` devices; the figures."""
    tmp = Path(tempfile.mkdtemp(prefix="pumpops-hubload-"))
    db_url = "" if args.engine == "sqlite" else f"{PG_URL}?schema=hubload_{uuid.uuid4().hex[:10]}"
    settings = Settings(workspace=tmp, database_url=db_url)
    db_url = settings.resolved_database_url
    prefix = f"hubload{uuid.uuid4().hex[:6]}"
    devices = fleet(n)
    t0_ms = (int(time.time() * 1000) // DAY_MS - 1) * DAY_MS  # 00:00 UTC yesterday
    ctx = mp.get_context("spawn")
    out: dict[str, Any] = {"devices": n, "minutes": args.minutes, "engine": args.engine}
    store = open_store(db_url)
    try:
        store.upgrade()
        store.register_devices(devices)
        with mosquitto() as url:
            broker = next(p for p in psutil.Process().children() if "mosquitto" in p.name())
            stop, stored = ctx.Event(), ctx.Value("q", 0)
            ingest = []
            for i in range(args.workers):
                ready = ctx.Event()
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(
                    target=_ingest_proc,
                    args=(url, db_url, prefix, i, args.workers > 1, ready, stop, stored, send),
                    daemon=True,
                )
                proc.start()
                ingest.append((proc, ready, recv))
            for _, ready, _ in ingest:
                if not ready.wait(120):
                    raise RuntimeError("an ingest worker did not subscribe within 120 s")
            agents = []
            share = math.ceil(n / args.agent_procs)
            for lo in range(0, n, share):
                parent, child = ctx.Pipe()
                proc = ctx.Process(
                    target=_agents_proc,
                    args=(url, prefix, n, lo, min(n, lo + share), t0_ms, args.seed, child),
                    daemon=True,
                )
                proc.start()
                agents.append((proc, parent))
            for _, parent in agents:
                assert parent.recv() == "ready"
            monitor = MonitoringService(store, EventSink(store, None), settings.monitoring)
            policy = monitor.policy
            steps: list[float] = []
            step_cpu = 0.0
            fulls: list[float] = []
            publish_s: list[float] = []
            opened: list[str] = []
            published = 0
            wall0 = time.perf_counter()
            backlog: list[int] = []  # published but not yet committed when each step starts
            for minute in range(args.minutes):
                p0 = time.perf_counter()
                for _, parent in agents:
                    parent.send(minute)
                published += sum(parent.recv() for _, parent in agents)
                publish_s.append(time.perf_counter() - p0)
                if args.minute_s > 0:  # paced: the step runs at the end of the minute's wall slot
                    time.sleep(max(0.0, wall0 + (minute + 1) * args.minute_s - time.perf_counter()))
                backlog.append(published - stored.value)
                now_ms = t0_ms + (minute + 1) * MINUTE_MS
                c0, e0 = time.process_time(), time.perf_counter()
                evaluation = monitor.evaluate(now_ms * 1000)
                steps.append(time.perf_counter() - e0)
                step_cpu += time.process_time() - c0
                opened += [c.alert_id for c in evaluation.changes if c.action == "opened"]
                if (minute + 1) % args.full_every == 0:
                    f0 = time.perf_counter()
                    full_view(store, devices, now_ms, policy)
                    fulls.append(time.perf_counter() - f0)
                if minute % 10 == 9:
                    print(
                        f"#   minute {minute + 1}: published {published:,}, stored {stored.value:,}, "
                        f"step {steps[-1] * 1000:.0f} ms, load {os.getloadavg()[0]:.1f}",
                        file=sys.stderr,
                        flush=True,
                    )
            deadline = time.monotonic() + 600
            while stored.value < published and time.monotonic() < deadline:
                time.sleep(0.05)
            wall = time.perf_counter() - wall0
            # the end: every message stored; the incremental step and the full recomputation on the same rows
            now_ms = t0_ms + args.minutes * MINUTE_MS
            e0 = time.perf_counter()
            last = monitor.view(now_ms * 1000)
            out["final_step_ms"] = (time.perf_counter() - e0) * 1000
            f0 = time.perf_counter()
            reference = full_view(store, devices, now_ms, policy)
            out["final_full_ms"] = (time.perf_counter() - f0) * 1000
            out["view_differences"] = differences(last.to_dict(), reference.to_dict())
            out["groups_drifting"] = sorted(g.group for g in last.groups if g.drift.drifting)
            for _, parent in agents:
                parent.send(None)
            agent_figs = [parent.recv() for _, parent in agents]
            broker_cpu = sum(broker.cpu_times()[:2])
            broker_rss = broker.memory_info().rss / 2**20
            stop.set()
            ingest_figs = [recv.recv() for _, _, recv in ingest]
            for proc, _ in agents:
                proc.join(30)
            for proc, _, _ in ingest:
                proc.join(30)
        commits = [c for f in ingest_figs for c in f["commits"]]
        sql_store = store
        rows = len(sql_store.agent_messages_after(received_after_us=-1, limit=10**9))  # type: ignore[attr-defined]
        size_before = _db_size(db_url)
        report = store.prune(
            RetentionPolicy(agent_messages_days=1, summaries_days=1),
            actor="hub-load",
            now=(t0_ms + 2 * DAY_MS) * 1000,
        )
        size_after = _db_size(db_url)
        out.update(
            published=published,
            stored=rows,
            lost=published - rows,
            redelivered=sum(f["duplicates"] for f in ingest_figs),
            msg_s=published / wall,
            wall_s=wall,
            publish_p50_ms=_pct(publish_s, 50),
            commit_p50_ms=_pct(commits, 50),
            commit_p99_ms=_pct(commits, 99),
            commits=len(commits),
            step_p50_ms=_pct(steps, 50),
            step_p99_ms=_pct(steps, 99),
            step_max_ms=max(steps) * 1000,
            step_cpu_s=step_cpu,
            backlog_p50=float(np.percentile(backlog, 50)),
            backlog_max=max(backlog),
            minute_s=args.minute_s,
            full_p50_ms=_pct(fulls, 50),
            full_max_ms=max(fulls) * 1000 if fulls else float("nan"),
            fulls=len(fulls),
            alerts_opened=opened,
            monitor_hwm_mib=_hwm_mib(),
            monitor_cpu_s=time.process_time(),
            ingest=[{"cpu_s": f["cpu_s"], "hwm_mib": f["hwm_mib"]} for f in ingest_figs],
            agents=agent_figs,
            broker_cpu_s=broker_cpu,
            broker_rss_mib=broker_rss,
            db_before_mib=size_before / 2**20,
            db_after_mib=size_after / 2**20,
            pruned_rows=report.rows,
            pruned_partitions=sum(len(k.partitions) for k in report.kinds),
        )
    finally:
        store.close()
        if args.engine != "sqlite":
            _drop_pg_schema(db_url)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def run_direct(args: argparse.Namespace, n: int) -> dict[str, Any]:
    """Monitoring alone at exactly ``n`` agents a minute: each minute stored whole, then one step.

    No broker: each simulated minute's messages (the same generator, the same
    envelope fields) are written with ``put_agent_messages`` (the ingest's
    write) in chunks of 5,000 before the step, so every step has a full
    minute of all ``n`` agents to apply. The old full recomputation is timed
    every ``--full-every`` minutes on the same rows and compared.
    """
    db_url = f"{PG_URL}?schema=hubload_{uuid.uuid4().hex[:10]}"
    tmp = Path(tempfile.mkdtemp(prefix="pumpops-hubload-"))
    settings = Settings(workspace=tmp, database_url=db_url)
    devices = fleet(n)
    t0_ms = (int(time.time() * 1000) // DAY_MS - 1) * DAY_MS
    rng = np.random.default_rng(args.seed)
    seqs = [0] * n
    store = open_store(settings.resolved_database_url)
    steps: list[float] = []
    step_cpu: list[float] = []
    fulls: list[float] = []
    full_cpu: list[float] = []
    diffs = 0
    try:
        store.upgrade()
        store.register_devices(devices)
        monitor = MonitoringService(store, EventSink(store, None), settings.monitoring)
        for rnd in range(args.history_rounds):  # the window filled before t0: 10-minute rounds
            t_ms = t0_ms - (args.history_rounds - rnd) * ROUND_MS + 30_000
            history = minute_records(devices, seqs, 0, t_ms, ("state", "summary", "drift"), rng)
            for start in range(0, len(history), 5000):
                store.put_agent_messages(history[start : start + 5000])
        for minute in range(args.minutes):
            t_ms = t0_ms + minute * MINUTE_MS + 30_000
            records = minute_records(devices, seqs, minute // 10, t_ms, minute_kinds(minute), rng)
            for start in range(0, len(records), 5000):
                store.put_agent_messages(records[start : start + 5000])
            now_ms = t0_ms + (minute + 1) * MINUTE_MS
            c0, e0 = time.process_time(), time.perf_counter()
            evaluation = monitor.evaluate(now_ms * 1000)
            steps.append(time.perf_counter() - e0)
            step_cpu.append(time.process_time() - c0)
            if (minute + 1) % args.full_every == 0:
                c0, f0 = time.process_time(), time.perf_counter()
                reference = full_view(store, devices, now_ms, monitor.policy)
                fulls.append(time.perf_counter() - f0)
                full_cpu.append(time.process_time() - c0)
                diffs += differences(evaluation.view.to_dict(), reference.to_dict())
            print(
                f"#   direct minute {minute + 1}: {len(records):,} messages, step {steps[-1] * 1000:.0f} ms "
                f"(CPU {step_cpu[-1] * 1000:.0f} ms)"
                + (f", full {fulls[-1] * 1000:.0f} ms" if (minute + 1) % args.full_every == 0 else "")
                + f", load {os.getloadavg()[0]:.1f}",
                file=sys.stderr,
                flush=True,
            )
    finally:
        store.close()
        _drop_pg_schema(db_url)
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "devices": n,
        "minutes": args.minutes,
        "first_step_ms": steps[0] * 1000,
        "step_p50_ms": _pct(steps[1:], 50),
        "step_p99_ms": _pct(steps[1:], 99),
        "step_max_ms": max(steps[1:]) * 1000,
        "full_p50_ms": _pct(fulls, 50),
        "full_max_ms": max(fulls) * 1000 if fulls else float("nan"),
        "step_cpu_p50_ms": _pct(step_cpu[1:], 50),
        "step_cpu_p99_ms": _pct(step_cpu[1:], 99),
        "full_cpu_p50_ms": _pct(full_cpu, 50),
        "view_differences": diffs,
        "hwm_mib": _hwm_mib(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=0, help="also run this many devices (0: no)")
    parser.add_argument("--minutes", type=int, default=20, help="simulated minutes (1440: a day)")
    parser.add_argument("--engine", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--workers", type=int, default=1, help="ingest worker processes")
    parser.add_argument("--agent-procs", type=int, default=2, help="processes of simulated agents")
    parser.add_argument(
        "--full-every", type=int, default=15, help="minutes between timed full recomputations"
    )
    parser.add_argument(
        "--minute-s",
        type=float,
        default=0.0,
        help="wall seconds per simulated minute (0: as fast as possible); the step runs at each slot's end",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--direct", action="store_true", help="monitoring alone: each minute stored whole before its step"
    )
    parser.add_argument(
        "--history-rounds",
        type=int,
        default=0,
        help="--direct: 10-minute rounds (state, summary, drift per device) stored before the first minute",
    )
    args = parser.parse_args(argv)
    if args.direct:
        print(
            f"# monitoring at a full minute of every agent per step (--direct), load {os.getloadavg()[0]:.1f}"
        )
        print(
            "| devices | minutes | first step ms | step p50 / p99 / max ms (wall) | step CPU p50 / p99 ms "
            "| full p50 / max ms (wall) | full CPU p50 ms | ratio p50 wall | ratio p50 CPU | diffs |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n in [m for m in (args.baseline, args.devices) if m > 0]:
            r = run_direct(args, n)
            print(
                f"| {n:,} | {r['minutes']} | {r['first_step_ms']:.0f} | {r['step_p50_ms']:.0f} / "
                f"{r['step_p99_ms']:.0f} / {r['step_max_ms']:.0f} | {r['step_cpu_p50_ms']:.0f} / "
                f"{r['step_cpu_p99_ms']:.0f} | {r['full_p50_ms']:.0f} / {r['full_max_ms']:.0f} | "
                f"{r['full_cpu_p50_ms']:.0f} | {r['full_p50_ms'] / r['step_p50_ms']:.1f} | "
                f"{r['full_cpu_p50_ms'] / r['step_cpu_p50_ms']:.1f} | {r['view_differences']} |",
                flush=True,
            )
        print(f"# load average at the end {os.getloadavg()[0]:.1f}")
        return 0
    print(
        f"# hub load through Mosquitto — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} CPUs ({_cpu_model()}), Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"# {args.engine}, {args.workers} ingest worker(s), {args.agent_procs} agent processes, "
        f"{args.minutes} simulated minutes; per device and minute a state, each 10th a summary, each 60th a "
        "drift report; one monitoring step (MonitoringService.evaluate) per minute; the old full "
        f"recomputation every {args.full_every} minutes as the baseline"
    )
    results = []
    for n in [m for m in (args.baseline, args.devices) if m > 0]:
        t = time.perf_counter()
        results.append(run(args, n))
        print(
            f"# {n:,} devices: {time.perf_counter() - t:.0f} s wall, load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    print()
    head = (
        "devices | messages | msg/s | commit p50 / p99 ms | step p50 / p99 / max ms (incremental) "
        "| full recompute p50 / max ms (old) | step ratio old/new (p50) | lost | redelivered | view diffs"
    )
    print("| " + head + " |")
    print("|" + "---:|" * len(head.split("|")))
    for r in results:
        print(
            f"| {r['devices']:,} | {r['published']:,} | {r['msg_s']:,.0f} | "
            f"{r['commit_p50_ms']:.0f} / {r['commit_p99_ms']:.0f} | "
            f"{r['step_p50_ms']:.0f} / {r['step_p99_ms']:.0f} / {r['step_max_ms']:.0f} | "
            f"{r['full_p50_ms']:.0f} / {r['full_max_ms']:.0f} | {r['full_p50_ms'] / r['step_p50_ms']:.1f} | "
            f"{r['lost']} | {r['redelivered']} | {r['view_differences']} |"
        )
    print()
    print("| devices | process | CPU s | peak memory MiB |")
    print("|---:|---|---:|---:|")
    for r in results:
        d = f"{r['devices']:,}"
        print(
            f"| {d} | hub monitoring (this process) | {r['monitor_cpu_s']:.1f} | {r['monitor_hwm_mib']:.0f} |"
        )
        for i, f in enumerate(r["ingest"]):
            print(f"| {r['devices']:,} | ingest worker {i} | {f['cpu_s']:.1f} | {f['hwm_mib']:.0f} |")
        for i, f in enumerate(r["agents"]):
            print(f"| {r['devices']:,} | agents process {i} | {f['cpu_s']:.1f} | {f['hwm_mib']:.0f} |")
        print(f"| {d} | mosquitto | {r['broker_cpu_s']:.1f} | {r['broker_rss_mib']:.0f} (RSS at end) |")
    print()
    for r in results:
        print(
            f"# {r['devices']:,} devices: {r['wall_s']:.0f} s from first publish to last commit; stored "
            f"{r['stored']:,} of {r['published']:,}; {r['commits']} commits; "
            + (f"paced at {r['minute_s']:g} s a minute; " if r["minute_s"] else "as fast as possible; ")
            + f"not yet stored when a step started: p50 {r['backlog_p50']:,.0f}, max {r['backlog_max']:,} "
            f"messages; "
            f"final step {r['final_step_ms']:.0f} ms "
            f"vs full {r['final_full_ms']:.0f} ms on the same rows ({r['view_differences']} fields differ); "
            f"alerts opened {r['alerts_opened']}; drifting at the end {r['groups_drifting']}; DB "
            f"{r['db_before_mib']:.1f} MiB before prune → {r['db_after_mib']:.1f} MiB after "
            f"({r['pruned_rows']:,} rows, "
            f"{r['pruned_partitions']} partitions dropped; one-day horizon two days after the start)"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
