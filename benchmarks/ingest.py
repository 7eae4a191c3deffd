"""Ingest throughput, latency and loss: simulated devices → Mosquitto → ingest → store.

Run: ``.venv/bin/python benchmarks/ingest.py`` (or ``make bench``). It starts
its own Mosquitto on a free port with the zero-loss configuration of
``docs/operations.md`` and, in the same run, measures:

1. **broker ceiling** — a bare paho subscriber that only counts (the most any
   Python consumer could take from this broker on this machine);
2. **ingest, saturated** — the same workload through the real ingest service
   into PostgreSQL and into SQLite: sustained readings/s and messages/s, and
   lost and duplicated readings counted against what was published;
3. **ingest, paced** — a steady offered load below saturation, for end-to-end
   latency (publish → committed in the store) p50/p99;
4. **Mosquitto defaults** — the same burst queued for an offline persistent
   session with ``max_queued_messages 1000`` (the default) vs ``0``: how many
   messages the default drops.

``--workers 1,2,4`` measures scale-out instead: in one run, the broker
ceiling, then N ingest worker *processes* (each its own client id, all on one
MQTT shared subscription ``$share/bench/...``) into one PostgreSQL schema per
N, with throughput, the ratio to one worker and to the ceiling, lost and
duplicated readings, the worker processes' CPU seconds per 1,000 stored
messages and the whole machine's CPU use during the run (to tell a scaling
limit from a full machine). ``--profile DIR`` writes each worker's cProfile.

Publishers run in a separate process with pre-encoded payloads so that the
measurement is of ingest, not of JSON encoding on the publishing side. All of
it shares this machine's cores with the broker and the database.
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing as mp
import os
import platform
import pstats
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, os.path.dirname(__file__))
from _mosquitto import DEFAULTS, ZERO_LOSS, mosquitto
from pumpops.fleet import Device, get_profile
from pumpops.settings import IngestSettings
from pumpops.store import BatchOutcome, TelemetryStore, open_store
from pumpops.telemetry import (
    DecodeResult,
    IngestService,
    build_topic,
    encode_message,
    parse_broker_url,
)

PG_URL = os.environ.get("PUMPOPS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ROWS, SENSORS = 10, 8  # 80 readings per message, about 3 KB as in NOTES.md
PROFILE = "acme-ansi"


@dataclass(frozen=True)
class Workload:
    prefix: str
    devices: tuple[Device, ...]
    topics: tuple[str, ...]  # per message
    payloads: tuple[bytes, ...]
    msg_ids: tuple[str, ...]
    readings: int


def make_workload(n_messages: int, n_devices: int, seed: int = 1) -> Workload:
    """Messages of ROWS x SENSORS readings, round-robin over devices, timestamps one day old."""
    rng = np.random.default_rng(seed)
    profile = get_profile(PROFILE)
    channels = [(s.native, s.unit) for s in profile.sensors[:SENSORS]]
    prefix = f"bench-{uuid.uuid4().hex[:8]}/v1"
    devices = tuple(Device(f"b-{i:05d}", "bench-site", PROFILE, "bench") for i in range(n_devices))
    base = {"psi": 60.0, "gallon/minute": 250.0, "rpm": 3500.0, "A": 25.0, "V": 460.0, "degF": 120.0}
    t0 = (int(time.time()) - 86_400) * 1000
    topics, payloads, ids = [], [], []
    for i in range(n_messages):
        device = devices[i % n_devices]
        seq = i // n_devices
        ts = t0 + (seq * ROWS + np.arange(ROWS)) * 1000
        centre = np.array([base.get(unit, 1.0) for _, unit in channels])
        values = centre * (1 + 0.01 * rng.standard_normal((ROWS, SENSORS)))
        msg_id = f"m{i}"
        payloads.append(
            encode_message(
                msg_id=msg_id, device_id=device.device_id, sensors=channels, ts_ms=ts, values=values
            )
        )
        topics.append(build_topic(device.site, device.device_id, "telemetry", prefix=prefix))
        ids.append(msg_id)
    return Workload(prefix, devices, tuple(topics), tuple(payloads), tuple(ids), n_messages * ROWS * SENSORS)


def _publish_proc(
    url: str,
    topics: Sequence[str],
    payloads: Sequence[bytes],
    rate: float | None,
    start_evt: mp.synchronize.Event,
    out: mp.connection.Connection,
) -> None:
    """Publish QoS 1 as fast as allowed (or at `rate` msg/s); send back publish times (ns)."""
    addr = parse_broker_url(url)
    assert addr is not None
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv311
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    acked = threading.Semaphore(0)
    client.on_publish = lambda *a: acked.release()
    client.connect(addr.host, addr.port)
    client.loop_start()
    start_evt.wait()
    sent = np.zeros(len(payloads), dtype=np.int64)
    t_start = time.perf_counter()
    for i, (topic, payload) in enumerate(zip(topics, payloads, strict=True)):
        if rate is not None:
            due = t_start + i / rate
            while (delay := due - time.perf_counter()) > 0:
                time.sleep(delay)
        sent[i] = time.time_ns()
        client.publish(topic, payload, qos=1)
    for _ in payloads:
        acked.acquire(timeout=120)
    client.loop_stop()
    client.disconnect()
    out.send(sent)


def _start_publisher(
    url: str, w: Workload, rate: float | None
) -> tuple[mp.Process, mp.synchronize.Event, mp.connection.Connection]:
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_publish_proc, args=(url, w.topics, w.payloads, rate, start, send), daemon=True)
    proc.start()
    return proc, start, recv


def broker_ceiling(url: str, w: Workload) -> dict[str, float]:
    """A bare subscriber (QoS 1, auto-ack) that only counts."""
    addr = parse_broker_url(url)
    assert addr is not None
    count = 0
    first = last = 0.0
    done = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal count, first, last
        if count == 0:
            first = time.perf_counter()
        count += 1
        last = time.perf_counter()
        if count >= len(w.payloads):
            done.set()

    sub = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-bare-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv311,
        clean_session=True,
    )
    sub.on_message = on_message
    sub.connect(addr.host, addr.port)
    sub.subscribe(f"{w.prefix}/+/+/telemetry", qos=1)
    sub.loop_start()
    time.sleep(0.5)
    proc, start, recv = _start_publisher(url, w, None)
    start.set()
    done.wait(timeout=300)
    recv.recv()
    proc.join()
    sub.loop_stop()
    sub.disconnect()
    elapsed = max(last - first, 1e-9)
    return {
        "messages": count,
        "msg_s": count / elapsed,
        "readings_s": count * ROWS * SENSORS / elapsed,
        "lost": len(w.payloads) - count,
    }


class _Timing:
    """Records when each message's commit finished (the ingest observer hook)."""

    def __init__(self) -> None:
        self.commit_ns: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, results: Sequence[DecodeResult], outcomes: Sequence[BatchOutcome]) -> None:
        now = time.time_ns()
        with self.lock:
            for outcome in outcomes:
                self.commit_ns.setdefault(outcome.msg_id, now)


def run_ingest(url: str, db_url: str, w: Workload, rate: float | None) -> dict[str, float]:
    """Publish the workload while the real ingest service writes it to the store."""
    store: TelemetryStore = open_store(db_url)
    store.upgrade()
    store.register_devices(w.devices)
    addr = parse_broker_url(url)
    assert addr is not None
    timing = _Timing()
    settings = IngestSettings(
        client_id=f"bench-ingest-{uuid.uuid4().hex[:6]}", batch_max_messages=500, batch_max_wait_s=0.05
    )
    service = IngestService(store, addr, settings=settings, topic_prefix=w.prefix, observer=timing).start()
    service.wait_ready()
    proc, start, recv = _start_publisher(url, w, rate)
    start.set()
    deadline = time.monotonic() + 600
    while len(timing.commit_ns) < len(w.payloads) and time.monotonic() < deadline:
        time.sleep(0.05)
    sent_ns = recv.recv()
    proc.join()
    time.sleep(0.5)  # let redeliveries, if any, arrive and be counted
    stats = service.stop()
    counts = store.counts()
    store.close()
    commits = np.array([timing.commit_ns.get(m, 0) for m in w.msg_ids], dtype=np.int64)
    ok = commits > 0
    latency_ms = (commits[ok] - sent_ns[ok]) / 1e6
    elapsed_s = (commits[ok].max() - sent_ns.min()) / 1e9
    return {
        "messages": int(ok.sum()),
        "readings": counts["readings"],
        "msg_s": ok.sum() / elapsed_s,
        "readings_s": counts["readings"] / elapsed_s,
        "p50_ms": float(np.percentile(latency_ms, 50)),
        "p99_ms": float(np.percentile(latency_ms, 99)),
        "lost": w.readings - counts["readings"],
        # the primary key makes a stored duplicate impossible; count it anyway, against what was published
        "duplicated": max(0, counts["readings"] - w.readings),
        "redelivered": stats.duplicates,
        "dead_letters": counts["dead_letters"],
    }


def _worker_proc(
    url: str,
    db_url: str,
    prefix: str,
    index: int,
    ready: mp.synchronize.Event,
    stop: mp.synchronize.Event,
    stored: mp.sharedctypes.Synchronized,  # type: ignore[type-arg]
    last_commit_ns: mp.sharedctypes.Synchronized,  # type: ignore[type-arg]
    out: mp.connection.Connection,
) -> None:
    """One ingest worker process on the shared subscription; reports its counters and CPU time."""
    store = open_store(db_url)
    addr = parse_broker_url(url)
    assert addr is not None

    def observe(results: Sequence[DecodeResult], outcomes: Sequence[BatchOutcome]) -> None:
        n = sum(1 for o in outcomes if o.status == "stored")
        with stored.get_lock():
            stored.value += n
        last_commit_ns.value = time.time_ns()

    settings = IngestSettings(
        client_id=f"bench-worker-{uuid.uuid4().hex[:6]}-{index}",
        shared_group="bench",
        batch_max_messages=500,
        batch_max_wait_s=0.05,
    )
    service = IngestService(store, addr, settings=settings, topic_prefix=prefix, observer=observe)
    cpu0 = time.process_time()
    service.start()
    service.wait_ready()
    ready.set()
    stop.wait()
    stats = service.stop()
    cpu = time.process_time() - cpu0
    store.close()
    out.send({"cpu_s": cpu, "duplicates": stats.duplicates, "stored": stats.stored_messages})


def run_workers(url: str, db_url: str, w: Workload, n_workers: int) -> dict[str, float]:
    """The saturated workload through ``n_workers`` ingest processes on one shared subscription."""
    store: TelemetryStore = open_store(db_url)
    store.upgrade()
    store.register_devices(w.devices)
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    procs, readies, pipes, counters = [], [], [], []
    for i in range(n_workers):
        ready = ctx.Event()
        stored, last = ctx.Value("q", 0), ctx.Value("q", 0)
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_worker_proc,
            args=(url, db_url, w.prefix, i, ready, stop, stored, last, send),
            daemon=True,
        )
        proc.start()
        procs.append(proc)
        readies.append(ready)
        pipes.append(recv)
        counters.append((stored, last))
    for ready in readies:
        if not ready.wait(60):
            raise RuntimeError("an ingest worker did not subscribe within 60 s")
    time.sleep(0.3)
    cpu_before = psutil.cpu_times()
    pub, start, recv_pub = _start_publisher(url, w, None)
    start.set()
    deadline = time.monotonic() + 600
    while sum(c[0].value for c in counters) < len(w.payloads) and time.monotonic() < deadline:
        time.sleep(0.05)
    cpu_after = psutil.cpu_times()
    sent_ns = recv_pub.recv()
    pub.join()
    time.sleep(0.5)  # let redeliveries, if any, arrive and be counted
    stop.set()
    reports = [pipe.recv() for pipe in pipes]
    for proc in procs:
        proc.join(30)
    counts = store.counts()
    store.close()
    elapsed_s = (max(c[1].value for c in counters) - sent_ns.min()) / 1e9
    busy = sum(
        getattr(cpu_after, f) - getattr(cpu_before, f)
        for f in ("user", "nice", "system", "irq", "softirq", "steal")
    )
    idle = (cpu_after.idle - cpu_before.idle) + (cpu_after.iowait - cpu_before.iowait)
    worker_cpu = sum(r["cpu_s"] for r in reports)
    return {
        "workers": n_workers,
        "messages": counts["messages"],
        "readings": counts["readings"],
        "msg_s": counts["messages"] / elapsed_s,
        "readings_s": counts["readings"] / elapsed_s,
        "lost": w.readings - counts["readings"],
        "duplicated": max(0, counts["readings"] - w.readings),
        "redelivered": sum(r["duplicates"] for r in reports),
        "shares": "/".join(str(r["stored"]) for r in reports),
        "cpu_ms_per_msg": 1000 * worker_cpu / max(counts["messages"], 1),
        "machine_busy": busy / max(busy + idle, 1e-9),
        "dead_letters": counts["dead_letters"],
    }


def workers_table(
    url: str, messages: int, devices: int, ceiling: dict[str, float], ns: Sequence[int]
) -> None:
    rows = []
    for n in ns:
        # A fresh topic prefix per run: a stopped worker's persistent session stays a member of
        # the shared subscription and Mosquitto keeps queueing its share (docs/operations.md).
        w = make_workload(messages, devices, seed=2)
        db = _fresh_pg_url()
        try:
            rows.append(run_workers(url, db, w, n))
        finally:
            _drop_pg_schema(db)
    one = next((r for r in rows if r["workers"] == 1), rows[0])
    print()
    header = (
        "run",
        "messages/s",
        "readings/s",
        "ratio to 1 worker",
        "ratio to ceiling",
        "worker CPU ms / message",
        "machine CPU busy",
        "messages per worker",
        "lost readings",
        "duplicated readings",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    c = ceiling
    print(
        f"| broker ceiling (bare subscriber) | {c['msg_s']:,.0f} | {c['readings_s']:,.0f} | – | 1.00 "
        f"| – | – | – | {int(c['lost'])} | – |"
    )
    for r in rows:
        print(
            f"| {int(r['workers'])} ingest worker(s) → PostgreSQL | {r['msg_s']:,.0f} "
            f"| {r['readings_s']:,.0f} "
            f"| {r['readings_s'] / one['readings_s']:.2f} | {r['readings_s'] / ceiling['readings_s']:.2f} "
            f"| {r['cpu_ms_per_msg']:.2f} | {100 * r['machine_busy']:.0f} % | {r['shares']} "
            f"| {int(r['lost'])} | {int(r['duplicated'])} |"
        )


def profile_writer(w: Workload, top: int) -> None:
    """cProfile of ingest's writer path (decode, store, dead letters) on the workload, without the broker.

    ``IngestService.process`` runs the same writer code as messages from MQTT take;
    the profile is of this process only (PostgreSQL's own CPU shows as waiting).
    """
    db = _fresh_pg_url()
    try:
        store = open_store(db)
        store.upgrade()
        store.register_devices(w.devices)
        nowhere = parse_broker_url("mqtt://127.0.0.1:1")
        assert nowhere is not None
        service = IngestService(store, nowhere, settings=IngestSettings(), topic_prefix=w.prefix)
        messages = list(zip(w.topics, w.payloads, strict=True))
        service.process(messages[:500])  # warm caches and connections
        profiler = cProfile.Profile()
        wall, cpu = time.perf_counter(), time.process_time()
        profiler.enable()
        service.process(messages[500:])
        profiler.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        store.close()
    finally:
        _drop_pg_schema(db)
    stats = pstats.Stats(profiler)
    entries = stats.stats  # type: ignore[attr-defined]
    n = len(messages) - 500

    def cumulative(name: str) -> float:
        return sum(v[3] for (path, _, func), v in entries.items() if func == name and "pumpops" in path)

    decode_s, store_s = cumulative("_decode"), cumulative("write_batches")
    print(f"\n# writer path, {n} messages: wall {wall:.2f} s, this process's CPU {cpu:.2f} s")
    print(
        f"# per message: decode {1e3 * decode_s / n:.3f} ms, write_batches {1e3 * store_s / n:.3f} ms (wall)"
    )
    stats.sort_stats("tottime").print_stats(top)
    decode_paths(w)


def decode_paths(w: Workload) -> None:
    """CPU per message of decode alone: the cheap path against the full path it replaced, same messages."""
    from functools import partial
    from unittest import mock

    import pumpops.telemetry._decode as decode_module
    import pumpops.telemetry._decode_readings as readings_module
    from pumpops.fleet import load_profiles
    from pumpops.telemetry import decode

    lookup = {d.device_id: d for d in w.devices}.get
    profiles = load_profiles()
    now_us = time.time_ns() // 1000

    def run() -> float:
        start = time.process_time()
        for topic, payload in zip(w.topics, w.payloads, strict=True):
            decode(topic, payload, device_lookup=lookup, profiles=profiles, now_us=now_us, prefix=w.prefix)
        return 1e3 * (time.process_time() - start) / len(w.payloads)

    cheap = min(run() for _ in range(3))
    with (
        mock.patch.object(decode_module, "column_plan", readings_module._build_plan),
        mock.patch.object(
            decode_module, "_judge_readings", partial(readings_module._judge_readings, cheap=False)
        ),
    ):
        full = min(run() for _ in range(3))
    print(
        f"# decode CPU per message (best of 3 over {len(w.payloads)}): full path {full:.3f} ms, "
        f"cheap path {cheap:.3f} ms ({full / cheap:.2f}x)"
    )


def queue_limit_loss(n_messages: int) -> dict[str, int]:
    """Messages kept for an offline persistent session: Mosquitto defaults vs zero-loss config."""
    w = make_workload(n_messages, 50)
    out: dict[str, int] = {}
    for label, conf in (("default (1000)", DEFAULTS), ("zero-loss (0)", ZERO_LOSS)):
        with mosquitto(conf) as url:
            addr = parse_broker_url(url)
            assert addr is not None
            cid = f"bench-offline-{uuid.uuid4().hex[:6]}"
            received = 0

            def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
                nonlocal received
                received += 1

            sub = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=cid, clean_session=False, protocol=mqtt.MQTTv311
            )
            sub.connect(addr.host, addr.port)
            sub.subscribe(f"{w.prefix}/+/+/telemetry", qos=1)
            sub.loop_start()
            time.sleep(0.3)
            sub.loop_stop()
            sub.disconnect()  # session stays on the broker
            proc, start, recv = _start_publisher(url, w, None)
            start.set()
            recv.recv()
            proc.join()
            sub = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=cid, clean_session=False, protocol=mqtt.MQTTv311
            )
            sub.on_message = on_message
            sub.connect(addr.host, addr.port)
            sub.loop_start()
            last, stable = -1, 0
            while stable < 10:
                time.sleep(0.2)
                stable = stable + 1 if received == last else 0
                last = received
            sub.loop_stop()
            sub.disconnect()
            out[label] = received
    return out


def _fresh_pg_url() -> str:
    return f"{PG_URL}?schema=bench_{uuid.uuid4().hex[:10]}"


def _drop_pg_schema(url: str) -> None:
    import sqlalchemy as sa

    schema = url.rsplit("schema=", 1)[1]
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="messages in the saturated run")
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--paced-rate", type=float, default=1250.0, help="messages/s in the paced run")
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    parser.add_argument("--queue-messages", type=int, default=5_000)
    parser.add_argument(
        "--workers",
        help="comma-separated worker counts (e.g. 1,2,4): measure scale-out on a shared subscription instead",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="with --workers: also cProfile the writer path (decode + store)",
    )
    args = parser.parse_args(argv)

    print(
        f"# ingest benchmark — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(f"# workload: {args.messages} messages x {ROWS * SENSORS} readings, {args.devices} devices, QoS 1")
    w = make_workload(args.messages, args.devices)
    if args.workers:
        ns = [int(n) for n in args.workers.split(",")]
        print(f"# load average before: {Path('/proc/loadavg').read_text().strip()}")
        with mosquitto(ZERO_LOSS) as url:
            ceiling = broker_ceiling(url, w)
            workers_table(url, args.messages, args.devices, ceiling, ns)
        if args.profile:
            profile_writer(make_workload(args.messages, args.devices, seed=4), 15)
        print(f"# load average after: {Path('/proc/loadavg').read_text().strip()}")
        return 0
    rows: list[tuple[str, dict[str, float]]] = []
    tmp = tempfile.mkdtemp(prefix="pumpops-bench-")
    n_paced = int(args.paced_rate * args.paced_seconds)
    with mosquitto(ZERO_LOSS) as url:
        ceiling = broker_ceiling(url, w)
        rows.append(("broker ceiling (bare subscriber)", ceiling))
        for engine in ("PostgreSQL", "SQLite"):
            for paced in (False, True):
                db = _fresh_pg_url() if engine == "PostgreSQL" else f"sqlite:///{tmp}/{int(paced)}.db"
                load = (
                    make_workload(n_paced, args.devices, seed=3)
                    if paced
                    else make_workload(args.messages, args.devices, seed=2)
                )
                label = f"ingest → {engine}, " + (
                    f"paced {args.paced_rate:.0f} msg/s" if paced else "saturated"
                )
                try:
                    rows.append((label, run_ingest(url, db, load, args.paced_rate if paced else None)))
                finally:
                    if engine == "PostgreSQL":
                        _drop_pg_schema(db)
    print()
    header = (
        "run",
        "messages/s",
        "readings/s",
        "ratio to ceiling",
        "p50 latency ms",
        "p99 latency ms",
        "lost readings",
        "duplicated readings",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, r in rows:
        ratio = r["readings_s"] / ceiling["readings_s"]
        p50 = f"{r['p50_ms']:.0f}" if "p50_ms" in r else "–"
        p99 = f"{r['p99_ms']:.0f}" if "p99_ms" in r else "–"
        dup = int(r.get("duplicated", 0))
        print(
            f"| {name} | {r['msg_s']:,.0f} | {r['readings_s']:,.0f} | {ratio:.2f} | {p50} | {p99} | "
            f"{int(r['lost'])} | {dup} |"
        )
    loss = queue_limit_loss(args.queue_messages)
    print()
    print(f"Burst of {args.queue_messages} QoS 1 messages queued for an offline persistent session:")
    print("| Mosquitto max_queued_messages | delivered on reconnect | lost |")
    print("|---|---|---|")
    for label, received in loss.items():
        print(f"| {label} | {received} | {args.queue_messages - received} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
