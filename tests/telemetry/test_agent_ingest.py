"""Agent messages at the hub without a broker: ``decode_agent`` decisions, ``IngestService.process``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pumpops.schema import TOPIC_OF_KIND, AgentMessage, encode_agent_message, with_msg_id
from pumpops.settings import IngestSettings
from pumpops.store import TelemetryStore, open_store
from pumpops.telemetry import AGENT_TOPIC_KINDS, TOPIC_KINDS, BrokerAddress, IngestService, build_topic
from pumpops.telemetry._agent import AGENT_REASONS, agent_topic, decode_agent

from .fakes import MemoryStore

NOW_US = 1_767_225_600_000_000
PREFIX = "pumpops/v1"


def envelope(
    device_id: str = "p-1", seq: int = 1, kind: str = "alarm", *, site: str = "site-a", **body: Any
) -> bytes:
    """What an agent publishes: the outbox's payload with its msg_id filled in."""
    message = AgentMessage(
        device_id=device_id,
        site=site,
        kind=kind,  # type: ignore[arg-type]
        ts_ms=NOW_US // 1000 - 60_000 + seq,
        agent_version="0.1.0",
        body=body or {"event": "raised", "alarm_id": f"{device_id}-a{seq}"},
    )
    return with_msg_id(encode_agent_message(message), f"{device_id}:{seq}")


def topic(kind: str = "alarm", device_id: str = "p-1", site: str = "site-a") -> str:
    return build_topic(site, device_id, TOPIC_OF_KIND[kind], prefix=PREFIX)  # type: ignore[arg-type]


def test_agent_topic_kinds_are_the_envelope_codecs_and_are_topic_kinds() -> None:
    assert set(AGENT_TOPIC_KINDS) == set(TOPIC_OF_KIND.values())
    assert set(AGENT_TOPIC_KINDS) <= set(TOPIC_KINDS)
    assert build_topic("s1", "p-1", "summaries") == "pumpops/v1/s1/p-1/summaries"


@pytest.mark.parametrize("kind", ["alarm", "summary", "drift", "state"])
def test_decode_agent_accepts_every_kind_on_its_topic(kind: str) -> None:
    result = decode_agent(topic(kind), envelope(kind=kind, x=1), now_us=NOW_US)
    assert result.dead_letter is None
    assert result.record is not None
    record = result.record
    assert (record.msg_id, record.kind, record.seq, record.received_at_us) == ("p-1:1", kind, 1, NOW_US)
    assert record.ts_us == (NOW_US // 1000 - 60_000 + 1) * 1000
    assert json.loads(record.body_json) == {"x": 1}
    assert (record.topic, record.payload) == (topic(kind), envelope(kind=kind, x=1))


def test_decode_agent_hash_ignores_key_order_and_spacing_but_not_content() -> None:
    doc = json.loads(envelope())
    reordered = json.dumps(dict(reversed(list(doc.items()))), indent=2).encode()
    changed = json.dumps({**doc, "body": {"event": "cleared"}}).encode()
    digests = [decode_agent(topic(), p, now_us=NOW_US).record for p in (envelope(), reordered, changed)]
    assert all(d is not None for d in digests)
    a, b, c = (d.payload_sha256 for d in digests if d is not None)
    assert a == b != c


def _doc(**change: Any) -> bytes:
    doc = json.loads(envelope())
    doc.update(change)
    return json.dumps(doc).encode()


def _deep(levels: int, opener: str = '{"a":') -> bytes:
    """The envelope with a body nested ``levels`` deep below it (objects, or arrays with ``[``)."""
    closer = "}" if opener.startswith("{") else "]"
    inner = (opener * levels + "1" + closer * levels).encode()
    return envelope().replace(b'"body":{', b'"body":{"x":' + inner + b",", 1)


@pytest.mark.parametrize(
    ("where", "payload", "reason", "words"),
    [
        ("state", envelope(), "wrong_topic", "alarm message arrived on a 'state' topic"),
        ("site-b", envelope(), "wrong_topic", "site 'site-a'"),
        ("p-2", envelope(), "wrong_identity", "speaks for device 'p-1'"),
        ("alarms", _doc(ts_ms=NOW_US // 1000 + 301_000), "future_timestamp", "ingest.max_future_skew_s"),
        ("alarms", _doc(ts_ms=2**53), "future_timestamp", "check the device's clock"),
        ("alarms", _deep(900), "too_deep", "nested more than 32 levels"),
        ("alarms", _deep(100_000, "["), "too_deep", "nested more than 32 levels"),
        ("alarms", _deep(31, "["), "too_deep", "nested more than 32 levels"),
        ("alarms", b"not json", "malformed_json", "not JSON"),
        ("alarms", b"[1, 2]", "malformed_json", "JSON object"),
        ("alarms", b"\xff\xfe", "malformed_json", "not JSON"),
        ("alarms", _doc(msg_id=""), "missing_msg_id", "msg_id"),
        ("alarms", _doc(msg_id="p-2:1"), "invalid_field", "does not start with device"),
        ("alarms", _doc(msg_id="p-1:x:1"), "invalid_field", "<device_id>:<seq>"),
        ("alarms", _doc(msg_id=f"p-1:{2**63}"), "invalid_field", "<device_id>:<seq>"),
        ("alarms", _doc(kind="alarms"), "invalid_field", "kind"),
        ("alarms", _doc(schema="pumpops.agent/2"), "invalid_field", "schema"),
        ("alarms", _doc(extra=1), "invalid_field", "extra"),
        ("alarms", _doc(body=[1]), "invalid_field", "body"),
        ("alarms", envelope().replace(b'"raised"', b"NaN"), "invalid_field", "NaN"),
        ("alarms", b" " * (256 * 1024 + 1), "too_large", "at most"),
    ],
)
def test_decode_agent_rejects_with_a_reason_and_keeps_the_payload(
    where: str, payload: bytes, reason: str, words: str
) -> None:
    if where == "site-b":
        on = topic(site="site-b")
    elif where == "p-2":
        on = topic(device_id="p-2")
    else:
        on = f"{PREFIX}/site-a/p-1/{where}"
    result = decode_agent(on, payload, now_us=NOW_US)
    assert result.record is None
    letter = result.dead_letter
    assert letter is not None
    assert letter.reason == reason
    assert letter.reason in AGENT_REASONS
    assert words in letter.detail
    assert (letter.topic, letter.received_at_us) == (on, NOW_US)
    assert letter.payload == payload[: 256 * 1024]
    assert letter.device_id == on.split("/")[3]


def test_agent_topic_recognises_only_well_formed_agent_topics() -> None:
    assert agent_topic("pumpops/v1/s/p-1/drift") is not None
    assert agent_topic("other/v1/s/p-1/drift") is None
    assert agent_topic("pumpops/v1/s/p 1/drift") is None
    assert agent_topic("pumpops/v1/s/p-1/telemetry") is None
    assert agent_topic("pumpops/v1/s/p-1/desired") is None
    assert agent_topic("pumpops/v1/events/drift") is None
    assert agent_topic("pumpops/v1/events/x/state") is None  # under the hub's own events, as decode() has it


@pytest.fixture
def sqlite_store(tmp_path: Path) -> TelemetryStore:
    store = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    store.upgrade()
    return store


def _service(store: TelemetryStore, *, fixed_clock: bool = True) -> IngestService:
    settings = IngestSettings(client_id="test-agent-process", batch_max_messages=4)
    if not fixed_clock:  # telemetry is judged against the hub's clock
        return IngestService(store, BrokerAddress("127.0.0.1", 9), settings=settings)
    return IngestService(store, BrokerAddress("127.0.0.1", 9), settings=settings, now_us=lambda: NOW_US)


def test_process_stores_agent_messages_once_in_seq_order_and_dead_letters_the_rest(
    sqlite_store: TelemetryStore,
) -> None:
    good = [(topic(k, d), envelope(d, s, k)) for d, s, k in [("p-1", 10, "alarm"), ("p-1", 9, "summary")]]
    good += [(topic("state", "p-2", "site-b"), envelope("p-2", 1, "state", site="site-b"))]
    reused = (topic(), envelope("p-1", 10, event="cleared"))
    bad = [(topic("state"), b"{}"), (topic(site="site-x"), envelope("p-1", 11))]
    stats = _service(sqlite_store).process([*good, good[0], *good, reused, *bad])
    assert stats.received == stats.committed == 10
    ends = (stats.agent_messages, stats.duplicates, stats.id_conflicts, stats.rejected_messages)
    assert ends == (3, 4, 1, 2)
    assert stats.stored_messages == stats.ignored == 0
    assert stats.dead_letters == 3
    assert [r.msg_id for r in sqlite_store.agent_messages()] == ["p-1:9", "p-1:10", "p-2:1"]
    assert sqlite_store.agent_messages(device_id="p-1", kind="alarm")[0].body()["event"] == "raised"
    reasons = sorted(d.reason for d in sqlite_store.dead_letters())
    assert reasons == ["invalid_field", "msg_id_conflict", "wrong_topic"]
    assert sqlite_store.counts()["messages"] == 0  # the telemetry ledger is not touched


def test_process_mixes_telemetry_and_agent_messages_in_one_batch() -> None:
    from .conftest import FLEET, make_msg

    store = MemoryStore(FLEET)
    telemetry = make_msg(FLEET[0], msg_id="t-1")
    stats = _service(store, fixed_clock=False).process(
        [
            (telemetry.topic, telemetry.payload()),
            (topic(device_id="acme-1"), envelope("acme-1", 1)),
            (f"{PREFIX}/site-a/acme-1/desired", b'{"model": 2}'),
        ]
    )
    assert (stats.stored_messages, stats.agent_messages, stats.ignored) == (1, 1, 1)
    assert list(store.agent) == ["acme-1:1"]
    assert ("acme-1", "t-1") in store.messages


def test_process_retries_an_agent_store_outage_without_losing_messages() -> None:
    store = MemoryStore()
    store.fail_writes = 2
    service = IngestService(
        store,
        BrokerAddress("127.0.0.1", 9),
        settings=IngestSettings(client_id="t", reconnect_min_s=0.01, reconnect_max_s=0.02),
        now_us=lambda: NOW_US,
    )
    stats = service.process([(topic(), envelope())])
    assert (stats.agent_messages, stats.store_errors) == (1, 2)
    assert list(store.agent) == ["p-1:1"]


def test_process_applies_the_ingest_settings_time_and_seq_bounds(sqlite_store: TelemetryStore) -> None:
    settings = IngestSettings(client_id="test-agent-bounds", max_seq_jump=10, max_future_skew_s=60)
    service = IngestService(
        sqlite_store, BrokerAddress("127.0.0.1", 9), settings=settings, now_us=lambda: NOW_US
    )
    ahead = json.loads(envelope("p-1", 3))
    ahead["ts_ms"] = NOW_US // 1000 + 61_000  # 61 s ahead: over this hub's 60 s
    stats = service.process(
        [
            (topic(), envelope("p-1", 1)),
            (topic(), envelope("p-1", 11)),  # 1 + 10: at the bound
            (topic(), envelope("p-1", 22)),  # 11 + 11: past it
            (topic(), json.dumps(ahead).encode()),
        ]
    )
    assert (stats.agent_messages, stats.rejected_messages, stats.dead_letters) == (2, 2, 2)
    assert stats.committed == stats.received == 4
    letters = {d.reason: d for d in sqlite_store.dead_letters()}
    assert set(letters) == {"seq_jump", "future_timestamp"}
    assert "seq 22, more than 10 (ingest.max_seq_jump) past the highest seq 11" in letters["seq_jump"].detail
    assert "at most 60 s are allowed" in letters["future_timestamp"].detail
    assert [r.seq for r in sqlite_store.agent_messages()] == [1, 11]


def test_agent_messages_are_dated_when_stored_not_when_they_entered_the_inbox() -> None:
    # Incremental monitoring reads agent messages by receipt time with a bounded overlap
    # (monitoring/_incremental.py). A message that waited in ingest's inbox or through a store
    # outage must therefore carry the time of the attempt that stored it, or a backlog commits it
    # behind a watermark that has already passed it (seen at 10,000 agents: 51,954 fields missed).
    ticks = [NOW_US, NOW_US + 300_000_000, NOW_US + 600_000_000]  # received, 1st attempt, retry
    store = MemoryStore()
    store.fail_writes = 1  # the first attempt fails: the retry is later still
    service = IngestService(
        store,
        BrokerAddress("127.0.0.1", 9),
        settings=IngestSettings(client_id="t", reconnect_min_s=0.01, reconnect_max_s=0.02),
        now_us=lambda: ticks.pop(0) if len(ticks) > 1 else ticks[0],
    )
    stats = service.process([(topic(), envelope())])
    assert (stats.agent_messages, stats.store_errors) == (1, 1)
    (record,) = store.agent.values()
    assert record.received_at_us == NOW_US + 600_000_000


@pytest.mark.parametrize(("commit_s", "redated"), [(15.0, 2), (9.0, 0)])
def test_a_store_call_slower_than_redate_after_s_has_its_rows_re_dated_after_the_commit(
    sqlite_store: TelemetryStore, monkeypatch: pytest.MonkeyPatch, commit_s: float, redated: int
) -> None:
    """Monitoring re-reads ``monitoring.overlap_s`` of receipt time; a slower commit is re-dated."""
    clock = {"us": NOW_US}
    put = sqlite_store.put_agent_messages

    def slow_put(*args: Any, **kwargs: Any) -> Any:
        result = put(*args, **kwargs)
        clock["us"] += round(commit_s * 1_000_000)  # the commit took this long by the ingest's clock
        return result

    monkeypatch.setattr(sqlite_store, "put_agent_messages", slow_put)
    settings = IngestSettings(client_id="test-redate", redate_after_s=10)
    service = IngestService(
        sqlite_store, BrokerAddress("127.0.0.1", 9), settings=settings, now_us=lambda: clock["us"]
    )
    stats = service.process(
        [(topic(), envelope("p-1", 1)), (topic("state"), envelope("p-1", 2, "state", x=1))]
    )
    assert (stats.agent_messages, stats.redated) == (2, redated)
    expected = NOW_US + (round(commit_s * 1_000_000) if redated else 0)
    assert [r.received_at_us for r in sqlite_store.agent_messages()] == [expected, expected]
