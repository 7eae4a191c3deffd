"""The MQTT adapter: options make a configured client; a Connection publishes, confirms, subscribes."""

from __future__ import annotations

import logging
import os
import queue
import random
import socket
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from pumpops.errors import BrokerError
from pumpops.mqtt import (
    Backoff,
    ClientOptions,
    Connection,
    DrivenConnection,
    LastWill,
    Message,
    backoff_delay,
    make_client,
)

MOSQUITTO = ("127.0.0.1", 1883)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def mosquitto() -> tuple[str, int]:
    if not _port_open(*MOSQUITTO):
        if os.environ.get("CI"):
            pytest.fail("Mosquitto is not running on 127.0.0.1:1883 (.ci/run should have started it)")
        pytest.skip("Mosquitto is not running on 127.0.0.1:1883")
    return MOSQUITTO


def _topic() -> str:
    return f"pumpops-test/mqtt/{uuid.uuid4().hex[:12]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_make_client_applies_session_and_protocol_options() -> None:
    client = make_client(ClientOptions(client_id="c-1", clean_session=False, manual_ack=True))
    assert client._client_id == b"c-1"  # paho keeps no public getter
    assert client._clean_session is False
    assert client._manual_ack is True
    assert client._username == b"pumpops"
    v5 = make_client(ClientOptions(client_id="c-5", protocol="5", username=None))
    assert v5._protocol == mqtt.MQTTv5
    assert v5._username is None


def test_make_client_sets_the_last_will() -> None:
    client = make_client(ClientOptions(client_id="c-w", last_will=LastWill("a/b", b"gone", retain=True)))
    assert client._will_topic == b"a/b"
    assert client._will_payload == b"gone"
    assert client._will_retain is True


def test_backoff_is_the_jittered_exponential_delay() -> None:
    backoff = Backoff(0.5, 4.0, random.Random(3))
    delays = [backoff.next_delay() for _ in range(6)]
    assert all(0.5 <= d <= 4.0 for d in delays)
    assert delays[-1] >= 2.0  # the ceiling reached 4 s; draws are in its upper half
    backoff.reset()
    assert backoff.next_delay() == 0.5
    assert backoff_delay(10, 1.0, 30.0, 1.0) == 30.0


def test_connect_to_nothing_is_a_broker_error() -> None:
    conn = Connection("127.0.0.1", _free_port(), ClientOptions(client_id="c-none"))
    with pytest.raises(BrokerError, match="cannot connect"):
        conn.connect(1.0)
    assert not conn.connected


@pytest.mark.mosquitto
@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_publish_confirmed_reaches_a_subscriber(mosquitto: tuple[str, int], protocol: str) -> None:
    topic = _topic()
    got: queue.Queue[bytes] = queue.Queue()

    def on_message(message: Message) -> None:
        got.put(bytes(message.payload))

    options = ClientOptions(client_id=f"sub-{uuid.uuid4().hex[:8]}", protocol=protocol)  # type: ignore[arg-type]
    sub = Connection(*mosquitto, options, subscriptions=(topic,), on_message=on_message).connect(5.0)
    pub = Connection(*mosquitto, ClientOptions(client_id=f"pub-{uuid.uuid4().hex[:8]}")).connect(5.0)
    try:
        assert sub.wait_subscribed(5.0)
        assert pub.publish_confirmed(topic, b"hello", timeout_s=5.0)
        assert got.get(timeout=5.0) == b"hello"
        info = pub.publish(topic, b"again")
        pub.wait_published([(topic, info)], 5.0)
        assert got.get(timeout=5.0) == b"again"
    finally:
        pub.close()
        sub.close()
    assert not pub.connected
    pub.close()  # idempotent


def test_publish_confirmed_is_false_while_the_link_is_down() -> None:
    conn = Connection("127.0.0.1", _free_port(), ClientOptions(client_id="c-down"))
    assert conn.publish_confirmed("a/b", b"x", timeout_s=0.1) is False


def test_driven_connection_retries_with_backoff_until_stopped(caplog: pytest.LogCaptureFixture) -> None:
    stop = threading.Event()
    lost: list[bool] = []
    conn = DrivenConnection(
        "127.0.0.1",
        _free_port(),
        ClientOptions(client_id="c-driven-none", clean_session=False),
        backoff=Backoff(0.05, 0.1, random.Random(1)),
        on_connect=lambda session_present: None,
        on_message=lambda message: None,
        on_lost=lambda: lost.append(True),
    )
    thread = threading.Thread(target=conn.run, args=(stop,), kwargs={"drain": lambda: False})
    with caplog.at_level(logging.WARNING, logger="pumpops.mqtt._driven"):
        thread.start()
        time.sleep(0.4)
        stop.set()
        thread.join(5.0)
    assert not thread.is_alive()
    assert caplog.text.count("cannot reach the broker") >= 2
    assert not conn.connected
    assert lost == [True]  # once, when run() returned


@pytest.mark.mosquitto
def test_driven_connection_receives_and_acknowledges_manually(mosquitto: tuple[str, int]) -> None:
    topic = _topic()
    got: queue.Queue[tuple[int, int, bytes]] = queue.Queue()
    sessions: list[bool] = []
    stop = threading.Event()
    options = ClientOptions(client_id=f"driven-{uuid.uuid4().hex[:8]}", clean_session=False, manual_ack=True)
    subscribed = threading.Event()
    acks: list[tuple[int, int]] = []

    def send_acks() -> None:
        while acks:
            conn.ack(*acks.pop())

    def on_connect(session_present: bool) -> None:
        sessions.append(session_present)
        conn.subscribe(topic)

    conn = DrivenConnection(
        *mosquitto,
        options,
        backoff=Backoff(0.1, 1.0),
        on_connect=on_connect,
        on_message=lambda m: got.put((m.mid, m.qos, bytes(m.payload))),
        on_subscribe=lambda reasons: subscribed.set(),
        each_loop=send_acks,
    )
    thread = threading.Thread(target=conn.run, args=(stop,), kwargs={"drain": lambda: bool(acks)})
    thread.start()
    pub = Connection(*mosquitto, ClientOptions(client_id=f"pub-{uuid.uuid4().hex[:8]}")).connect(5.0)
    try:
        assert subscribed.wait(5.0)
        assert conn.connected
        assert pub.publish_confirmed(topic, b"one", timeout_s=5.0)
        mid, qos, payload = got.get(timeout=5.0)
        assert (qos, payload) == (1, b"one")
        acks.append((mid, qos))
    finally:
        pub.close()
        stop.set()
        thread.join(10.0)
    assert not thread.is_alive()
    assert sessions == [False]  # a new client id: the broker had no session yet
    assert acks == []
