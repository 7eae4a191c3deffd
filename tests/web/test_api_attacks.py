"""What an outsider would try: tokens in the wrong place, odd paths and bodies, failures inside the hub."""

from __future__ import annotations

import time

import pytest

from pumpops.errors import StoreError

from .conftest import Api

pytestmark = [pytest.mark.mosquitto]


def test_token_in_the_query_string_or_a_cookie_is_not_accepted(api: Api) -> None:
    token = api.tokens["admin"]
    assert api.client.get("/api/fleet", params={"access_token": token}).status_code == 401
    api.client.cookies.set("token", token)
    try:
        assert api.client.get("/api/fleet").status_code == 401
    finally:
        api.client.cookies.clear()


def test_two_tokens_in_one_header_are_refused(api: Api) -> None:
    header = f"Bearer {api.tokens['viewer']}, Bearer {api.tokens['admin']}"
    assert api.client.get("/api/fleet", headers={"Authorization": header}).status_code == 401


@pytest.mark.parametrize(
    "device_id", ["p-0' OR '1'='1", "x" * 5000, "..%2F..%2Fetc%2Fpasswd", "p-0%00", "\u00fcber-pump"]
)
def test_hostile_device_ids_are_404_and_harmless(api: Api, device_id: str) -> None:
    response = api.get(f"/api/devices/{device_id}")
    assert response.status_code == 404
    assert api.get("/api/devices").json()["total"] == 4  # nothing changed


def test_unknown_path_and_wrong_method_are_json(api: Api) -> None:
    missing = api.get("/api/no-such-thing")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    wrong = api.client.delete("/api/fleet", headers=api.headers("admin"))
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"[1, 2]", "application/json"),
        (b"verdict=confirmed", "application/x-www-form-urlencoded"),
        (b"\xff\xfe", "application/json"),
    ],
)
def test_feedback_body_that_is_not_a_json_object_is_422(api: Api, content: bytes, content_type: str) -> None:
    alarm = api.alarm("p-0", int(time.time() * 1000))
    response = api.client.post(
        f"/api/alarms/{alarm}/feedback",
        headers={**api.headers("operator"), "Content-Type": content_type},
        content=content,
    )
    assert response.status_code == 422
    assert api.store.feedback() == []


def test_promote_version_below_one_is_422(api: Api) -> None:
    assert api.post("/api/models/m/0/promote", "admin").status_code == 422
    assert api.post("/api/models/m/-3/promote", "admin").status_code == 422


def test_a_second_verdict_replaces_the_first_and_both_are_audited(api: Api) -> None:
    alarm = api.alarm("p-2", int(time.time() * 1000))
    api.post(f"/api/alarms/{alarm}/feedback", "operator", {"verdict": "confirmed"})
    api.post(f"/api/alarms/{alarm}/feedback", "admin", {"verdict": "false_alarm"})
    (stored,) = api.store.feedback()
    assert (stored.verdict, stored.actor) == ("false_alarm", "admin-ann")
    assert [e.actor for e in api.audit("alarm.feedback")] == ["operator-ann", "admin-ann"]


def test_a_store_outage_is_503_with_the_reason(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(**kwargs: object) -> list[object]:
        raise StoreError("cannot read alarms of postgresql://db: connection refused")

    monkeypatch.setattr(api.store, "alarm_messages", down)
    response = api.get("/api/alarms")
    assert response.status_code == 503
    assert response.json() == {
        "error": "unavailable",
        "detail": "cannot read alarms of postgresql://db: connection refused",
    }


def test_a_bug_is_500_without_a_traceback_or_its_message(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(actor: str) -> object:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(api.context, "rollouts", broken)
    response = api.get("/api/rollouts")
    assert response.status_code == 500
    assert response.json()["error"] == "internal"
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text
    assert api.get("/api/fleet").status_code == 200  # the hub keeps serving
