"""The store's alias history and events (revision 0003), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from pumpops.errors import ConfigError, InputError
from pumpops.registry import EventSink
from pumpops.store import TelemetryStore, open_store

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


@pytest.fixture
def db(db_url: str) -> Iterator[TelemetryStore]:
    with open_store(db_url) as store:
        store.upgrade()
        yield store


def test_store_alias_history_closes_previous_period(db: TelemetryStore) -> None:
    db.set_alias("g1", "g1-champion", "m", 1, set_by="ann", time_us=T0)
    db.set_alias("g1", "g1-champion", "m", 2, set_by="bob", reason="better", time_us=T0 + 10)
    db.set_alias("g1", "g1-challenger", "m", 3, set_by="ann", time_us=T0 + 20)
    db.set_alias("g2", "g2-champion", "other", 1, set_by="ann", time_us=T0 + 30)
    champion = db.alias_history(group="g1", alias="g1-champion")
    assert [(p.version, p.from_us, p.to_us, p.set_by, p.reason) for p in champion] == [
        (1, T0, T0 + 10, "ann", None),
        (2, T0 + 10, None, "bob", "better"),
    ]
    assert len(db.alias_history(group="g1")) == 3
    assert len(db.alias_history()) == 4


def test_store_end_alias_closes_the_open_period_once(db: TelemetryStore) -> None:
    db.set_alias("g1", "g1-champion", "m", 1, set_by="ann", time_us=T0)
    ended = db.end_alias("g1", "g1-champion", time_us=T0 + 5)
    assert ended is not None
    assert (ended.version, ended.to_us) == (1, T0 + 5)
    assert db.end_alias("g1", "g1-champion") is None
    assert db.alias_history(group="g1")[0].to_us == T0 + 5


def test_store_set_alias_without_actor_is_config_error(db: TelemetryStore) -> None:
    with pytest.raises(ConfigError):
        db.set_alias("g1", "g1-champion", "m", 1, set_by=" ")


def test_store_events_in_order_filtered_and_limited(db: TelemetryStore) -> None:
    kinds = ["model.registered", "model.validated", "model.promoted", "model.registered"]
    stored = [db.append_event(k, f"m/{i}", {"i": i, "note": "ü"}) for i, k in enumerate(kinds)]
    assert [e.seq for e in stored] == sorted(e.seq for e in stored)
    assert [e.kind for e in db.events()] == kinds
    assert [e.subject for e in db.events(kind="model.registered")] == ["m/0", "m/3"]
    assert [e.subject for e in db.events(limit=2)] == ["m/2", "m/3"]
    assert [e.subject for e in db.events(since_seq=stored[2].seq)] == ["m/2", "m/3"]
    assert json.loads(db.events()[0].payload_json) == {"i": 0, "note": "ü"}


def test_store_event_with_bad_payload_is_input_error(db: TelemetryStore) -> None:
    with pytest.raises(InputError):
        db.append_event("model.promoted", "m/1", {"x": float("nan")})
    with pytest.raises(InputError):
        db.append_event("model.promoted", "", {})
    assert db.events() == []


def test_event_sink_without_broker_stores_only(db: TelemetryStore) -> None:
    record = EventSink(db, None, topic_prefix="t/v1").emit("release.published", "r-1", {"ok": True})
    assert db.events() == [record]


def test_event_sink_bad_kind_is_config_error_and_stores_nothing(db: TelemetryStore) -> None:
    with pytest.raises(ConfigError):
        EventSink(db).emit("Model Promoted", "m/1")
    assert db.events() == []
