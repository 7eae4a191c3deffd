"""The rollout service with the real store (SQLite, PostgreSQL) and the Mosquitto on 127.0.0.1:1883.

Agent ``state`` messages go through ``IngestService.process`` into the store,
as the hub's ingest would store them; the desired states are read back by
subscribing to the broker's retained messages. Each test has its own topic
prefix and clears its retained messages afterwards.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pumpops.fleet import Device
from pumpops.registry import EventSink
from pumpops.rollout import GatePolicy
from pumpops.rollout._service import MqttDesiredPublisher, RolloutService
from pumpops.schema import AgentMessage, encode_agent_message, with_msg_id
from pumpops.settings import IngestSettings
from pumpops.store import TelemetryStore, open_store
from pumpops.telemetry import BrokerAddress, IngestService, build_topic

POSTGRES_URL = os.environ.get(
    "PUMPOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MOSQUITTO = BrokerAddress("127.0.0.1", 1883)
T0 = time.time()  # the hub's clock starts now: ingest judges agent timestamps against it
GROUP = "g-int"
DEVICES = [Device(f"p-{i}", f"site-{i % 2}", "acme-ansi", GROUP) for i in range(4)]
SITE = {d.device_id: d.site for d in DEVICES}


def _port_open(address: BrokerAddress) -> bool:
    try:
        with socket.create_connection((address.host, address.port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def broker() -> BrokerAddress:
    if not _port_open(MOSQUITTO):
        if os.environ.get("CI"):
            pytest.fail("Mosquitto is not running on 127.0.0.1:1883")
        pytest.skip("Mosquitto is not running on 127.0.0.1:1883")
    return MOSQUITTO


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
        return
    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES_URL, poolclass=sa.NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        admin.dispose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL not reachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}")
    schema = f"pumpops_test_{uuid.uuid4().hex[:16]}"
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    admin.dispose()


class Retained:
    """A subscriber that keeps the newest retained desired message per device."""

    def __init__(self, address: BrokerAddress, prefix: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.desired: dict[str, dict[str, Any]] = {}
        self.topics: set[str] = set()
        self._lock = threading.Lock()
        self._prefix = prefix
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"test-retained-{uuid.uuid4().hex[:8]}"
        )
        self._client.on_message = self._on_message
        self._client.connect(address.host, address.port)
        self._client.subscribe(f"{prefix}/+/+/desired", qos=1)
        self._client.loop_start()

    def _on_message(self, client: Any, userdata: object, message: Any) -> None:
        with self._lock:
            self.topics.add(message.topic)
            if message.payload:
                self.desired[message.topic.split("/")[-2]] = json.loads(message.payload)

    def wait_for(self, expected: dict[str, int], timeout_s: float = 10.0) -> dict[str, int]:
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                seen = {d: int(doc["version"]) for d, doc in self.desired.items()}
            if seen == expected or time.monotonic() > deadline:
                return seen
            time.sleep(0.02)

    def clear(self) -> None:
        for topic in self.topics:  # an empty retained payload removes the retained message
            self._client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        self._client.loop_stop()
        self._client.disconnect()


class Hub:
    """The store, the ingest (``process`` only, no subscription) and a rollout service on one clock."""

    def __init__(self, url: str, broker: BrokerAddress, prefix: str, clock: list[float]) -> None:
        self.url, self.broker, self.prefix, self.clock = url, broker, prefix, clock
        self.store: TelemetryStore = open_store(url)
        self.store.upgrade()
        self.seq: dict[str, int] = {}
        self.publisher = MqttDesiredPublisher(broker)
        self.service = self._service()

    def _service(self) -> RolloutService:
        return RolloutService(
            self.store,
            self.publisher,
            events=EventSink(self.store, None, topic_prefix=self.prefix),
            actor="ops@test",
            topic_prefix=self.prefix,
            clock=lambda: self.clock[0],
        )

    def restart(self) -> None:
        """A new process: store, broker connection and service all new; nothing kept in memory."""
        self.publisher.close()
        self.store.close()
        self.store = open_store(self.url)
        self.store.upgrade()
        self.publisher = MqttDesiredPublisher(self.broker)
        self.service = self._service()

    def report(self, device_id: str, version: int, *, health: str = "ok", desired: int | None = None) -> None:
        """The agent's ``state`` message, stored through the ingest as it would arrive."""
        self.seq[device_id] = self.seq.get(device_id, 0) + 1
        body = {
            "status": "detecting",
            "model_name": "pumpops-skab",
            "model_version": version,
            "slot": "a",
            "health": health,
            "health_reasons": [],
            "last_update_error": None,
            "desired_version": None if desired is None else str(desired),
            "stale": False,
            "counts": {},
        }
        message = AgentMessage(
            device_id=device_id,
            site=SITE[device_id],
            kind="state",
            ts_ms=round(self.clock[0] * 1000),
            agent_version="0.1.0",
            body=body,
        )
        payload = with_msg_id(encode_agent_message(message), f"{device_id}:{self.seq[device_id]}")
        topic = build_topic(SITE[device_id], device_id, "state", prefix=self.prefix)
        ingest = IngestService(
            self.store,
            self.broker,
            settings=IngestSettings(client_id=f"test-{uuid.uuid4().hex[:8]}"),
            topic_prefix=self.prefix,
            now_us=lambda: round(self.clock[0] * 1e6),
        )
        assert ingest.process([(topic, payload)]).agent_messages == 1

    def close(self) -> None:
        self.publisher.close()
        self.store.close()


@pytest.fixture
def hub(store_url: str, broker: BrokerAddress) -> Iterator[tuple[Hub, Retained, list[float]]]:
    prefix = f"test-rollout-{uuid.uuid4().hex[:8]}/v1"
    clock = [T0]
    h = Hub(store_url, broker, prefix, clock)
    h.store.register_devices(DEVICES)
    for version in (1, 2):
        h.store.add_release(
            "pumpops-skab", version, GROUP, ["x86_64-ipc"], created_by="test", bundle_root="/tmp", record={}
        )
    retained = Retained(broker, prefix)
    yield h, retained, clock
    retained.clear()
    h.close()


def _tick(h: Hub) -> tuple[str, str, tuple[str, ...]]:
    (result,) = h.service.tick()
    assert result.error is None, result.error
    return result.before, result.after, result.actions


def test_rollout_passes_wave_one_survives_a_restart_and_rolls_back_a_failing_wave(
    hub: tuple[Hub, Retained, list[float]],
) -> None:
    h, retained, clock = hub
    for d in DEVICES:
        h.report(d.device_id, 1)
    policy = GatePolicy(min_soak_s=60, deadline_s=600, on_fail="rollback")
    rid = h.service.start("pumpops-skab/2", GROUP, [25, 100], policy, reason="integration")
    state = h.service.get(rid)
    assert state.previous_version == "1"  # what the devices reported
    wave1, wave2 = state.waves
    assert len(wave1) == 1
    assert retained.wait_for(dict.fromkeys(wave1, 2)) == dict.fromkeys(wave1, 2)
    assert retained.desired[wave1[0]]["rollout_id"] == rid

    # wave 1 installs and reports healthy; after the soak the gate passes
    clock[0] += 5
    h.report(wave1[0], 2, desired=2)
    clock[0] += 60
    assert _tick(h) == ("running", "running", ("rollout.wave_passed",))
    everyone = {d.device_id: 2 for d in DEVICES}
    assert retained.wait_for(everyone) == everyone

    # the hub restarts mid-rollout: a new service continues from the store
    h.restart()
    assert h.service.get(rid).current_wave == 1
    clock[0] += 5
    h.report(wave2[0], 2, desired=2)
    h.report(wave2[1], 1, health="rolled_back", desired=2)  # it crashed on 2 and went back
    clock[0] += 5
    assert _tick(h) == ("running", "rolling_back", ("rollout.rolling_back",))
    back = {d.device_id: 1 for d in DEVICES}
    assert retained.wait_for(back) == back

    # every sent device confirms the previous version: rolled back
    clock[0] += 5
    for d in DEVICES:
        h.report(d.device_id, 1, desired=1)
    clock[0] += 1
    assert _tick(h) == ("rolling_back", "rolled_back", ("rollout.rolled_back",))
    actions = [e.action for e in h.store.audit_entries(subject=f"rollout/{rid}")]
    assert actions == [
        "rollout.started",
        "rollout.wave_passed",
        "rollout.rolling_back",
        "rollout.rolled_back",
    ]
    assert [e.kind for e in h.store.events()][-4:] == actions
    row = h.store.get_rollout(rid)
    assert row is not None
    assert row.status == "rolled_back"
    assert h.service.current_version(GROUP) == "1"
    assert h.service.tick() == []


def test_rollout_waits_for_a_silent_wave_and_pause_resume_abort_reach_the_store(
    hub: tuple[Hub, Retained, list[float]],
) -> None:
    h, retained, clock = hub
    policy = GatePolicy(min_soak_s=0, deadline_s=600, on_fail="pause")
    rid = h.service.start("pumpops-skab/2", GROUP, [50, 100], policy, previous_version="1")
    clock[0] += 30
    assert _tick(h) == ("running", "running", ())  # nobody reported: the gate waits
    h.restart()
    assert h.service.pause(rid, reason="weekend").status == "paused"
    h.restart()
    assert h.service.resume(rid).status == "running"
    assert h.service.abort(rid, roll_back=True).status == "rolling_back"
    wave1 = h.service.get(rid).waves[0]
    assert retained.wait_for(dict.fromkeys(wave1, 1)) == dict.fromkeys(wave1, 1)
    stored = h.store.get_rollout(rid)
    assert stored is not None
    assert stored.status == "rolling_back"
