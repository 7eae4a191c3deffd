"""Events on MQTT: they arrive on a real broker (Mosquitto, 127.0.0.1:1883); a dead broker loses none."""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
import uuid
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from pumpops.pipeline import RunResult
from pumpops.registry import EVENT_SCHEMA, EventSink, MqttEventPublisher, Registry
from pumpops.store import TelemetryStore


@pytest.fixture
def prefix() -> str:
    """A topic prefix of this test's own."""
    return f"test-{uuid.uuid4().hex[:12]}/v1"


@pytest.fixture
def received(mosquitto: tuple[str, int], prefix: str) -> Iterator[queue.Queue[tuple[str, bytes]]]:
    """Subscribed to ``<prefix>/events/#`` (QoS 1) before the test acts; what arrives goes in the queue."""
    got: queue.Queue[tuple[str, bytes]] = queue.Queue()
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:8]}")
    client.on_connect = lambda c, *_: c.subscribe(f"{prefix}/events/#", qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda c, u, msg: got.put((msg.topic, msg.payload))
    client.connect(*mosquitto)
    client.loop_start()
    try:
        assert subscribed.wait(5), "no SUBACK from Mosquitto"
        yield got
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.mosquitto
def test_events_arrive_on_mqtt_as_documented_json(
    store: TelemetryStore,
    tracking_uri: str,
    runs: list[RunResult],
    model_name: str,
    prefix: str,
    received: queue.Queue[tuple[str, bytes]],
) -> None:
    sink = EventSink(store, MqttEventPublisher("mqtt://127.0.0.1:1883"), topic_prefix=prefix)
    registry = Registry(tracking_uri, sink)
    info = registry.register(runs[0], name=model_name, actor="ann")
    registry.promote(model_name, 1, info.group, actor="ann", force=True, reason="first model")
    messages = [received.get(timeout=5) for _ in range(2)]
    assert [topic for topic, _ in messages] == [
        f"{prefix}/events/model.registered",
        f"{prefix}/events/model.promoted",
    ]
    bodies = [json.loads(payload) for _, payload in messages]
    stored = store.events()
    for body, event in zip(bodies, stored, strict=True):
        assert body["schema"] == EVENT_SCHEMA
        assert (body["seq"], body["time_us"], body["kind"], body["subject"]) == (
            event.seq,
            event.time_us,
            event.kind,
            event.subject,
        )
        assert body["payload"] == json.loads(event.payload_json)
        assert body["time"].endswith("Z")
    assert bodies[1]["payload"]["forced"] is True
    assert bodies[1]["payload"]["reason"] == "first model"
    assert bodies[0]["payload"]["dataset_digest"] == runs[0].dataset_digest


def test_events_with_broker_down_are_stored_and_logged(
    store: TelemetryStore, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = EventSink(store, MqttEventPublisher(f"mqtt://127.0.0.1:{port}", timeout_s=1.0))
    with caplog.at_level(logging.WARNING, logger="pumpops.registry._events"):
        record = sink.emit("model.archived", "m/1", {"why": "test"})
    assert store.events() == [record]
    assert "stored but NOT published" in caplog.text
