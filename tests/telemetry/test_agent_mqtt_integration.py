"""Agent messages through the real Mosquitto on 127.0.0.1:1883 into the real store (SQLite): each stored once.

The agent's outbox resends whatever the broker did not acknowledge, so the hub
sees the same message ids again, out of order, and sometimes garbage: every
message must be stored once, listed in seq order per device, and every bad one
dead-lettered with its reason. Each test has its own topic prefix.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from pumpops.schema import TOPIC_OF_KIND, AgentMessage, encode_agent_message, with_msg_id
from pumpops.settings import IngestSettings
from pumpops.store import TelemetryStore, open_store
from pumpops.telemetry import BrokerAddress, IngestService, build_topic

from .conftest import now_ms, wait_until

pytestmark = pytest.mark.mosquitto

KINDS = ("alarm", "summary", "drift", "state")
DEVICES = {"d-1": "site-a", "d-2": "site-b"}
SEQS = range(1, 13)  # 9 < 10 < 11: the order must be numeric, not textual


@pytest.fixture
def sql_store(tmp_path: Path) -> Iterator[TelemetryStore]:
    with open_store(f"sqlite:///{tmp_path / 'hub.db'}") as store:
        store.upgrade()  # no device registered: agents may report before registration
        yield store


class Agentish:
    """A bare MQTT client publishing as the agents would (QoS 1), each publish confirmed by the broker."""

    def __init__(self, address: BrokerAddress) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-agent-{uuid.uuid4().hex[:10]}",
            protocol=mqtt.MQTTv311,
        )
        self.client.connect(address.host, address.port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=10)
        assert info.is_published()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def agentish(mosquitto: BrokerAddress) -> Iterator[Agentish]:
    client = Agentish(mosquitto)
    yield client
    client.close()


def envelope(device_id: str, seq: int, kind: str, **body: object) -> bytes:
    message = AgentMessage(
        device_id=device_id,
        site=DEVICES.get(device_id, "site-a"),
        kind=kind,  # type: ignore[arg-type]
        ts_ms=now_ms() - 60_000 + seq,
        agent_version="0.1.0",
        body=body or {"n": seq},
    )
    return with_msg_id(encode_agent_message(message), f"{device_id}:{seq}")


def topic(prefix: str, device_id: str, kind: str, site: str | None = None) -> str:
    return build_topic(site or DEVICES[device_id], device_id, TOPIC_OF_KIND[kind], prefix=prefix)  # type: ignore[arg-type]


def test_agent_messages_resent_out_of_order_are_stored_once_in_seq_order(
    mosquitto: BrokerAddress,
    agentish: Agentish,
    sql_store: TelemetryStore,
    ingest_settings: IngestSettings,
    prefix: str,
) -> None:
    good = [
        (topic(prefix, device, KINDS[seq % 4]), envelope(device, seq, KINDS[seq % 4]))
        for device in DEVICES
        for seq in SEQS
    ]
    rng = random.Random(6)
    first, resent = good[:], good[:]
    rng.shuffle(first)  # out of order
    rng.shuffle(resent)  # and everything again, as an outbox whose acks were lost would
    reused = (
        topic(prefix, "d-1", "summary"),
        envelope("d-1", 1, "summary", n=-1),
    )  # d-1:1 with other content
    bad = [
        (topic(prefix, "d-1", "alarm"), b"{not json"),
        (topic(prefix, "d-1", "state"), envelope("d-1", 99, "alarm")),  # kind and topic disagree
        (topic(prefix, "d-2", "alarm", site="site-a"), envelope("d-2", 98, "alarm")),  # another site's topic
        (
            topic(prefix, "d-1", "drift"),
            json.dumps({**json.loads(envelope("d-1", 0, "drift")), "msg_id": ""}).encode(),
        ),
        (topic(prefix, "d-2", "summary"), envelope("d-2", 97, "summary").replace(b'"n":97', b'"n":NaN')),
    ]
    with IngestService(sql_store, mosquitto, settings=ingest_settings, topic_prefix=prefix) as service:
        service.wait_ready()
        for t, payload in [*first, *bad[:2], *resent, reused, *bad[2:]]:
            agentish.publish(t, payload)
        total = 2 * len(good) + 1 + len(bad)
        wait_until(lambda: service.stats().committed >= total, timeout_s=60, what="all committed")
    stats = service.stats()  # after stop(): the last acknowledgements are sent
    assert (stats.agent_messages, stats.duplicates, stats.id_conflicts) == (len(good), len(good), 1)
    assert stats.rejected_messages == len(bad)
    assert stats.acked == total  # acknowledged only once committed
    for device in DEVICES:
        stored = sql_store.agent_messages(device_id=device)
        assert [r.seq for r in stored] == list(SEQS)
        assert [r.kind for r in stored] == [KINDS[seq % 4] for seq in SEQS]
        assert all(r.body() == {"n": r.seq} for r in stored)  # the first content of d-1:1 was kept
    assert len(sql_store.agent_messages()) == len(good)
    letters = sql_store.dead_letters()
    assert sorted(d.reason for d in letters) == sorted(
        ["malformed_json", "wrong_topic", "wrong_topic", "missing_msg_id", "invalid_field", "msg_id_conflict"]
    )
    assert {d.topic for d in letters} == {t for t, _ in [*bad, reused]}
    assert sql_store.counts()["messages"] == 0  # nothing went to the telemetry ledger


def test_agent_retained_state_delivered_again_to_a_new_subscriber_is_a_duplicate(
    mosquitto: BrokerAddress,
    agentish: Agentish,
    sql_store: TelemetryStore,
    ingest_settings: IngestSettings,
    prefix: str,
) -> None:
    state_topic = topic(prefix, "d-1", "state")
    agentish.publish(state_topic, envelope("d-1", 5, "state", status="running"), retain=True)
    try:
        for attempt in range(2):  # a fresh session each time: the broker hands the retained state over again
            settings = ingest_settings.model_copy(
                update={"client_id": f"{ingest_settings.client_id}-{attempt}"}
            )
            with IngestService(sql_store, mosquitto, settings=settings, topic_prefix=prefix) as service:
                service.wait_ready()
                wait_until(
                    lambda s=service: s.stats().committed >= 1, timeout_s=20, what="the retained state"
                )
                stats = service.stats()
            assert (stats.agent_messages, stats.duplicates) == ((1, 0) if attempt == 0 else (0, 1))
    finally:
        agentish.publish(state_topic, b"", retain=True)  # clear the retained message
    (stored,) = sql_store.agent_messages()
    assert (stored.msg_id, stored.kind, stored.body()) == ("d-1:5", "state", {"status": "running"})
