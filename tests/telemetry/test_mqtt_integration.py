"""Zero loss through real brokers into the real store (SQLite): exactly once, across restarts.

- publish N batches → all stored exactly once (embedded broker and Mosquitto);
- the ingest process is killed (SIGKILL) mid-stream and restarted: its persistent
  session makes the broker deliver everything again that was not acknowledged,
  and the store stores it once (Mosquitto; the embedded broker drops in-flight
  messages of a dead subscriber — see test_broker — so for it the restart
  happens between bursts);
- the broker is restarted (our own Mosquitto process with persistence): ingest
  reconnects with backoff and nothing is lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pumpops.settings import IngestSettings
from pumpops.sim import Scenario, build_fleet
from pumpops.sources import SimulatorSource
from pumpops.store import TelemetryStore, open_store
from pumpops.telemetry import BrokerAddress, IngestService, Publisher, PublishStats

from .conftest import OwnMosquitto, now_ms, wait_until

FLEET = build_fleet(6, seed=11)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'pumpops.db'}"


@pytest.fixture
def sql_store(db_url: str) -> Iterator[TelemetryStore]:
    with open_store(db_url) as store:
        store.upgrade()
        store.register_devices(FLEET)
        yield store


def _source(minutes: float, *, offset_min: float = 0.0, start_ms: int | None = None) -> SimulatorSource:
    """Simulated readings of the fleet, ending before now (so none is in the future).

    The messages' ids follow from their times: the same ``start_ms`` gives the same ids.
    """
    start = now_ms() - 3 * 3_600_000 + int(offset_min * 60_000) if start_ms is None else start_ms
    return SimulatorSource(
        Scenario(devices=FLEET, start_ms=start, duration_s=minutes * 60, seed=11), chunk_s=20
    )


def _publish(address: BrokerAddress, prefix: str, source: SimulatorSource, **kw: object) -> PublishStats:
    with Publisher(
        address,
        client_id=f"test-pub-{uuid.uuid4().hex[:10]}",
        sites={d.device_id: d.site for d in FLEET},
        topic_prefix=prefix,
        max_rows_per_message=20,
    ) as pub:
        return pub.run(source, **kw)  # type: ignore[arg-type]


def _stored(store: TelemetryStore) -> tuple[int, int]:
    counts = store.counts()
    return counts["messages"], counts["readings"]


def test_mqtt_publish_batches_all_stored_exactly_once(
    broker_address: BrokerAddress, sql_store: TelemetryStore, ingest_settings: IngestSettings, prefix: str
) -> None:
    with IngestService(sql_store, broker_address, settings=ingest_settings, topic_prefix=prefix) as svc:
        svc.wait_ready()
        sent = _publish(broker_address, prefix, _source(10))
        wait_until(lambda: svc.stats().committed >= sent.messages, timeout_s=60, what="all committed")
        stats = svc.stats()
    assert sent.messages > 100
    assert _stored(sql_store) == (sent.messages, sent.readings)
    assert (stats.stored_messages, stats.duplicates, stats.dead_letters) == (sent.messages, 0, 0)
    assert sql_store.dead_letters() == []


def test_mqtt_ingest_restart_between_bursts_gets_what_was_published_meanwhile(
    broker_address: BrokerAddress, sql_store: TelemetryStore, ingest_settings: IngestSettings, prefix: str
) -> None:
    first = IngestService(sql_store, broker_address, settings=ingest_settings, topic_prefix=prefix).start()
    first.wait_ready()
    a = _publish(broker_address, prefix, _source(4))
    wait_until(lambda: first.stats().committed >= a.messages, what="burst A")
    first.stop()
    b = _publish(broker_address, prefix, _source(4, offset_min=4))  # nobody is listening: the session queues
    second = IngestService(sql_store, broker_address, settings=ingest_settings, topic_prefix=prefix).start()
    try:
        wait_until(lambda: _stored(sql_store)[0] >= a.messages + b.messages, timeout_s=60, what="burst B")
        assert second.stats().sessions_lost == 0  # the broker kept our session
    finally:
        second.stop()
    assert _stored(sql_store) == (a.messages + b.messages, a.readings + b.readings)


def _ingest_process(
    workspace: Path, address: BrokerAddress, prefix: str, client_id: str
) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        PUMPOPS_TOPIC_PREFIX=prefix,
        PUMPOPS_INGEST__BATCH_MAX_WAIT_S="0.02",
        PUMPOPS_INGEST__RECONNECT_MIN_S="0.05",
        PUMPOPS_INGEST__RECONNECT_MAX_S="0.5",
    )
    cmd = [
        sys.executable,
        "-m",
        "pumpops",
        "-w",
        str(workspace),
        "ingest",
        "--broker",
        address.url,
        "--client-id",
        client_id,
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _until_subscribed(store: TelemetryStore, address: BrokerAddress, prefix: str) -> PublishStats:
    """Publish a first burst until it is stored: then the subscription, and so the session, exists.

    (What is published before a client id ever subscribed is delivered to nobody.)
    The same burst is re-sent with the same message ids, so it is stored once.
    """
    deadline = time.monotonic() + 30
    while True:
        warmup = _publish(address, prefix, _source(1, offset_min=-10))
        try:
            wait_until(
                lambda w=warmup: _stored(store)[0] >= w.messages, timeout_s=1, what="ingest to subscribe"
            )
            return warmup
        except AssertionError:
            if time.monotonic() > deadline:
                raise


@pytest.mark.mosquitto
def test_mqtt_ingest_killed_mid_stream_loses_and_duplicates_nothing(
    mosquitto: BrokerAddress, tmp_path: Path, prefix: str, client_id: str
) -> None:
    workspace = tmp_path / "ws"
    subprocess.run([sys.executable, "-m", "pumpops", "init", str(workspace)], check=True, capture_output=True)
    with open_store(f"sqlite:///{workspace / 'pumpops.db'}") as store:
        store.register_devices(FLEET)
        ingest = _ingest_process(workspace, mosquitto, prefix, client_id)
        try:
            warmup = _until_subscribed(store, mosquitto, prefix)
            sent: list[PublishStats] = [warmup]
            # ~600 messages in 3 s (under the 1,000 the system Mosquitto queues per client)
            publisher = threading.Thread(
                target=lambda: sent.append(_publish(mosquitto, prefix, _source(25), speed=500.0))
            )
            publisher.start()
            wait_until(lambda: _stored(store)[0] > warmup.messages + 100, timeout_s=30, what="a first part")
            ingest.send_signal(signal.SIGKILL)  # mid-stream, no goodbye: unacknowledged messages stay queued
            ingest.communicate(timeout=10)
            at_kill = _stored(store)[0]
            ingest = _ingest_process(workspace, mosquitto, prefix, client_id)
            publisher.join(60)
            messages, readings = sum(s.messages for s in sent), sum(s.readings for s in sent)
            assert at_kill < messages, "the kill came too late to test anything"
            wait_until(lambda: _stored(store)[0] >= messages, timeout_s=60, what="everything stored")
            assert _stored(store) == (messages, readings)
            assert store.dead_letters() == []
        finally:
            ingest.send_signal(signal.SIGTERM)
            _, err = ingest.communicate(timeout=30)
    assert ingest.returncode == 0, err.decode()


def test_mqtt_broker_restart_ingest_reconnects_and_nothing_is_lost(
    own_mosquitto: OwnMosquitto, sql_store: TelemetryStore, ingest_settings: IngestSettings, prefix: str
) -> None:
    address = own_mosquitto.address
    total = []
    svc = IngestService(sql_store, address, settings=ingest_settings, topic_prefix=prefix).start()
    try:
        svc.wait_ready()
        total.append(_publish(address, prefix, _source(5)))
        wait_until(lambda: svc.stats().committed >= total[0].messages, what="part 1")

        # the broker restarts while ingest runs: ingest must notice, back off and reconnect
        own_mosquitto.stop()
        wait_until(lambda: not svc.stats().connected, what="ingest to notice the broker is gone")
        own_mosquitto.start()
        wait_until(lambda: svc.stats().connected, timeout_s=30, what="ingest to reconnect")
        assert svc.stats().sessions_lost == 1  # only the first connection found no session
        total.append(_publish(address, prefix, _source(5, offset_min=5)))
        wait_until(lambda: _stored(sql_store)[0] >= total[0].messages + total[1].messages, what="part 2")
    finally:
        svc.stop()

    # messages queued for a stopped ingest survive a broker restart (persistence)
    total.append(_publish(address, prefix, _source(5, offset_min=10)))
    own_mosquitto.stop()
    own_mosquitto.start()
    with IngestService(sql_store, address, settings=ingest_settings, topic_prefix=prefix) as again:
        want = sum(t.messages for t in total)
        wait_until(lambda: _stored(sql_store)[0] >= want, timeout_s=60, what="part 3 after the restart")
        assert again.stats().sessions_lost == 0
    assert _stored(sql_store) == (want, sum(t.readings for t in total))
    assert sql_store.dead_letters() == []


def test_mqtt_store_outage_longer_than_a_batch_redelivers_after_ingest_restart(
    own_mosquitto: OwnMosquitto, ingest_settings: IngestSettings, prefix: str
) -> None:
    """Ingest gives up on a store that stays down; nothing was acknowledged, so nothing is lost."""
    from .fakes import MemoryStore

    down = MemoryStore(FLEET)
    down.fail_writes = 10**9
    address = own_mosquitto.address
    svc = IngestService(down, address, settings=ingest_settings, topic_prefix=prefix).start()
    svc.wait_ready()
    sent = _publish(address, prefix, _source(3))
    wait_until(lambda: svc.stats().received >= sent.messages, what="receipt")
    stats = svc.stop(timeout_s=1.0)
    assert stats.acked == 0
    assert down.messages == {}
    up = MemoryStore(FLEET)
    with IngestService(up, address, settings=ingest_settings, topic_prefix=prefix) as svc2:
        wait_until(lambda: len(up.messages) >= sent.messages, what="redelivery")
        # the counters are added right after the store's write, on the writer thread: wait for them too
        wait_until(lambda: svc2.stats().stored_messages >= sent.messages, what="counted")
        assert svc2.stats().stored_messages == sent.messages


def test_mqtt_shared_subscription_splits_messages_between_workers(
    own_mosquitto: OwnMosquitto, sql_store: TelemetryStore, ingest_settings: IngestSettings, prefix: str
) -> None:
    address = own_mosquitto.address
    workers = [
        IngestService(
            sql_store,
            address,
            settings=ingest_settings.model_copy(
                update={"client_id": f"{ingest_settings.client_id}-{i}", "shared_group": "ingest"}
            ),
            topic_prefix=prefix,
        ).start()
        for i in range(2)
    ]
    try:
        for worker in workers:
            worker.wait_ready()
        sent = _publish(address, prefix, _source(10))
        wait_until(lambda: sum(w.stats().committed for w in workers) >= sent.messages, what="both workers")
        shares = [w.stats().stored_messages for w in workers]
    finally:
        for worker in workers:
            worker.stop()
    assert sum(shares) == sent.messages
    assert min(shares) > 0  # each got a part
    assert _stored(sql_store) == (sent.messages, sent.readings)
