"""The publisher: pacing, deterministic ids, chunking, QoS 1 publishing of any Source."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import numpy as np
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from pumpops.errors import ConfigError
from pumpops.sources import Channel, Frame, Source
from pumpops.telemetry import (
    EmbeddedBroker,
    IngestService,
    Pacer,
    Publisher,
    chunk_frame,
    message_id,
    parse_speed,
)

from .conftest import FLEET, now_ms, wait_until
from .fakes import MemoryStore

ACME = FLEET[0]


class ListSource(Source):
    def __init__(self, frames: list[Frame]) -> None:
        self._list = frames

    def _frames(self) -> Iterator[Frame]:
        yield from self._list


def _frame(device_id: str, start_ms: int, rows: int, period_ms: int = 1000) -> Frame:
    channels = (Channel("AMPS", "A"), Channel("VOLTS", "V"))
    values = np.column_stack([np.full(rows, 30.0), np.full(rows, 460.0)])
    values[0, 1] = np.nan
    return Frame(device_id, start_ms + np.arange(rows, dtype=np.int64) * period_ms, channels, values)


@pytest.mark.parametrize(
    ("text", "speed"), [("1", 1.0), ("3600", 3600.0), ("0.5", 0.5), ("MAX", None), (60, 60.0)]
)
def test_parse_speed_accepts(text: str | float, speed: float | None) -> None:
    assert parse_speed(text) == speed


@pytest.mark.parametrize("text", ["0", "-1", "fast", "inf", "nan", ""])
def test_parse_speed_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_speed(text)


def test_pacer_maps_simulated_to_wall_time() -> None:
    pacer = Pacer(speed=60.0, sim_start_ms=1_000_000, wall_start_s=10.0)
    assert pacer.due_s(1_000_000 + 60_000) == pytest.approx(11.0)  # a simulated minute per wall second
    assert pacer.delay_s(1_000_000 + 120_000, wall_now_s=11.5) == pytest.approx(0.5)
    assert pacer.delay_s(1_000_000, wall_now_s=99.0) == 0.0  # late: send at once
    real_time = Pacer(speed=1.0, sim_start_ms=0, wall_start_s=0.0)
    assert real_time.delay_s(2500, wall_now_s=1.0) == pytest.approx(1.5)


def test_message_id_is_deterministic_and_valid_on_the_wire() -> None:
    from pumpops.schema import TelemetryMessage

    ident = message_id("p-0001", 1_735_689_600_000, 60)
    assert ident == message_id("p-0001", 1_735_689_600_000, 60)
    assert ident != message_id("p-0001", 1_735_689_600_000, 59)
    TelemetryMessage.model_validate(
        {
            "schema": "pumpops.telemetry/1",
            "msg_id": message_id("x" * 64, -(2**62), 10_000),
            "device_id": "d",
            "sensors": [{"name": "a", "unit": "A"}],
            "ts_ms": [1],
            "values": [[1.0]],
        }
    )


def test_chunk_frame_splits_in_order() -> None:
    parts = list(chunk_frame(_frame("d", 0, 7), 3))
    assert [p.ts_ms.tolist() for p in parts] == [[0, 1000, 2000], [3000, 4000, 5000], [6000]]
    assert all(p.values.shape == (len(p.ts_ms), 2) for p in parts)
    with pytest.raises(ConfigError):
        list(chunk_frame(_frame("d", 0, 1), 0))


class _Capture:
    def __init__(self, port: int, topic: str) -> None:
        self.lock = threading.Lock()
        self.messages: list[tuple[str, dict]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"cap-{uuid.uuid4().hex}")
        self.client.username_pw_set("pumpops")
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        assert subscribed.wait(5)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, orjson.loads(msg.payload)))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_publisher_sends_every_frame_as_deterministic_messages(
    embedded_broker: EmbeddedBroker, prefix: str
) -> None:
    capture = _Capture(embedded_broker.port, f"{prefix}/#")
    start = now_ms() - 600_000
    source = ListSource([_frame("acme-1", start, 25), _frame("acme-1", start + 25_000, 5)])
    with Publisher(
        embedded_broker.address,
        client_id=f"pub-{uuid.uuid4().hex}",
        sites={"acme-1": "site-a"},
        topic_prefix=prefix,
        max_rows_per_message=10,
        max_inflight=2,
    ) as pub:
        stats = pub.run(source)
    assert stats.messages == 4
    assert stats.readings == 2 * 30 - 2  # one NaN per frame is not a reading
    assert (stats.first_ts_ms, stats.last_ts_ms) == (start, start + 29_000)
    wait_until(lambda: len(capture.messages) == 4, what="4 messages")
    capture.close()
    topics = {t for t, _ in capture.messages}
    assert topics == {f"{prefix}/site-a/acme-1/telemetry"}
    ids = [m["msg_id"] for _, m in capture.messages]
    assert ids == [
        f"acme-1-{start}-10",
        f"acme-1-{start + 10_000}-10",
        f"acme-1-{start + 20_000}-5",
        f"acme-1-{start + 25_000}-5",
    ]
    assert capture.messages[0][1]["values"][0] == [30.0, None]


def test_publisher_replay_of_a_source_is_stored_once(
    embedded_broker: EmbeddedBroker, prefix: str, ingest_settings
) -> None:
    store = MemoryStore(FLEET)
    source = ListSource([_frame("acme-1", now_ms() - 300_000, 40)])
    sites = {"acme-1": "site-a"}
    with IngestService(store, embedded_broker.address, settings=ingest_settings, topic_prefix=prefix) as svc:
        svc.wait_ready()
        for _ in range(2):  # the publisher restarted and replays from the start
            with Publisher(
                embedded_broker.address,
                client_id=f"pub-{uuid.uuid4().hex}",
                sites=sites,
                topic_prefix=prefix,
                max_rows_per_message=10,
            ) as pub:
                pub.run(source)
        wait_until(lambda: svc.stats().committed == 8, what="both runs committed")
        stats = svc.stats()
    assert (stats.stored_messages, stats.duplicates) == (4, 4)
    assert len(store.readings) == 80 - 1


def test_publisher_paces_simulated_time(embedded_broker: EmbeddedBroker, prefix: str) -> None:
    clock = [100.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    hour = 3_600_000
    source = ListSource([_frame("acme-1", 0, 1), _frame("acme-1", hour, 1), _frame("acme-1", 3 * hour, 1)])
    with Publisher(
        embedded_broker.address,
        client_id=f"pub-{uuid.uuid4().hex}",
        sites={"acme-1": "site-a"},
        topic_prefix=prefix,
    ) as pub:
        stats = pub.run(source, speed=3600.0, clock=lambda: clock[0], sleep=sleep)
    assert stats.messages == 3
    assert sum(waits) == pytest.approx(3.0)  # three simulated hours at an hour per second
    assert max(waits) <= 0.25  # waits are sliced so that a stop request is seen quickly


def test_publisher_stops_when_asked(embedded_broker: EmbeddedBroker, prefix: str) -> None:
    stop = threading.Event()
    stop.set()
    with Publisher(
        embedded_broker.address,
        client_id=f"pub-{uuid.uuid4().hex}",
        sites={"acme-1": "site-a"},
        topic_prefix=prefix,
    ) as pub:
        stats = pub.run(ListSource([_frame("acme-1", 0, 3)]), stop=stop)
    assert stats.messages == 0


def test_publisher_unknown_site_is_a_config_error(embedded_broker: EmbeddedBroker, prefix: str) -> None:
    publisher = Publisher(
        embedded_broker.address, client_id=f"pub-{uuid.uuid4().hex}", sites={}, topic_prefix=prefix
    )
    with publisher, pytest.raises(ConfigError, match="no site known"):
        publisher.publish_frame(_frame("acme-1", 0, 1))


def test_publisher_unreachable_broker_is_a_broker_error() -> None:
    from pumpops.errors import BrokerError
    from pumpops.telemetry import BrokerAddress

    from .conftest import free_port

    with pytest.raises(BrokerError, match="cannot connect"):
        Publisher(BrokerAddress("127.0.0.1", free_port()), client_id="x", sites={}).connect()
