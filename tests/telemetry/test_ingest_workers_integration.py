"""Several ingest worker processes on one MQTT shared subscription, into one PostgreSQL schema.

Real parts: our own Mosquitto (zero-loss configuration, persistence), `pumpops
ingest --shared-group` processes, PostgreSQL. One worker is killed (SIGKILL)
mid-stream and started again with its client id: the broker redelivers what
it had not acknowledged (at least once) and the store keeps one copy
(idempotent), so every published message is stored exactly once, none is
dead-lettered, and the survivors kept working meanwhile.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pumpops.store import TelemetryStore, open_store
from pumpops.telemetry import BrokerAddress, PublishStats

from .conftest import OwnMosquitto, now_ms, wait_until
from .test_mqtt_integration import FLEET, _publish, _source, _stored

POSTGRES_URL = os.environ.get(
    "PUMPOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema on the test server (dropped afterwards)."""
    schema = f"t_workers_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL, poolclass=sa.NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        admin.dispose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc.orig}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}")
    try:
        yield f"{POSTGRES_URL}?schema={schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


def _worker(
    workspace: Path, db_url: str, address: BrokerAddress, prefix: str, client_id: str
) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        PUMPOPS_TOPIC_PREFIX=prefix,
        PUMPOPS_INGEST__BATCH_MAX_WAIT_S="0.02",
        PUMPOPS_INGEST__BATCH_MAX_MESSAGES="50",  # several commits per second: a kill lands between them
        PUMPOPS_INGEST__RECONNECT_MIN_S="0.05",
        PUMPOPS_INGEST__RECONNECT_MAX_S="0.5",
    )
    cmd = [sys.executable, "-m", "pumpops", "-w", str(workspace), "ingest", "--broker", address.url]
    cmd += ["--database-url", db_url, "--client-id", client_id, "--shared-group", "ingest"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _first_burst(store: TelemetryStore, address: BrokerAddress, prefix: str) -> PublishStats:
    """Re-publish a first burst (same ids) until it is stored: then some worker has subscribed.

    The same start each try, so the same message ids: a try stored late is a duplicate of the
    counted one, not extra messages (they once made the store hold 14 more than were counted).
    """
    start = now_ms() - 3 * 3_600_000 - 10 * 60_000
    for _ in range(30):
        warmup = _publish(address, prefix, _source(1, start_ms=start))
        try:
            wait_until(lambda w=warmup: _stored(store)[0] >= w.messages, timeout_s=1, what="a subscription")
        except AssertionError:
            continue
        return warmup
    raise AssertionError("no ingest worker subscribed within 30 tries")


@pytest.mark.postgres
@pytest.mark.mosquitto
def test_shared_subscription_workers_store_every_message_once_with_one_killed_mid_stream(
    own_mosquitto: OwnMosquitto, pg_url: str, tmp_path: Path, prefix: str
) -> None:
    workspace = tmp_path / "ws"
    subprocess.run([sys.executable, "-m", "pumpops", "init", str(workspace)], check=True, capture_output=True)
    address = own_mosquitto.address
    ids = [f"worker-{uuid.uuid4().hex[:6]}-{i}" for i in range(3)]
    with open_store(pg_url) as store:
        store.upgrade()
        store.register_devices(FLEET)
        workers = [_worker(workspace, pg_url, address, prefix, cid) for cid in ids]
        try:
            sent = [_first_burst(store, address, prefix)]
            publisher = threading.Thread(
                target=lambda: sent.append(_publish(address, prefix, _source(30), speed=400.0))
            )
            publisher.start()
            wait_until(lambda: _stored(store)[0] > sent[0].messages + 100, timeout_s=60, what="a first part")
            workers[0].send_signal(signal.SIGKILL)  # no goodbye: what it had not acknowledged stays queued
            workers[0].communicate(timeout=10)
            at_kill = _stored(store)[0]
            # the survivors keep storing while the killed worker is away
            wait_until(lambda: _stored(store)[0] > at_kill + 50, timeout_s=60, what="the survivors")
            workers[0] = _worker(workspace, pg_url, address, prefix, ids[0])
            publisher.join(120)
            messages, readings = sum(s.messages for s in sent), sum(s.readings for s in sent)
            assert at_kill < messages, "the kill came too late to test anything"
            wait_until(lambda: _stored(store)[0] >= messages, timeout_s=120, what="everything stored")
            assert _stored(store) == (messages, readings)
            assert store.dead_letters() == []
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            errors = [proc.communicate(timeout=60)[1].decode() for proc in workers]
    for proc, err in zip(workers[1:], errors[1:], strict=True):
        assert proc.returncode == 0, err


@pytest.mark.postgres
@pytest.mark.mosquitto
def test_shared_subscription_workers_still_dead_letter_bad_input_with_reasons(
    own_mosquitto: OwnMosquitto, pg_url: str, tmp_path: Path, prefix: str
) -> None:
    """Bad messages spread over two workers: each is dead-lettered once, with its reason, none stored."""
    import paho.mqtt.publish as mqtt_publish

    workspace = tmp_path / "ws"
    subprocess.run([sys.executable, "-m", "pumpops", "init", str(workspace)], check=True, capture_output=True)
    address = own_mosquitto.address
    device = FLEET[0]
    topic = f"{prefix}/{device.site}/{device.device_id}/telemetry"
    with open_store(pg_url) as store:
        store.upgrade()
        store.register_devices(FLEET)
        workers = [
            _worker(workspace, pg_url, address, prefix, f"worker-{uuid.uuid4().hex[:6]}") for _ in range(2)
        ]
        try:
            warmup = _first_burst(store, address, prefix)
            bad = [b"{not json", b'{"schema": "other/9"}', b"[]", b'{"schema": "pumpops.telemetry/1"}'] * 5
            mqtt_publish.multiple(
                [{"topic": topic, "payload": p, "qos": 1} for p in bad],
                hostname=address.host,
                port=address.port,
            )
            wait_until(lambda: len(store.dead_letters()) >= len(bad), timeout_s=60, what="the dead letters")
            letters = store.dead_letters()
            assert _stored(store)[0] == warmup.messages
        finally:
            for proc in workers:
                proc.send_signal(signal.SIGTERM)
            for proc in workers:
                proc.communicate(timeout=60)
    assert len(letters) == len(bad)
    reasons = sorted(letter.reason for letter in letters)
    assert reasons == sorted(["malformed_json"] * 5 + ["wrong_schema"] * 10 + ["missing_field"] * 5)
    assert all(letter.detail for letter in letters)


@pytest.mark.mosquitto
def test_cli_ingest_workers_pool_restarts_a_killed_worker_and_stores_everything_once(
    own_mosquitto: OwnMosquitto, tmp_path: Path, prefix: str
) -> None:
    """`pumpops ingest --workers 2`: one worker SIGKILLed mid-stream is started again with its id."""
    import psutil

    workspace = tmp_path / "ws"
    subprocess.run([sys.executable, "-m", "pumpops", "init", str(workspace)], check=True, capture_output=True)
    address = own_mosquitto.address
    db_url = f"sqlite:///{workspace / 'pumpops.db'}"
    env = dict(os.environ, PUMPOPS_TOPIC_PREFIX=prefix, PUMPOPS_INGEST__BATCH_MAX_WAIT_S="0.02")
    cmd = [sys.executable, "-m", "pumpops", "-w", str(workspace), "ingest", "--broker", address.url]
    cmd += ["--client-id", f"pool-{uuid.uuid4().hex[:6]}", "--workers", "2"]
    with open_store(db_url) as store:
        store.register_devices(FLEET)
        pool = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            sent = [_first_burst(store, address, prefix)]
            wait_until(lambda: len(psutil.Process(pool.pid).children()) == 2, what="two workers")
            first_pids = {p.pid for p in psutil.Process(pool.pid).children()}
            publisher = threading.Thread(
                target=lambda: sent.append(_publish(address, prefix, _source(30), speed=400.0))
            )
            publisher.start()
            wait_until(lambda: _stored(store)[0] > sent[0].messages + 100, timeout_s=60, what="a first part")
            victim = psutil.Process(pool.pid).children()[0]
            victim.send_signal(signal.SIGKILL)
            wait_until(
                lambda: {p.pid for p in psutil.Process(pool.pid).children()} - first_pids != set(),
                timeout_s=30,
                what="the pool to start the killed worker again",
            )
            publisher.join(120)
            messages, readings = sum(s.messages for s in sent), sum(s.readings for s in sent)
            wait_until(lambda: _stored(store)[0] >= messages, timeout_s=120, what="everything stored")
            assert _stored(store) == (messages, readings)
            assert store.dead_letters() == []
        finally:
            pool.send_signal(signal.SIGTERM)
            _, err = pool.communicate(timeout=90)
    assert pool.returncode == 0, err.decode()
    assert "1 restart(s)" in err.decode()


def test_cli_ingest_workers_needs_a_real_broker(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    subprocess.run([sys.executable, "-m", "pumpops", "init", str(workspace)], check=True, capture_output=True)
    done = subprocess.run(
        [sys.executable, "-m", "pumpops", "-w", str(workspace), "ingest", "--workers", "2"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "no shared subscriptions" in done.stderr.decode()


def test_worker_pool_restarts_a_dead_worker_with_the_same_command_and_stops_the_rest() -> None:
    """Pure process supervision: worker 1 exits at once and is started again with its own command line."""
    from pumpops.telemetry import WorkerPool

    started: list[list[str]] = []

    def popen(cmd: object) -> subprocess.Popen[bytes]:
        started.append(list(cmd))  # type: ignore[call-overload]
        return subprocess.Popen(list(cmd))  # type: ignore[call-overload]

    def command(i: int) -> list[str]:
        return ["sleep", "30"] if i == 0 else ["true", f"worker-{i}"]

    stop = threading.Event()
    pool = WorkerPool(command=command, size=2, restart_delay_s=0.05, grace_s=5, popen=popen)
    timer = threading.Timer(1.5, stop.set)
    timer.start()
    restarts = pool.run(stop)
    assert restarts >= 2
    assert started[0] == ["sleep", "30"]
    assert all(cmd == ["true", "worker-1"] for cmd in started[1:])
    assert started.count(["sleep", "30"]) == 1  # the live worker was never restarted
