"""The store contract for rollouts, fleet alerts and alarm feedback (revision 0006, issue 7).

Every test runs on SQLite and on PostgreSQL (see ``conftest.py``; each
PostgreSQL test gets its own schema). ``put_rollout`` upserts by id and keeps
``created_at_us``; ``open_fleet_alert`` opens an id once and
``close_fleet_alert`` closes it once; ``put_feedback`` keeps the newest verdict
per alarm and derives the device from the alarm id.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest

from pumpops.errors import ConfigError, InputError
from pumpops.store import (
    FEEDBACK_VERDICTS,
    ROLLOUT_ACTIVE_STATUSES,
    FeedbackRecord,
    FleetAlertRecord,
    RolloutRecord,
    TelemetryStore,
    open_store,
)

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds
SECOND = 1_000_000

ALL_STATUSES = ("pending", "running", "paused", "rolling_back", "rolled_back", "completed", "aborted")
BAD_JSON_OBJECTS = ["", "{", "{'a': 1}", "[]", "null", "3", '"text"', '{"a": 1} trailing']


def put(
    store: TelemetryStore, rollout_id: str, status: str = "running", *, t: int = 0, **kw: str
) -> RolloutRecord:
    """Put a rollout at ``T0 + t`` seconds; ``kw`` overrides group, release or state_json."""
    fields = {"group": "g1", "release": "pumpops-skab/3", "state_json": json.dumps({"status": status})}
    fields.update(kw)
    return store.put_rollout(rollout_id, status=status, time_us=T0 + t * SECOND, **fields)


def open_alert(
    store: TelemetryStore, alert_id: str, group: str = "g1", *, t: int = 0, detail: str = "{}"
) -> bool:
    return store.open_fleet_alert(
        alert_id, group=group, kind="fleet_drift", detail_json=detail, time_us=T0 + t * SECOND
    )


# -- rollouts --------------------------------------------------------------------------------------


def test_rollout_put_then_get_round_trips_every_field(store: TelemetryStore) -> None:
    state = json.dumps({"waves": [["p-1"], ["p-2"]], "note": "é ✓", "x": None})
    got = store.put_rollout(
        "r-1", group="g1", release="pumpops-skab/3", status="pending", state_json=state, time_us=T0
    )
    assert got == RolloutRecord("r-1", "g1", "pumpops-skab/3", "pending", state, T0, T0)
    assert store.get_rollout("r-1") == got
    assert got.active


def test_rollout_upsert_keeps_created_at_and_replaces_the_rest(store: TelemetryStore) -> None:
    put(store, "r-1", "pending", t=0)
    updated = put(store, "r-1", "paused", t=30, release="pumpops-skab/4", state_json='{"wave": 2}')
    expected = RolloutRecord("r-1", "g1", "pumpops-skab/4", "paused", '{"wave": 2}', T0, T0 + 30 * SECOND)
    assert updated == expected
    assert store.get_rollout("r-1") == expected
    assert store.rollouts() == [expected]


def test_rollout_unknown_id_is_none(store: TelemetryStore) -> None:
    assert store.get_rollout("r-nope") is None
    assert store.rollouts() == []


def test_rollouts_ordered_by_created_at_and_filtered_by_group(store: TelemetryStore) -> None:
    put(store, "r-b", t=20)
    put(store, "r-c", t=10, group="g2")
    put(store, "r-a", t=30)
    put(store, "r-b", "completed", t=40)  # an update does not move it
    assert [r.rollout_id for r in store.rollouts()] == ["r-c", "r-b", "r-a"]
    assert [r.rollout_id for r in store.rollouts(group="g1")] == ["r-b", "r-a"]
    assert store.rollouts(group="g3") == []


def test_rollouts_active_only_keeps_pending_running_paused_rolling_back(store: TelemetryStore) -> None:
    for i, status in enumerate(ALL_STATUSES):
        put(store, f"r-{i}", status, t=i, group="g1" if i % 2 else "g2")
    active = store.rollouts(active_only=True)
    assert [r.status for r in active] == ["pending", "running", "paused", "rolling_back"]
    assert set(ROLLOUT_ACTIVE_STATUSES) == {r.status for r in active}
    assert [r.status for r in store.rollouts(group="g1", active_only=True)] == ["running", "rolling_back"]
    put(store, "r-1", "completed", t=50)  # running -> completed: no longer active
    assert [r.status for r in store.rollouts(active_only=True)] == ["pending", "paused", "rolling_back"]


@pytest.mark.parametrize("state_json", BAD_JSON_OBJECTS)
def test_rollout_bad_state_json_is_input_error_and_stores_nothing(
    store: TelemetryStore, state_json: str
) -> None:
    with pytest.raises(InputError, match="state_json"):
        store.put_rollout("r-1", group="g1", release="v2", status="pending", state_json=state_json)
    assert store.rollouts() == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rollout_id", ""),
        ("rollout_id", "r" * 129),
        ("group", "no spaces"),
        ("group", ""),
        ("release", " "),
        ("status", ""),
        ("status", "s" * 33),
        ("release", "v\x00"),
        ("time_us", -1),
    ],
)
def test_rollout_malformed_field_is_input_error(store: TelemetryStore, field: str, value: object) -> None:
    fields: dict[str, object] = {
        "rollout_id": "r-1",
        "group": "g1",
        "release": "v2",
        "status": "pending",
        "state_json": "{}",
        "time_us": T0,
    }
    fields[field] = value
    with pytest.raises(InputError):
        store.put_rollout(**fields)  # type: ignore[arg-type]
    assert store.rollouts() == []


def test_rollout_default_time_is_now(store: TelemetryStore) -> None:
    before = time.time_ns() // 1000
    got = store.put_rollout("r-1", group="g1", release="v2", status="pending", state_json="{}")
    assert before <= got.created_at_us == got.updated_at_us <= time.time_ns() // 1000


# -- fleet alerts ----------------------------------------------------------------------------------


def test_fleet_alert_open_then_list_round_trips_every_field(store: TelemetryStore) -> None:
    detail = json.dumps({"drifting": ["p-1", "p-2"], "fraction": 0.5, "window_s": 3600})
    assert open_alert(store, "drift:g1:1", t=5, detail=detail)
    expected = FleetAlertRecord("drift:g1:1", "g1", "fleet_drift", T0 + 5 * SECOND, None, detail)
    assert store.fleet_alerts() == [expected]
    assert store.fleet_alerts()[0].is_open


def test_fleet_alert_open_same_id_again_is_false_and_changes_nothing(store: TelemetryStore) -> None:
    assert open_alert(store, "a-1", t=0, detail='{"n": 1}')
    assert not open_alert(store, "a-1", "g2", t=10, detail='{"n": 2}')
    (alert,) = store.fleet_alerts()
    assert (alert.group, alert.opened_at_us, alert.detail_json) == ("g1", T0, '{"n": 1}')


def test_fleet_alert_close_twice_second_is_false(store: TelemetryStore) -> None:
    open_alert(store, "a-1")
    assert store.close_fleet_alert("a-1", time_us=T0 + 60 * SECOND)
    assert not store.close_fleet_alert("a-1", time_us=T0 + 90 * SECOND)
    (alert,) = store.fleet_alerts()
    assert alert.closed_at_us == T0 + 60 * SECOND
    assert not alert.is_open
    assert not open_alert(store, "a-1", t=120)  # a closed id is not reopened
    assert store.fleet_alerts(open_only=True) == []


def test_fleet_alert_close_unknown_is_false(store: TelemetryStore) -> None:
    assert not store.close_fleet_alert("a-nope")
    assert store.fleet_alerts() == []


def test_fleet_alerts_ordered_by_opening_filtered_by_group_and_open(store: TelemetryStore) -> None:
    open_alert(store, "a-3", "g1", t=30)
    open_alert(store, "a-1", "g2", t=10)
    open_alert(store, "a-2", "g1", t=20)
    store.close_fleet_alert("a-2", time_us=T0 + 40 * SECOND)
    assert [a.alert_id for a in store.fleet_alerts()] == ["a-1", "a-2", "a-3"]
    assert [a.alert_id for a in store.fleet_alerts(group="g1")] == ["a-2", "a-3"]
    assert [a.alert_id for a in store.fleet_alerts(open_only=True)] == ["a-1", "a-3"]
    assert [a.alert_id for a in store.fleet_alerts(group="g1", open_only=True)] == ["a-3"]


@pytest.mark.parametrize("detail_json", BAD_JSON_OBJECTS)
def test_fleet_alert_bad_detail_json_is_input_error_and_stores_nothing(
    store: TelemetryStore, detail_json: str
) -> None:
    with pytest.raises(InputError, match="detail_json"):
        store.open_fleet_alert("a-1", group="g1", kind="fleet_drift", detail_json=detail_json)
    assert store.fleet_alerts() == []


def test_fleet_alert_opened_concurrently_is_stored_once(store_url: Callable[[], str]) -> None:
    # Two monitor processes noticing the same drift at once: exactly one opens it.
    url = store_url()
    stores = [open_store(url) for _ in range(2)]
    stores[0].upgrade()
    barrier = threading.Barrier(2)
    results: list[bool] = []
    errors: list[BaseException] = []

    def race(writer: TelemetryStore) -> None:
        barrier.wait()
        try:
            results.append(open_alert(writer, "a-1"))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(s,)) for s in stores]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        assert sorted(results) == [False, True]
        assert len(stores[1].fleet_alerts()) == 1
    finally:
        for s in stores:
            s.close()


# -- alarm feedback --------------------------------------------------------------------------------


def test_feedback_put_then_list_round_trips_and_derives_device(store: TelemetryStore) -> None:
    got = store.put_feedback(
        "p-1:1767225600123", verdict="confirmed", actor="ana", note="bearing é", time_us=T0
    )
    assert got == FeedbackRecord("p-1:1767225600123", "p-1", "confirmed", "ana", "bearing é", T0)
    assert store.feedback() == [got]


@pytest.mark.parametrize(
    ("alarm_id", "device_id"),
    [("p-1:0", "p-1"), ("site-a:p-7:1767225600000", "site-a:p-7"), ("P.9_x:12", "P.9_x")],
)
def test_feedback_device_id_is_the_alarm_id_before_its_last_colon(
    store: TelemetryStore, alarm_id: str, device_id: str
) -> None:
    assert store.put_feedback(alarm_id, verdict="false_alarm", actor="ana").device_id == device_id
    assert [f.alarm_id for f in store.feedback(device_id=device_id)] == [alarm_id]


def test_feedback_newest_verdict_wins(store: TelemetryStore) -> None:
    store.put_feedback("p-1:5", verdict="confirmed", actor="ana", time_us=T0)
    newer = store.put_feedback("p-1:5", verdict="false_alarm", actor="bo", note="valve", time_us=T0 + SECOND)
    assert newer == FeedbackRecord("p-1:5", "p-1", "false_alarm", "bo", "valve", T0 + SECOND)
    # One put out of order (older than the stored verdict) changes nothing and returns the stored one.
    late = store.put_feedback("p-1:5", verdict="confirmed", actor="cy", time_us=T0 + SECOND // 2)
    assert late == newer
    assert store.feedback() == [newer]


def test_feedback_filter_by_device_and_since(store: TelemetryStore) -> None:
    store.put_feedback("p-2:3", verdict="confirmed", actor="ana", time_us=T0 + 30 * SECOND)
    store.put_feedback("p-1:2", verdict="false_alarm", actor="ana", time_us=T0 + 20 * SECOND)
    store.put_feedback("p-1:1", verdict="confirmed", actor="ana", time_us=T0 + 10 * SECOND)
    assert [f.alarm_id for f in store.feedback()] == ["p-1:1", "p-1:2", "p-2:3"]
    assert [f.alarm_id for f in store.feedback(device_id="p-1")] == ["p-1:1", "p-1:2"]
    assert [f.alarm_id for f in store.feedback(since_us=T0 + 20 * SECOND)] == ["p-1:2", "p-2:3"]
    assert [f.alarm_id for f in store.feedback(device_id="p-1", since_us=T0 + 15 * SECOND)] == ["p-1:2"]
    assert store.feedback(device_id="p-9") == []


@pytest.mark.parametrize("verdict", ["", "Confirmed", "false-alarm", "fault", "unsure"])
def test_feedback_bad_verdict_is_input_error_and_stores_nothing(store: TelemetryStore, verdict: str) -> None:
    assert verdict not in FEEDBACK_VERDICTS
    with pytest.raises(InputError, match="verdict"):
        store.put_feedback("p-1:5", verdict=verdict, actor="ana")
    assert store.feedback() == []


BAD_ALARM_IDS = ["p-1", "p-1:", ":5", "p-1:abc", "p 1:5", "p-1:-5", "p-1:\u0663", "p:" + "9" * 130]


@pytest.mark.parametrize("alarm_id", BAD_ALARM_IDS)
def test_feedback_malformed_alarm_id_is_input_error(store: TelemetryStore, alarm_id: str) -> None:
    with pytest.raises(InputError, match="alarm id"):
        store.put_feedback(alarm_id, verdict="confirmed", actor="ana")
    assert store.feedback() == []


def test_feedback_empty_actor_is_config_error(store: TelemetryStore) -> None:
    with pytest.raises(ConfigError, match="actor"):
        store.put_feedback("p-1:5", verdict="confirmed", actor=" ")
    assert store.feedback() == []


def test_feedback_note_with_nul_is_input_error(store: TelemetryStore) -> None:
    with pytest.raises(InputError, match="note"):
        store.put_feedback("p-1:5", verdict="confirmed", actor="ana", note="a\x00b")
    assert store.feedback() == []
