"""Issue 13 rows 2, 6, 7 and 12 through the real Mosquitto (127.0.0.1:1883) into real SQLite and PostgreSQL.

The broker's access rules (``pumpops broker config``) let an identity publish
only under its own device's topics, so the hub takes the topic's device as the
sender and binds every message to it. Here the broker is the open system
Mosquitto, so a test can play the attacker who publishes *as another device*
would be refused by the broker: what reaches ingest is what a device whose
credentials were stolen could send. Each scenario is one row: what the
outsider sends, the reason the hub gives, and proof the genuine device is not
harmed (its messages stored, its state the newest). Every test has its own
topic prefix, client ids and database (a PostgreSQL schema of its own).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion

from pumpops.monitoring import MonitoringService
from pumpops.registry import EventSink
from pumpops.rollout import device_report
from pumpops.schema import TOPIC_OF_KIND, AgentMessage, encode_agent_message, with_msg_id
from pumpops.settings import IngestSettings, MonitoringSettings
from pumpops.store import TelemetryStore, open_store
from pumpops.telemetry import BrokerAddress, IngestService, IngestStats, build_topic

from .conftest import FLEET, make_msg, now_ms, wait_until

pytestmark = pytest.mark.mosquitto

POSTGRES_URL = os.environ.get(
    "PUMPOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ACME, NORD = FLEET[0], FLEET[1]  # acme-1 at site-a, nord-1 at site-b
MINUTE_MS = 60_000


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def hub_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TelemetryStore]:
    """A fresh, upgraded store with the test fleet registered (SQLite, or a PostgreSQL schema of its own)."""
    schema = None
    admin = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'hub.db'}"
    else:
        admin = sa.create_engine(POSTGRES_URL, poolclass=sa.NullPool)
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except sa.exc.OperationalError as exc:
            admin.dispose()
            if os.environ.get("CI") == "true":
                pytest.fail(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc.orig}")
            pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}")
        schema = f"pumpops_wire_{uuid.uuid4().hex[:16]}"
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    store = open_store(url)
    try:
        store.upgrade()
        store.register_devices(FLEET)
        yield store
    finally:
        store.close()
        if admin is not None:
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            admin.dispose()


class Publisher:
    """A bare MQTT client publishing at QoS 1, each publish confirmed by the broker."""

    def __init__(self, address: BrokerAddress) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-outsider-{uuid.uuid4().hex[:10]}",
            protocol=mqtt.MQTTv311,
        )
        self.client.connect(address.host, address.port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=10)
        assert info.is_published()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def publisher(mosquitto: BrokerAddress) -> Iterator[Publisher]:
    client = Publisher(mosquitto)
    yield client
    client.close()


class Hub:
    """Runs ingest against Mosquitto for one batch of publishes at a time (same client id: one session)."""

    def __init__(
        self,
        store: TelemetryStore,
        address: BrokerAddress,
        settings: IngestSettings,
        prefix: str,
        pub: Publisher,
    ) -> None:
        self.store, self.address, self.settings, self.prefix, self.pub = store, address, settings, prefix, pub

    def send(self, messages: list[tuple[str, bytes]]) -> IngestStats:
        with IngestService(
            self.store, self.address, settings=self.settings, topic_prefix=self.prefix
        ) as service:
            service.wait_ready()
            for topic, payload in messages:
                self.pub.publish(topic, payload)
            wait_until(lambda: service.stats().committed >= len(messages), timeout_s=60, what="all committed")
        assert service.failed is None
        return service.stats()

    def topic(self, device_id: str, kind: str, site: str) -> str:
        return build_topic(site, device_id, kind, prefix=self.prefix)  # type: ignore[arg-type]

    def reasons(self) -> list[str]:
        return sorted(d.reason for d in self.store.dead_letters(limit=1000))


@pytest.fixture
def hub(
    hub_store: TelemetryStore,
    mosquitto: BrokerAddress,
    ingest_settings: IngestSettings,
    prefix: str,
    publisher: Publisher,
) -> Hub:
    return Hub(hub_store, mosquitto, ingest_settings, prefix, publisher)


def envelope(
    device_id: str, seq: int, kind: str = "state", *, site: str, ts_ms: int | None = None, **body: object
) -> bytes:
    message = AgentMessage(
        device_id=device_id,
        site=site,
        kind=kind,  # type: ignore[arg-type]
        ts_ms=now_ms() - MINUTE_MS if ts_ms is None else ts_ms,
        agent_version="0.1.0",
        body=body or {"n": seq},
    )
    return with_msg_id(encode_agent_message(message), f"{device_id}:{seq}")


def agent_topic(hub: Hub, device_id: str, kind: str, site: str) -> str:
    return hub.topic(device_id, TOPIC_OF_KIND[kind], site)


# -- row 2: telemetry message ids another identity could pre-empt


def test_identity_telemetry_for_another_device_is_wrong_identity_and_preempts_nothing(hub: Hub) -> None:
    genuine = make_msg(ACME, prefix=hub.prefix, seed=1)  # msg id <device>-<first ts>-<rows>: predictable
    forged_for_acme = make_msg(ACME, msg_id=genuine.msg_id, prefix=hub.prefix, seed=2)
    nord_with_acmes_id = make_msg(NORD, msg_id=genuine.msg_id, prefix=hub.prefix, seed=3)
    stats = hub.send(
        [
            # nord-1's identity, on nord-1's topic, speaking for acme-1 with acme-1's next id
            (hub.topic(NORD.device_id, "telemetry", NORD.site), forged_for_acme.payload()),
            # nord-1 reusing acme-1's next id for its own readings: its own id space
            (nord_with_acmes_id.topic, nord_with_acmes_id.payload()),
        ]
    )
    assert (stats.stored_messages, stats.rejected_messages) == (1, 1)
    (letter,) = hub.store.dead_letters()
    # the dead letter names the sender (the topic's identity), the detail both devices
    assert (letter.reason, letter.device_id, letter.msg_id) == ("wrong_identity", "nord-1", genuine.msg_id)
    assert "device_id 'acme-1' in the payload" in letter.detail
    assert "only the identity of device 'nord-1' may publish" in letter.detail
    stats = hub.send([(genuine.topic, genuine.payload())])
    assert (stats.stored_messages, stats.id_conflicts) == (1, 0)  # the genuine message is not pre-empted
    assert hub.reasons() == ["wrong_identity"]
    stored = hub.store.query("acme-1")
    assert stored.ts_us.tolist() == [t * 1000 for t in genuine.ts_ms]  # the genuine readings, not the forged
    expected = make_msg(ACME, prefix=hub.prefix, seed=1).values
    assert not np.allclose(np.asarray(expected), np.asarray(forged_for_acme.values))
    assert len(hub.store.query("nord-1").ts_us) == len(nord_with_acmes_id.ts_ms)


# -- row 6: agent message ids (the next sequence numbers) another identity could pre-empt


def test_identity_agent_message_for_another_device_is_wrong_identity_and_preempts_nothing(hub: Hub) -> None:
    forged = envelope("acme-1", 5, "alarm", site=ACME.site, event="raised", alarm_id="forged")
    stats = hub.send(
        [
            (agent_topic(hub, "nord-1", "alarm", NORD.site), forged),  # nord-1's identity speaking for acme-1
            (
                agent_topic(hub, "nord-1", "alarm", ACME.site),
                forged,
            ),  # nord-1's device segment, acme-1's site
        ]
    )
    assert (stats.agent_messages, stats.rejected_messages) == (0, 2)
    assert hub.reasons() == ["wrong_identity", "wrong_identity"]
    assert {d.device_id for d in hub.store.dead_letters()} == {"nord-1"}  # the sender, from the topic
    genuine = envelope("acme-1", 5, "alarm", site=ACME.site, event="raised", alarm_id="acme-1-a5")
    stats = hub.send([(agent_topic(hub, "acme-1", "alarm", ACME.site), genuine)])
    assert (stats.agent_messages, stats.id_conflicts) == (1, 0)
    (stored,) = hub.store.agent_messages(device_id="acme-1")
    assert stored.body()["alarm_id"] == "acme-1-a5"
    assert hub.store.agent_messages(device_id="nord-1") == []


# -- rows 7 and 8: a forged state cannot become the device's state


def test_identity_forged_states_cannot_shadow_the_devices_real_state(hub: Hub) -> None:
    t0 = now_ms() - 30 * MINUTE_MS
    on = agent_topic(hub, "acme-1", "state", ACME.site)
    failed = {
        "health": "failed",
        "model_name": "acme-ansi-if",
        "model_version": 1,
        "desired_version": 1,
        "status": "detecting",
    }
    year_9999_ms = 253_402_300_799_000
    stats = hub.send(
        [
            (
                on,
                envelope("acme-1", 2**63 - 1, site=ACME.site, ts_ms=year_9999_ms, **failed),
            ),  # row 7 as reported
            (on, envelope("acme-1", 2**63 - 2, site=ACME.site, ts_ms=t0, **failed)),  # huge seq, normal time
            (on, envelope("acme-1", 900_000, site=ACME.site, ts_ms=t0, **failed)),  # within the bound: stored
        ]
    )
    assert (stats.agent_messages, stats.rejected_messages) == (1, 2)
    letters = {d.reason: d for d in hub.store.dead_letters()}
    assert set(letters) == {"future_timestamp", "seq_jump"}
    assert "ingest.max_future_skew_s" in letters["future_timestamp"].detail
    assert f"seq {2**63 - 2}" in letters["seq_jump"].detail
    assert (
        "highest seq 900000 stored" in letters["seq_jump"].detail
        or "highest seq 0" in letters["seq_jump"].detail
    )
    ok = {
        "health": "ok",
        "model_name": "acme-ansi-if",
        "model_version": 3,
        "desired_version": 3,
        "status": "detecting",
    }
    real = [
        (on, envelope("acme-1", seq, site=ACME.site, ts_ms=t0 + seq * 1000, **ok)) for seq in range(1, 24)
    ]
    stats = hub.send(real)
    assert stats.agent_messages == 23
    view = MonitoringService(hub.store, EventSink(hub.store), MonitoringSettings()).view()
    (acme,) = [d for d in view.devices if d.device_id == "acme-1"]
    assert (acme.health, acme.model_version, acme.healthy) == ("ok", "3", True)
    states = hub.store.agent_messages(device_id="acme-1", kind="state", limit=8)
    report = device_report("acme-1", states, [], version="3", previous_version="1", since_s=t0 / 1000 - 1)
    assert report is not None
    assert (report.installed_version, report.health, report.crash_loop) == ("3", "ok", False)


# -- row 12: depth and size limits are bad input, and ingest keeps going


def test_identity_deep_and_large_agent_messages_are_dead_lettered_and_ingest_keeps_running(hub: Hub) -> None:
    on = agent_topic(hub, "acme-1", "summary", ACME.site)
    good = json.loads(envelope("acme-1", 1, "summary", site=ACME.site))
    deep = json.dumps({**good, "msg_id": "acme-1:2", "body": {}}, separators=(",", ":")).replace(
        '"body":{}', '"body":{"x":' + '{"a":' * 900 + "1" + "}" * 900 + "}"
    )
    large = json.dumps({**good, "msg_id": "acme-1:3", "body": {"pad": "x" * 300_000}})
    stats = hub.send([(on, deep.encode()), (on, large.encode()), (on, json.dumps(good).encode())])
    assert (stats.agent_messages, stats.rejected_messages) == (1, 2)
    assert hub.reasons() == ["too_deep", "too_large"]
    assert [r.msg_id for r in hub.store.agent_messages()] == ["acme-1:1"]
    assert "internal_error" not in hub.reasons()


# -- replays: the same message again is a no-op, changed content a conflict, only within one device


def test_identity_replays_are_idempotent_and_conflict_only_within_the_device(hub: Hub) -> None:
    telemetry = make_msg(ACME, prefix=hub.prefix, seed=4)
    alarm = envelope("acme-1", 7, "alarm", site=ACME.site, event="raised", alarm_id="acme-1-a7")
    alarm_on = agent_topic(hub, "acme-1", "alarm", ACME.site)
    first = hub.send([(telemetry.topic, telemetry.payload()), (alarm_on, alarm)])
    assert (first.stored_messages, first.agent_messages) == (1, 1)
    changed = make_msg(ACME, msg_id=telemetry.msg_id, prefix=hub.prefix, seed=5)
    changed_alarm = envelope("acme-1", 7, "alarm", site=ACME.site, event="cleared", alarm_id="acme-1-a7")
    nord_same_id = make_msg(NORD, msg_id=telemetry.msg_id, prefix=hub.prefix, seed=6)
    again = hub.send(
        [
            (telemetry.topic, telemetry.payload()),  # a genuine replay, later
            (alarm_on, alarm),
            (telemetry.topic, changed.payload()),  # the same id with other content
            (alarm_on, changed_alarm),
            (nord_same_id.topic, nord_same_id.payload()),  # another device's own message, same id text
        ]
    )
    assert (again.duplicates, again.id_conflicts, again.stored_messages) == (2, 2, 1)
    assert hub.reasons() == ["msg_id_conflict", "msg_id_conflict"]
    assert {d.device_id for d in hub.store.dead_letters()} == {"acme-1"}
    assert len(hub.store.query("acme-1").ts_us) == len(telemetry.ts_ms)  # nothing written twice
    (kept,) = hub.store.agent_messages(device_id="acme-1")
    assert kept.body()["event"] == "raised"  # never overwritten
