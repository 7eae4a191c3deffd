"""The store contract for agent messages: every test runs on SQLite and on PostgreSQL (see ``conftest.py``).

``put_agent_messages`` stores each message id once (a resend is a duplicate, a
reused id with other content a ``msg_id_conflict`` dead letter that never
overwrites, a seq too far past the device's maximum a ``seq_jump`` dead letter);
``agent_messages`` lists them by device, then time, then numeric ``seq``, so
"newest" is by time and a forged huge seq cannot shadow newer messages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections.abc import Callable

import pytest

from pumpops.errors import InputError
from pumpops.store import AgentPut, AgentRecord, TelemetryStore, open_store

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds
SECOND = 1_000_000


def rec(
    device_id: str,
    seq: int,
    kind: str = "alarm",
    *,
    ts_s: float | None = None,
    body: dict[str, object] | None = None,
    site: str = "site-a",
    salt: str = "",
) -> AgentRecord:
    """An agent message whose payload hash is derived from its content (and ``salt``)."""
    body_json = json.dumps(body if body is not None else {"event": "raised", "n": seq}, separators=(",", ":"))
    ts_us = T0 + int((seq if ts_s is None else ts_s) * SECOND)
    digest = hashlib.sha256(repr((device_id, seq, kind, ts_us, body_json, salt)).encode()).hexdigest()
    return AgentRecord(
        msg_id=f"{device_id}:{seq}",
        device_id=device_id,
        site=site,
        kind=kind,
        ts_us=ts_us,
        agent_version="0.1.0",
        body_json=body_json,
        payload_sha256=digest,
        received_at_us=T0 + 3600 * SECOND,
        topic=f"pumpops/v1/{site}/{device_id}/alarms",
        payload=f"raw {device_id}:{seq} {salt}".encode(),
    )


def ids(records: list[AgentRecord]) -> list[str]:
    return [r.msg_id for r in records]


def test_agent_put_then_list_round_trips_every_field(store: TelemetryStore) -> None:
    sent = rec("p-1", 7, "summary", body={"score": {"p50": 0.25, "max": 1e-300}, "note": "é ✓", "x": None})
    assert store.put_agent_messages([sent]) == AgentPut(stored=1, duplicates=0)
    (got,) = store.agent_messages()
    assert got == sent
    assert (got.seq, got.ts_ms, got.received_at_us) == (7, sent.ts_us // 1000, sent.received_at_us)
    assert got.body() == {"score": {"p50": 0.25, "max": 1e-300}, "note": "é ✓", "x": None}
    assert (got.topic, got.payload) == ("", b"")  # how it arrived is kept only in a dead letter


def test_agent_messages_ordered_by_device_then_time_then_numeric_seq(store: TelemetryStore) -> None:
    records = [rec("p-2", 1), rec("p-1", 10), rec("p-1", 9), rec("a-0", 100), rec("p-1", 2), rec("p-1", 11)]
    assert store.put_agent_messages(records) == AgentPut(6, 0)
    assert ids(store.agent_messages()) == ["a-0:100", "p-1:2", "p-1:9", "p-1:10", "p-1:11", "p-2:1"]


def test_agent_resend_is_duplicate_and_stored_once(store: TelemetryStore) -> None:
    first = [rec("p-1", 1), rec("p-1", 2, "state")]
    assert store.put_agent_messages(first) == AgentPut(2, 0)
    assert store.put_agent_messages(first) == AgentPut(0, 2)
    assert store.put_agent_messages([rec("p-1", 3), *first]) == AgentPut(1, 2)
    assert ids(store.agent_messages()) == ["p-1:1", "p-1:2", "p-1:3"]
    assert store.dead_letters() == []


def test_agent_reused_id_with_other_payload_is_dead_lettered_never_overwrites(store: TelemetryStore) -> None:
    original = rec("p-1", 5, body={"event": "raised"})
    store.put_agent_messages([original])
    reused = rec("p-1", 5, body={"event": "cleared"}, salt="other")
    assert store.put_agent_messages([reused]) == AgentPut(0, 0)
    assert store.agent_messages() == [original]
    (letter,) = store.dead_letters()
    assert (letter.reason, letter.device_id, letter.msg_id) == ("msg_id_conflict", "p-1", "p-1:5")
    assert (letter.topic, letter.payload) == (reused.topic, reused.payload)  # kept as it arrived
    assert "already stored with different content" in letter.detail


def test_agent_conflict_without_raw_payload_dead_letters_the_rebuilt_envelope(store: TelemetryStore) -> None:
    store.put_agent_messages([rec("p-1", 5)])
    reused = dataclasses.replace(rec("p-1", 5, salt="x", body={"event": "cleared"}), topic="", payload=b"")
    store.put_agent_messages([reused])
    (letter,) = store.dead_letters(reason="msg_id_conflict")
    envelope = json.loads(letter.payload)
    assert envelope["msg_id"] == "p-1:5"
    assert envelope["body"] == {"event": "cleared"}
    assert envelope["schema"] == "pumpops.agent/1"


def test_agent_repeats_within_one_call_judged_one_after_the_other(store: TelemetryStore) -> None:
    a, a_again, a_other = rec("p-1", 1), rec("p-1", 1), rec("p-1", 1, salt="x")
    assert store.put_agent_messages([a, a_again, a_other, rec("p-1", 2)]) == AgentPut(2, 1)
    assert store.agent_messages()[0] == a
    assert [d.reason for d in store.dead_letters()] == ["msg_id_conflict"]


def test_agent_stored_id_repeated_in_a_call_judged_against_the_stored_hash(store: TelemetryStore) -> None:
    stored = rec("p-1", 1)
    store.put_agent_messages([stored])
    assert store.put_agent_messages([rec("p-1", 1, salt="x"), stored]) == AgentPut(0, 1)
    assert store.agent_messages() == [stored]
    assert len(store.dead_letters()) == 1


def test_agent_messages_of_unregistered_devices_are_accepted(store: TelemetryStore) -> None:
    assert store.device("new-9") is None
    assert store.put_agent_messages([rec("new-9", 1, "state", site="site-z")]) == AgentPut(1, 0)
    assert ids(store.agent_messages(device_id="new-9")) == ["new-9:1"]


def test_agent_messages_filter_by_device_kind_and_since(store: TelemetryStore) -> None:
    store.put_agent_messages(
        [
            rec("p-1", 1, "alarm", ts_s=10),
            rec("p-1", 2, "summary", ts_s=20),
            rec("p-1", 3, "alarm", ts_s=30),
            rec("p-2", 1, "alarm", ts_s=25),
            rec("p-2", 2, "drift", ts_s=40),
        ]
    )
    assert ids(store.agent_messages(device_id="p-1")) == ["p-1:1", "p-1:2", "p-1:3"]
    assert ids(store.agent_messages(kind="alarm")) == ["p-1:1", "p-1:3", "p-2:1"]
    assert ids(store.agent_messages(since_us=T0 + 25 * SECOND)) == ["p-1:3", "p-2:1", "p-2:2"]
    assert ids(store.agent_messages(device_id="p-2", kind="drift")) == ["p-2:2"]
    assert store.agent_messages(device_id="nobody") == []


def test_agent_messages_limit_keeps_the_last_in_order(store: TelemetryStore) -> None:
    store.put_agent_messages([rec("p-1", s) for s in (1, 2, 9, 10, 11)] + [rec("p-2", 1)])
    assert ids(store.agent_messages(device_id="p-1", limit=2)) == ["p-1:10", "p-1:11"]
    assert ids(store.agent_messages(limit=3)) == ["p-1:10", "p-1:11", "p-2:1"]
    assert store.agent_messages(limit=0) == []
    with pytest.raises(InputError, match="limit"):
        store.agent_messages(limit=-1)
    with pytest.raises(InputError, match="kind"):
        store.agent_messages(kind="alarms")


def test_agent_largest_seq_is_stored_but_newest_is_by_time(store: TelemetryStore) -> None:
    big = 2**63 - 1
    store.put_agent_messages([rec("p-1", big, ts_s=1), rec("p-1", 99)])
    assert [r.seq for r in store.agent_messages()] == [big, 99]
    assert [r.seq for r in store.agent_messages(device_id="p-1", limit=1)] == [99]


def test_agent_seq_breaks_ties_of_equal_times_numerically(store: TelemetryStore) -> None:
    store.put_agent_messages([rec("p-1", s, ts_s=5) for s in (10, 9, 11, 2)])
    assert ids(store.agent_messages()) == ["p-1:2", "p-1:9", "p-1:10", "p-1:11"]
    assert ids(store.agent_messages(device_id="p-1", limit=1)) == ["p-1:11"]


def test_agent_forged_huge_seq_state_does_not_shadow_newer_real_states(store: TelemetryStore) -> None:
    # issue 13 row 7: a state with seq 2**63-1 and a normal time, then 23 newer genuine states
    forged = rec("p-1", 2**63 - 1, "state", ts_s=100, body={"health": "failed", "model_version": 1})
    real = [
        rec("p-1", s, "state", ts_s=100 + s, body={"health": "ok", "model_version": 3}) for s in range(1, 24)
    ]
    store.put_agent_messages([forged, *real])
    (newest,) = store.agent_messages(device_id="p-1", kind="state", limit=1)
    assert (newest.msg_id, newest.body()["health"]) == ("p-1:23", "ok")


def test_agent_seq_jump_past_the_stored_maximum_is_dead_lettered(store: TelemetryStore) -> None:
    store.put_agent_messages([rec("p-1", s) for s in (1, 2, 3)])
    forged = rec("p-1", 2**63 - 1, "state", ts_s=4)
    got = store.put_agent_messages([forged, rec("p-1", 4), rec("p-2", 1_000_001)], max_seq_jump=1_000_000)
    assert got == AgentPut(stored=1, duplicates=0, seq_jumps=2)
    assert ids(store.agent_messages()) == ["p-1:1", "p-1:2", "p-1:3", "p-1:4"]
    letters = {d.msg_id: d for d in store.dead_letters(reason="seq_jump")}
    assert set(letters) == {forged.msg_id, "p-2:1000001"}
    detail = letters[forged.msg_id].detail
    assert f"seq {2**63 - 1}" in detail
    assert "highest seq 4 stored" in detail  # p-1:4 of the same call is judged first (seq order)
    assert "ingest.max_seq_jump" in detail
    assert "highest seq 0 stored for device 'p-2'" in letters["p-2:1000001"].detail
    assert letters[forged.msg_id].payload == forged.payload
    assert letters[forged.msg_id].topic == forged.topic


def test_agent_seq_within_the_bound_is_stored_and_raises_the_maximum(store: TelemetryStore) -> None:
    # judged in seq order within the call: each step within the bound of the one before
    got = store.put_agent_messages([rec("p-1", s) for s in (300, 100, 200, 401)], max_seq_jump=100)
    assert got == AgentPut(stored=3, duplicates=0, seq_jumps=1)
    assert ids(store.agent_messages()) == ["p-1:100", "p-1:200", "p-1:300"]
    # a resend of a stored message is never a jump; without a bound nothing is judged
    assert store.put_agent_messages([rec("p-1", 300)], max_seq_jump=1) == AgentPut(0, 1, 0)
    assert store.put_agent_messages([rec("p-1", 10**12)]) == AgentPut(1, 0, 0)
    with pytest.raises(InputError, match="max_seq_jump"):
        store.put_agent_messages([rec("p-1", 1)], max_seq_jump=0)


def test_agent_ids_are_scoped_to_their_device(store: TelemetryStore) -> None:
    # A message id names its device: no device can store a message under another's id.
    with pytest.raises(InputError, match="msg_id must be"):
        store.put_agent_messages([dataclasses.replace(rec("p-2", 5), msg_id="p-1:5")])
    assert store.put_agent_messages([rec("p-2", 5), rec("p-1", 5)]) == AgentPut(2, 0)
    assert store.dead_letters() == []


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"msg_id": "p-2:1"}, "msg_id must be"),
        ({"msg_id": "p-1:x1"}, "msg_id must be"),
        ({"msg_id": "p-1"}, "msg_id must be"),
        ({"msg_id": f"p-1:{2**63}"}, "seq"),
        ({"device_id": "bad id"}, "device id"),
        ({"site": ""}, "site"),
        ({"kind": "alarms"}, "kind"),
        ({"ts_us": -1}, "ts_us"),
        ({"agent_version": ""}, "agent_version"),
        ({"payload_sha256": "ABC"}, "payload_sha256"),
        ({"body_json": "[1, 2]"}, "JSON object"),
        ({"body_json": "{not json"}, "not JSON"),
    ],
)
def test_agent_malformed_message_is_input_error_and_nothing_stored(
    store: TelemetryStore, change: dict[str, object], match: str
) -> None:
    broken = dataclasses.replace(rec("p-1", 1), **change)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=match):
        store.put_agent_messages([rec("p-1", 2), broken])
    assert store.agent_messages() == []


def test_agent_put_empty_list_stores_nothing(store: TelemetryStore) -> None:
    assert store.put_agent_messages([]) == AgentPut(0, 0)
    assert store.agent_messages() == []


def test_agent_text_that_an_engine_cannot_hold_is_stored_escaped(store: TelemetryStore) -> None:
    odd = dataclasses.replace(rec("p-1", 1), agent_version="0.1\x00\udcff")
    store.put_agent_messages([odd])
    (got,) = store.agent_messages()
    assert got.agent_version == "0.1\\x00\\udcff"


def test_agent_concurrent_writers_store_each_message_once(store_url: Callable[[], str]) -> None:
    # Two ingest workers handed the same resends (a shared subscription after a reconnect).
    url = store_url()
    stores = [open_store(url), open_store(url)]
    stores[0].upgrade()
    batch = [rec(f"d-{d}", s) for d in range(5) for s in range(40)]
    barrier = threading.Barrier(2)
    results: list[AgentPut] = []
    errors: list[BaseException] = []

    def put(store: TelemetryStore, records: list[AgentRecord]) -> None:
        barrier.wait()
        try:
            for start in range(0, len(records), 25):
                results.append(store.put_agent_messages(records[start : start + 25]))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [
        threading.Thread(target=put, args=(stores[0], batch)),
        threading.Thread(target=put, args=(stores[1], batch[::-1])),
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        assert sum(r.stored for r in results) == len(batch)
        assert sum(r.duplicates for r in results) == len(batch)
        assert len(stores[1].agent_messages()) == len(batch)
        assert stores[1].dead_letters() == []
    finally:
        for store in stores:
            store.close()
