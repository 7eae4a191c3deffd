"""Quick measurements of the telemetry path quoted in docs/protocol.md (not a test; not collected).

Run from the repository root::

    .venv/bin/python -m tests.telemetry.bench_telemetry [decode] [null] [sqlite] [postgres] [embedded]

``decode`` times :func:`decode` alone; the others publish a backlog of 2 KB
messages (9 rows, ~84 readings) into a Mosquitto of our own (zero-loss
config) or the embedded broker, then time one ingest service draining it into
a store that only counts (``null``), SQLite, or PostgreSQL
(``$PUMPOPS_TEST_POSTGRES_URL``, default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``).
The reference benchmark is ``benchmarks/ingest.py``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from pumpops.fleet import load_profiles
from pumpops.schema import ReadingBatch
from pumpops.settings import IngestSettings
from pumpops.store import BatchOutcome, TelemetryStore, open_store
from pumpops.telemetry import BrokerAddress, EmbeddedBroker, IngestService, decode

from .conftest import FLEET, OwnMosquitto, make_msg
from .fakes import MemoryStore


class NullStore(MemoryStore):
    """Counts, stores nothing: the ingest pipeline's own ceiling."""

    def write_batches(self, batches: Sequence[ReadingBatch]) -> list[BatchOutcome]:
        return [BatchOutcome(b.device_id, b.msg_id, "stored", b.n_readings) for b in batches]


def bench_decode() -> None:
    profiles = load_profiles()
    lookup = {d.device_id: d for d in FLEET}.get
    for rows in (1, 9, 60, 500):
        msgs = [make_msg(FLEET[i % 3], rows=rows, msg_id=f"m{i}", seed=i) for i in range(300)]
        payloads = [(m.topic, m.payload()) for m in msgs]
        now = time.time_ns() // 1000
        start = time.perf_counter()
        readings = 0
        for topic, payload in payloads:
            batch = decode(topic, payload, device_lookup=lookup, profiles=profiles, now_us=now).batch
            readings += batch.n_readings if batch is not None else 0
        dt = time.perf_counter() - start
        size = np.mean([len(p) for _, p in payloads])
        rate = f"{len(payloads) / dt:8.0f} msg/s {readings / dt:10.0f} readings/s"
        print(f"decode {rows:4d} rows (~{size:6.0f} B): {rate}")


def bench_backlog(address: BrokerAddress, store: TelemetryStore, n: int, label: str) -> None:
    prefix = f"bench-{uuid.uuid4().hex[:8]}/v1"
    settings = IngestSettings(client_id=f"bench-{uuid.uuid4().hex[:8]}", batch_max_messages=500)
    # one short run creates the session; the backlog then queues in the broker for it
    first = IngestService(store, address, settings=settings, topic_prefix=prefix).start()
    first.wait_ready()
    first.stop()
    base = time.time_ns() // 1_000_000 - 3 * 86_400_000
    msgs = [
        make_msg(
            FLEET[i % 3], rows=9, start_ms=base + (i // 3) * 9000, msg_id=f"m-{i}", prefix=prefix, seed=i % 50
        )
        for i in range(n)
    ]
    readings = sum(m.readings for m in msgs)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}")
    pub.username_pw_set("pumpops")
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect(address.host, address.port)
    pub.loop_start()
    for info in [pub.publish(m.topic, m.payload(), qos=1) for m in msgs]:
        info.wait_for_publish(120)
    pub.disconnect()
    pub.loop_stop()
    service = IngestService(store, address, settings=settings, topic_prefix=prefix).start()
    start = time.perf_counter()
    while service.stats().committed < n and time.perf_counter() - start < 600:
        time.sleep(0.01)
    dt = time.perf_counter() - start
    stats = service.stop()
    print(
        f"{label}: {n} msgs / {readings} readings in {dt:.2f} s = {n / dt:6.0f} msg/s, {readings / dt:8.0f} "
        f"readings/s; stored {stats.stored_messages}, duplicates {stats.duplicates}, "
        f"dead letters {stats.dead_letters}"
    )


def bench_postgres(address: BrokerAddress) -> None:
    import sqlalchemy as sa

    default = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    base = os.environ.get("PUMPOPS_TEST_POSTGRES_URL", default)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        with open_store(f"{base}?options=-csearch_path%3D{schema}") as store:
            store.upgrade()
            store.register_devices(FLEET)
            bench_backlog(address, store, 20_000, "mosquitto → PostgreSQL")
    finally:
        engine = sa.create_engine(base, poolclass=sa.NullPool)
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()


def main(which: Sequence[str]) -> None:
    which = set(which) or {"decode", "null", "sqlite", "postgres", "embedded"}
    if "decode" in which:
        bench_decode()
    if which & {"null", "sqlite", "postgres"}:
        broker = OwnMosquitto(Path(tempfile.mkdtemp()))
        broker.start()
        try:
            if "null" in which:
                bench_backlog(broker.address, NullStore(FLEET), 20_000, "mosquitto → null store")
            if "sqlite" in which:
                with open_store(f"sqlite:///{tempfile.mkdtemp()}/bench.db") as store:
                    store.upgrade()
                    store.register_devices(FLEET)
                    bench_backlog(broker.address, store, 20_000, "mosquitto → SQLite")
            if "postgres" in which:
                bench_postgres(broker.address)
        finally:
            broker.stop()
    if "embedded" in which:
        with EmbeddedBroker(port=0) as embedded:
            bench_backlog(embedded.address, NullStore(FLEET), 3_000, "embedded amqtt → null store")


if __name__ == "__main__":
    main(sys.argv[1:])
