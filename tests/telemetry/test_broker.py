"""Broker URLs, and what the embedded broker (amqtt) keeps and loses — measured, as documented."""

from __future__ import annotations

import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from pumpops.errors import BrokerError, ConfigError
from pumpops.telemetry import BrokerAddress, EmbeddedBroker, parse_broker_url

from .conftest import free_port, wait_until


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("embedded", None),
        ("mqtt://127.0.0.1:1883", BrokerAddress("127.0.0.1", 1883)),
        ("mqtt://broker.example", BrokerAddress("broker.example", 1883)),
        ("mqtts://broker.example", BrokerAddress("broker.example", 8883, tls=True)),
        ("mqtt://h:2000/", BrokerAddress("h", 2000)),
    ],
)
def test_parse_broker_url_accepts(url: str, expected: BrokerAddress | None) -> None:
    assert parse_broker_url(url) == expected


@pytest.mark.parametrize(
    "url", ["", "Embedded", "http://h:1", "mqtt://h:99999", "mqtt://:1883", "mqtt://h:1/x"]
)
def test_parse_broker_url_rejects(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_broker_url(url)


def _client(port: int, client_id: str, *, clean: bool, username: str | None = "pumpops") -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean, protocol=mqtt.MQTTv311
    )
    if username:
        client.username_pw_set(username)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


class _Inbox:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.payloads: list[bytes] = []

    def __call__(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.payloads.append(msg.payload)


def _subscribe(
    port: int, client_id: str, topic: str, inbox: _Inbox, *, manual_ack: bool = False
) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False, protocol=mqtt.MQTTv311
    )
    client.username_pw_set("pumpops")
    client.manual_ack_set(manual_ack)
    client.on_message = inbox
    subscribed = threading.Event()
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert subscribed.wait(5)
    return client


def test_embedded_broker_picks_a_free_port_and_stops() -> None:
    with EmbeddedBroker(port=0) as broker:
        assert broker.port > 0
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        client = _client(broker.port, f"t-{uuid.uuid4().hex}", clean=True)
        client.disconnect()
        client.loop_stop()
    with pytest.raises(BrokerError):
        _ = broker.port


def test_embedded_broker_port_in_use_is_a_clear_error(embedded_broker: EmbeddedBroker) -> None:
    with pytest.raises(BrokerError, match="cannot start the embedded broker"):
        EmbeddedBroker(port=embedded_broker.port).start()


def test_embedded_broker_queues_qos1_for_a_disconnected_persistent_session(
    embedded_broker: EmbeddedBroker,
) -> None:
    port, topic, sub_id = embedded_broker.port, f"t-{uuid.uuid4().hex}/x", f"sub-{uuid.uuid4().hex}"
    inbox = _Inbox()
    sub = _subscribe(port, sub_id, topic, inbox)
    sub.disconnect()
    sub.loop_stop()
    pub = _client(port, f"pub-{uuid.uuid4().hex}", clean=True)
    for i in range(20):
        pub.publish(topic, f"m{i}".encode(), qos=1).wait_for_publish(5)
    sub = _subscribe(port, sub_id, topic, inbox)
    wait_until(lambda: len(inbox.payloads) == 20, timeout_s=10, what="queued messages")
    assert inbox.payloads == [f"m{i}".encode() for i in range(20)]
    for c in (sub, pub):
        c.disconnect()
        c.loop_stop()


def test_embedded_broker_loses_unacknowledged_messages_when_the_subscriber_drops(
    embedded_broker: EmbeddedBroker,
) -> None:
    """A documented limit of amqtt: in-flight QoS 1 messages are not resent to the resumed session."""
    port, topic, sub_id = embedded_broker.port, f"t-{uuid.uuid4().hex}/x", f"sub-{uuid.uuid4().hex}"
    inbox = _Inbox()
    sub = _subscribe(port, sub_id, topic, inbox, manual_ack=True)  # never acknowledges
    pub = _client(port, f"pub-{uuid.uuid4().hex}", clean=True)
    for i in range(3):
        pub.publish(topic, f"m{i}".encode(), qos=1).wait_for_publish(5)
    wait_until(lambda: len(inbox.payloads) == 3, timeout_s=5, what="delivery")
    sub.loop_stop()
    sub.socket().close()  # the subscriber dies without acknowledging
    time.sleep(1.5)
    again = _Inbox()
    sub2 = _subscribe(port, sub_id, topic, again)
    time.sleep(1.5)
    assert again.payloads == []  # Mosquitto would deliver m0..m2 again (see test_mqtt_integration)
    for c in (sub2, pub):
        c.disconnect()
        c.loop_stop()


def test_embedded_broker_free_port_helper_is_usable() -> None:
    port = free_port()
    with EmbeddedBroker(port=port) as broker:
        assert broker.port == port
