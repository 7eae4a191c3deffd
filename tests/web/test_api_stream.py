"""``GET /api/events``: stored events and alarms as server-sent events, resumable by id; bad ids refused."""

from __future__ import annotations

import time

import pytest

from .conftest import GROUP, Api, json_lines

pytestmark = [pytest.mark.mosquitto]


def _cursor(api: Api) -> str:
    newest = api.store.events(limit=1)
    return f"e{newest[-1].seq if newest else 0}.a{time.time_ns() // 1000 - 1}"


def test_stream_delivers_an_alarm_stored_after_the_cursor(api: Api) -> None:
    cursor = _cursor(api)
    alarm = api.alarm("p-2", int(time.time() * 1000))
    response = api.get("/api/events", params={"since": cursor, "max_events": 1, "max_seconds": 20})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    (event,) = json_lines(response.text)
    assert event["event"] == "alarm"
    assert event["device_id"] == "p-2"
    assert event["body"]["alarm_id"] == alarm
    assert "\nid: e" in "\n" + response.text


def test_stream_delivers_rollout_steps_and_acknowledgements_in_order(api: Api) -> None:
    for version in (1, 2):
        api.store.add_release(
            "pumpops-skab", version, GROUP, ["x86_64-ipc"], created_by="ci", bundle_root="/b", record={}
        )
    alarm = api.alarm("p-0", int(time.time() * 1000))
    cursor = _cursor(api)
    body = {"release": "pumpops-skab/2", "group": GROUP, "gate": {"on_fail": "pause"}}
    started = api.post("/api/rollouts", "admin", body)
    assert started.status_code == 201, started.text
    rid = started.json()["rollout_id"]
    api.post(f"/api/rollouts/{rid}/pause", "operator")
    api.post(f"/api/alarms/{alarm}/ack", "operator")
    response = api.get("/api/events", params={"since": cursor, "max_events": 3, "max_seconds": 20})
    events = json_lines(response.text)
    assert [(e["event"], e["kind"]) for e in events] == [
        ("rollout", "rollout.started"),
        ("rollout", "rollout.paused"),
        ("alarm", "alarm.acknowledged"),
    ]
    assert events[2]["payload"]["alarm_id"] == alarm


def test_stream_resumes_from_last_event_id_without_repeats(api: Api) -> None:
    cursor = _cursor(api)
    api.alarm("p-1", int(time.time() * 1000) - 2000)
    first = api.get("/api/events", params={"since": cursor, "max_events": 1, "max_seconds": 20})
    last_id = next(line for line in first.text.splitlines() if line.startswith("id: ")).removeprefix("id: ")
    api.alarm("p-3", int(time.time() * 1000))
    second = api.client.get(
        "/api/events",
        headers={**api.headers("viewer"), "Last-Event-ID": last_id},
        params={"max_events": 1, "max_seconds": 20},
    )
    assert [e["device_id"] for e in json_lines(second.text)] == ["p-3"]


def test_stream_includes_state_only_when_asked(api: Api) -> None:
    cursor = _cursor(api)
    api.state("p-0")
    api.alarm("p-0", int(time.time() * 1000))
    default = api.get("/api/events", params={"since": cursor, "max_events": 1, "max_seconds": 20})
    assert [e["event"] for e in json_lines(default.text)] == ["alarm"]
    both = api.get(
        "/api/events",
        params={"since": cursor, "include": ["alarm", "state"], "max_events": 2, "max_seconds": 20},
    )
    assert [e["event"] for e in json_lines(both.text)] == ["state", "alarm"]


def test_stream_quiet_ends_after_max_seconds_with_no_events(api: Api) -> None:
    response = api.get("/api/events", params={"max_seconds": 0.2})
    assert response.status_code == 200
    assert json_lines(response.text) == []


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"since": "yesterday"}, 400),
        ({"since": "e1.a2; DROP TABLE"}, 400),
        ({"include": "telemetry"}, 422),
        ({"max_events": 0}, 422),
    ],
)
def test_stream_bad_parameters_are_4xx(api: Api, params: dict[str, object], status: int) -> None:
    response = api.get("/api/events", params=params)
    assert response.status_code == status
    assert response.json()["detail"]


def test_stream_needs_a_token(api: Api) -> None:
    assert api.client.get("/api/events", params={"max_seconds": 0.1}).status_code == 401
