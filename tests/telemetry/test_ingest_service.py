"""The ingest service end to end through a broker (embedded and Mosquitto) into an in-memory store.

Every bad-input case of the issue: its dead-letter reason is recorded, the
good part of the message (or the next good message) is stored, and the
service keeps running.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator

import pytest

from pumpops.schema import DeadLetter
from pumpops.settings import IngestSettings
from pumpops.telemetry import BrokerAddress, IngestService, Publisher

from .conftest import FLEET, Msg, make_msg, now_ms, wait_until
from .fakes import MemoryStore
from .test_codec import PARTIAL, WHOLE

ACME, NORD, SAKURA = FLEET


@pytest.fixture
def publisher(broker_address: BrokerAddress) -> Iterator[Publisher]:
    sites = {d.device_id: d.site for d in FLEET}
    with Publisher(broker_address, client_id=f"test-pub-{uuid.uuid4().hex[:12]}", sites=sites) as pub:
        yield pub


@pytest.fixture
def service(
    store: MemoryStore, broker_address: BrokerAddress, ingest_settings: IngestSettings, prefix: str
) -> Iterator[IngestService]:
    svc = IngestService(store, broker_address, settings=ingest_settings, topic_prefix=prefix)
    svc.start()
    try:
        svc.wait_ready(10)
        yield svc
    finally:
        svc.stop(10)


def _committed(svc: IngestService, n: int) -> None:
    wait_until(lambda: svc.stats().committed >= n, timeout_s=30, what=f"{n} messages committed")


def _letters_for(store: MemoryStore, payload: bytes) -> list[DeadLetter]:
    # an oversized payload is kept cut to the limit
    return [
        d
        for d in store.letters
        if d.payload == payload[: len(d.payload)] and bool(d.payload) == bool(payload)
    ]


def _in_prefix(topic: str, prefix: str) -> str:
    return prefix + topic.removeprefix("pumpops/v1")


@pytest.mark.parametrize("case", [c for c in WHOLE if c.name != "topic_wrong_prefix"], ids=lambda c: c.name)
def test_ingest_whole_message_rejection_is_dead_lettered_and_next_message_stored(
    case, service: IngestService, publisher: Publisher, store: MemoryStore, prefix: str
) -> None:
    bad_topic, bad = case.make(make_msg(ACME))
    good = make_msg(NORD, prefix=prefix, msg_id=f"good-{uuid.uuid4().hex[:8]}")
    publisher.publish(_in_prefix(bad_topic, prefix), bad)
    publisher.publish(good.topic, good.payload())
    _committed(service, 2)
    (letter,) = _letters_for(store, bad)
    assert letter.reason == case.reason
    assert ("nord-1", good.msg_id) in store.messages
    stats = service.stats()
    assert stats.rejected_messages == 1
    assert stats.stored_messages == 1
    assert stats.connected


@pytest.mark.parametrize("case", PARTIAL, ids=lambda c: c.name)
def test_ingest_reading_rejection_stores_the_rest(
    case, service: IngestService, publisher: Publisher, store: MemoryStore, prefix: str
) -> None:
    msg = make_msg(case.device, prefix=prefix)
    case.edit(msg)
    publisher.publish(msg.topic, msg.payload())
    _committed(service, 1)
    (letter,) = store.letters
    assert letter.reason == case.reason
    assert letter.msg_id == msg.msg_id
    assert (msg.device.device_id, msg.msg_id) in store.messages
    stats = service.stats()
    assert stats.stored_readings == msg.readings - case.rejected
    assert stats.partially_rejected == 1
    assert stats.rejected_readings == case.rejected


def test_ingest_oversized_payload_is_dead_lettered(
    service: IngestService, publisher: Publisher, store: MemoryStore, prefix: str
) -> None:
    msg = make_msg(ACME, prefix=prefix)
    huge = msg.payload() + b" " * (300 * 1024)  # valid JSON with trailing space, over the 256 KiB default
    publisher.publish(msg.topic, huge)
    _committed(service, 1)
    (letter,) = store.letters
    assert letter.reason == "payload_too_large"
    assert len(letter.payload) == 256 * 1024


def test_ingest_redelivery_is_stored_once_and_reused_id_is_dead_lettered(
    service: IngestService, publisher: Publisher, store: MemoryStore, prefix: str
) -> None:
    first = make_msg(ACME, prefix=prefix, msg_id="m-1")
    publisher.publish(first.topic, first.payload())
    publisher.publish(first.topic, first.payload())  # the device sent it again (no PUBACK seen)
    changed = make_msg(ACME, prefix=prefix, msg_id="m-1", start_ms=first.ts_ms[0] + 100_000)
    publisher.publish(changed.topic, changed.payload())
    _committed(service, 3)
    stats = service.stats()
    assert (stats.stored_messages, stats.duplicates, stats.id_conflicts) == (1, 1, 1)
    assert len(store.readings) == first.readings
    (letter,) = store.letters
    assert letter.reason == "msg_id_conflict"
    assert letter.payload == changed.payload()


def test_ingest_conflicting_overlap_keeps_first_value_and_says_so(
    service: IngestService, publisher: Publisher, store: MemoryStore, prefix: str
) -> None:
    first = make_msg(ACME, prefix=prefix, msg_id="a", seed=1)
    other = make_msg(ACME, prefix=prefix, msg_id="b", start_ms=first.ts_ms[0], seed=2)
    publisher.publish(first.topic, first.payload())
    publisher.publish(other.topic, other.payload())
    _committed(service, 2)
    (letter,) = store.letters
    assert letter.reason == "conflicting_overlap"
    assert letter.msg_id == "b"
    assert "the first value was kept" in letter.detail
    assert service.stats().overlapping_readings == other.readings


def test_ingest_late_messages_across_messages_are_accepted(
    service: IngestService, publisher: Publisher, store: MemoryStore, prefix: str
) -> None:
    # an edge outbox forwards old readings after the new ones: across messages that is normal
    newer = make_msg(ACME, prefix=prefix, start_ms=now_ms() - 30_000)
    older = make_msg(ACME, prefix=prefix, start_ms=now_ms() - 3_600_000)
    publisher.publish(newer.topic, newer.payload())
    publisher.publish(older.topic, older.payload())
    _committed(service, 2)
    assert store.letters == []
    assert service.stats().stored_messages == 2


def test_ingest_store_outage_is_retried_and_nothing_is_acked_before_commit(
    service: IngestService, publisher: Publisher, store: MemoryStore, prefix: str
) -> None:
    store.fail_writes = 3
    msgs = [
        make_msg(SAKURA, prefix=prefix, msg_id=f"s-{i}", start_ms=now_ms() - 600_000 + i * 20_000)
        for i in range(5)
    ]
    for msg in msgs:
        publisher.publish(msg.topic, msg.payload())
    wait_until(lambda: store.write_calls >= 1, what="a first write attempt")
    assert service.stats().acked == 0
    _committed(service, 5)
    stats = service.stats()
    assert stats.store_errors == 3
    assert stats.stored_messages == 5
    assert stats.connected
    wait_until(lambda: service.stats().acked == 5, what="acknowledgements")
    assert len(store.messages) == 5
    assert store.letters == []


def test_ingest_store_refusing_one_batch_dead_letters_it_and_goes_on(
    service: IngestService, publisher: Publisher, store: MemoryStore, prefix: str
) -> None:
    store.fail_writes = 4
    store.fail_with = RuntimeError("check constraint violated")  # not an outage: a bug or a constraint
    bad = make_msg(ACME, prefix=prefix, msg_id="poison")
    publisher.publish(bad.topic, bad.payload())
    _committed(service, 1)
    (letter,) = store.letters
    assert letter.reason == "store_refused"
    assert "check constraint violated" in letter.detail
    good = make_msg(ACME, prefix=prefix, msg_id="after", start_ms=bad.ts_ms[-1] + 1000)
    publisher.publish(good.topic, good.payload())
    _committed(service, 2)
    assert ("acme-1", "after") in store.messages


def test_ingest_unregistered_device_accepted_soon_after_registration(
    service: IngestService, publisher: Publisher, store: MemoryStore, prefix: str
) -> None:
    from pumpops.fleet import Device

    newcomer = Device("new-1", "site-a", "acme-ansi", "g")
    msg = make_msg(newcomer, prefix=prefix, msg_id="n-1")
    publisher._sites["new-1"] = "site-a"
    publisher.publish(msg.topic, msg.payload())
    _committed(service, 1)
    assert store.letters[0].reason == "unknown_device"
    store.register_devices([newcomer])
    wait_until(lambda: not _resend_and_check(service, publisher, store, msg), timeout_s=10, what="acceptance")


def _resend_and_check(svc: IngestService, pub: Publisher, store: MemoryStore, msg: Msg) -> bool:
    """Replay the dead-lettered payload; return True while it is still rejected."""
    before = svc.stats().committed
    pub.publish(msg.topic, msg.payload())
    wait_until(lambda: svc.stats().committed > before, what="the replay")
    return ("new-1", "n-1") not in store.messages


def test_ingest_ignores_the_hubs_desired_state_and_dead_letters_bad_agent_messages(
    service: IngestService, publisher: Publisher, store: MemoryStore, prefix: str
) -> None:
    publisher.publish(f"{prefix}/site-a/acme-1/desired", b'{"model": "v2"}')
    publisher.publish(f"{prefix}/site-a/acme-1/alarms", b'{"alarm": true}')
    publisher.publish(f"{prefix}/site-a/acme-1/state", b"not json")
    _committed(service, 3)
    stats = service.stats()
    assert (stats.ignored, stats.rejected_messages, stats.agent_messages) == (1, 2, 0)
    assert sorted(letter.reason for letter in store.letters) == ["invalid_field", "malformed_json"]
    assert store.messages == {}
    assert store.agent == {}


def test_ingest_stop_commits_and_acks_what_it_received(
    store: MemoryStore,
    broker_address: BrokerAddress,
    ingest_settings: IngestSettings,
    prefix: str,
    publisher: Publisher,
) -> None:
    settings = ingest_settings.model_copy(update={"batch_max_wait_s": 5.0})  # nothing would flush on its own
    svc = IngestService(store, broker_address, settings=settings, topic_prefix=prefix).start()
    svc.wait_ready(10)
    msgs = [
        make_msg(ACME, prefix=prefix, msg_id=f"m-{i}", start_ms=now_ms() - 900_000 + i * 20_000)
        for i in range(10)
    ]
    for msg in msgs:
        publisher.publish(msg.topic, msg.payload())
    wait_until(lambda: svc.stats().received == 10, what="receipt")
    stats = svc.stop(10)
    assert stats.committed == 10
    assert stats.acked == 10
    assert len(store.messages) == 10
    assert not stats.connected


def test_ingest_process_without_broker_takes_the_same_path(
    store: MemoryStore, ingest_settings: IngestSettings
) -> None:
    svc = IngestService(store, BrokerAddress("127.0.0.1", 9), settings=ingest_settings)
    good = make_msg(ACME)
    bad = make_msg(ACME, msg_id="x")
    bad.sensors[0] = ("SUCT_PRESS", "degC")
    stats = svc.process([(good.topic, good.payload()), (bad.topic, bad.payload()), ("nope", b"{}")])
    assert stats.committed == 3
    assert stats.stored_messages == 2
    assert stats.rejected_messages == 1
    assert sorted(d.reason for d in store.letters) == ["wrong_topic", "wrong_unit"]


def test_ingest_threads_survive_a_flood_of_garbage(
    service: IngestService, publisher: Publisher, store: MemoryStore, prefix: str
) -> None:
    payloads = [b"", b"\x00" * 50, b"{", json.dumps({"schema": 1}).encode(), b"[]" * 1000]
    topics = [f"{prefix}/s/p/telemetry", f"{prefix}/x", f"{prefix}/a/b/c/d/e", f"{prefix}/s/acme-1/telemetry"]
    n = 0
    for topic in topics:
        for payload in payloads:
            publisher.publish(topic, payload)
            n += 1
    good = make_msg(ACME, prefix=prefix)
    publisher.publish(good.topic, good.payload())
    _committed(service, n + 1)
    stats = service.stats()
    assert stats.rejected_messages == n
    assert stats.stored_messages == 1
    assert stats.dead_letters == n
    assert threading.active_count() < 50


def test_ingest_observer_failure_does_not_stop_ingest(
    store: MemoryStore,
    broker_address: BrokerAddress,
    ingest_settings: IngestSettings,
    prefix: str,
    publisher: Publisher,
) -> None:
    def observer(results: object, outcomes: object) -> None:
        raise RuntimeError("probe broke")

    with IngestService(
        store, broker_address, settings=ingest_settings, topic_prefix=prefix, observer=observer
    ) as svc:
        svc.wait_ready()
        msg = make_msg(ACME, prefix=prefix)
        publisher.publish(msg.topic, msg.payload())
        _committed(svc, 1)
        assert svc.failed is None


def test_ingest_writer_bug_is_reported_and_nothing_is_acknowledged(
    store: MemoryStore,
    broker_address: BrokerAddress,
    ingest_settings: IngestSettings,
    prefix: str,
    publisher: Publisher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pumpops.errors import ServiceError
    from pumpops.telemetry import run_until_stopped

    svc = IngestService(store, broker_address, settings=ingest_settings, topic_prefix=prefix)

    def broken(*args: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(svc, "_tally", broken)
    msg = make_msg(ACME, prefix=prefix)
    with pytest.raises(ServiceError, match="internal error"):
        run_until_stopped(svc, duration_s=20, on_ready=lambda: publisher.publish(msg.topic, msg.payload()))
    assert isinstance(svc.failed, ZeroDivisionError)
    assert svc.stats().acked == 0


def test_ingest_service_runs_once(
    store: MemoryStore, broker_address: BrokerAddress, ingest_settings: IngestSettings, prefix: str
) -> None:
    from pumpops.errors import ServiceError

    svc = IngestService(store, broker_address, settings=ingest_settings, topic_prefix=prefix).start()
    svc.wait_ready()
    svc.stop()
    with pytest.raises(ServiceError, match="runs once"):
        svc.start()
