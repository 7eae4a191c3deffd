"""Write endpoints: the commands' code path, every write audited with the token's owner as actor."""

from __future__ import annotations

import time

import pytest

from .conftest import DEVICES, GROUP, Api

pytestmark = [pytest.mark.mosquitto]


def _release(api: Api) -> None:
    for version in (1, 2):
        api.store.add_release(
            "pumpops-skab", version, GROUP, ["x86_64-ipc"], created_by="ci", bundle_root="/b", record={}
        )
    for device in DEVICES:
        api.state(device.device_id, version=1)


def test_ack_is_stored_once_and_audited_each_time_with_the_token_owner(api: Api) -> None:
    alarm = api.alarm("p-0", int(time.time() * 1000))
    first = api.post(f"/api/alarms/{alarm}/ack", "operator", {"note": "seen"})
    assert first.status_code == 200
    assert first.json()["new"] is True
    again = api.post(f"/api/alarms/{alarm}/ack", "admin")
    assert again.json()["new"] is False
    assert again.json()["acknowledged_by"] == "operator-ann"  # the first acknowledgement is kept
    assert [e.actor for e in api.audit("alarm.acknowledged")] == ["operator-ann", "admin-ann"]


@pytest.mark.parametrize(
    ("alarm_id", "status"),
    [("p-0:123", 404), ("no-colon", 422), ("p-0:notanumber", 422), ("x" * 200 + ":1", 422)],
)
def test_ack_unknown_or_malformed_alarm_is_4xx_and_writes_nothing(
    api: Api, alarm_id: str, status: int
) -> None:
    response = api.post(f"/api/alarms/{alarm_id}/ack", "operator")
    assert response.status_code == status
    assert api.store.audit_entries() == []


def test_feedback_is_the_record_the_retrain_chain_reads(api: Api) -> None:
    alarm = api.alarm("p-1", int(time.time() * 1000))
    response = api.post(
        f"/api/alarms/{alarm}/feedback", "operator", {"verdict": "confirmed", "note": "bearing"}
    )
    assert response.status_code == 200
    (stored,) = api.store.feedback()  # what the retrain policy counts (store.feedback(since_us=...))
    assert (stored.alarm_id, stored.verdict, stored.actor, stored.note) == (
        alarm,
        "confirmed",
        "operator-ann",
        "bearing",
    )
    (entry,) = api.audit("alarm.feedback")
    assert entry.actor == "operator-ann"


@pytest.mark.parametrize(
    "body",
    [
        {"verdict": "maybe"},
        {},
        {"verdict": "confirmed", "extra": 1},
        {"verdict": "confirmed", "note": "x" * 3000},
    ],
)
def test_feedback_bad_body_is_422_with_the_field_named(api: Api, body: dict[str, object]) -> None:
    alarm = api.alarm("p-1", int(time.time() * 1000))
    response = api.post(f"/api/alarms/{alarm}/feedback", "operator", body)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert all(r["where"].startswith("body") for r in response.json()["detail"])
    assert api.store.feedback() == []


def test_malformed_json_body_is_422_not_a_traceback(api: Api) -> None:
    alarm = api.alarm("p-1", int(time.time() * 1000))
    response = api.client.post(
        f"/api/alarms/{alarm}/feedback",
        headers={**api.headers("operator"), "Content-Type": "application/json"},
        content=b'{"verdict": "confirmed",',
    )
    assert response.status_code == 422
    assert "Traceback" not in response.text
    assert response.json()["error"] == "invalid_request"


def test_rollout_start_pause_resume_abort_through_the_service_audited_by_owner(api: Api) -> None:
    _release(api)
    started = api.post(
        "/api/rollouts",
        "admin",
        {
            "release": "pumpops-skab/2",
            "group": GROUP,
            "waves": [50, 100],
            "gate": {"min_soak_s": 60},
            "reason": "r",
        },
    )
    assert started.status_code == 201, started.text
    rid = started.json()["rollout_id"]
    assert started.json()["status"] == "running"
    assert started.json()["wave_sizes"] == [2, 2]
    assert (
        api.post(f"/api/rollouts/{rid}/pause", "operator", {"reason": "night"}).json()["status"] == "paused"
    )
    assert api.post(f"/api/rollouts/{rid}/pause", "operator").status_code == 400  # not running any more
    assert api.post(f"/api/rollouts/{rid}/resume", "operator").json()["status"] == "running"
    assert api.post(f"/api/rollouts/{rid}/abort", "operator").status_code == 403
    aborted = api.post(f"/api/rollouts/{rid}/abort", "admin", {"roll_back": True, "reason": "enough"})
    assert aborted.status_code == 200
    actors = {(e.action, e.actor) for e in api.store.audit_entries() if e.action.startswith("rollout.")}
    assert any(actor == "admin-ann" and "start" in action for action, actor in actors), actors
    assert any(actor == "operator-ann" and "pause" in action for action, actor in actors), actors
    assert ("rollout.rolling_back", "admin-ann") in actors  # abort with roll_back
    detail = api.get(f"/api/rollouts/{rid}").json()
    assert [h["action"] for h in detail["history"]][:3] == [
        "rollout.started",
        "rollout.paused",
        "rollout.resumed",
    ]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"release": "pumpops-skab/9", "group": GROUP}, 404, "release"),
        ({"release": "pumpops-skab/2", "group": GROUP, "waves": [0]}, 400, "wave"),
        ({"release": "pumpops-skab/2", "group": GROUP, "gate": {"bogus_s": 1}}, 400, "bogus_s"),
        ({"release": "pumpops-skab/2", "group": GROUP, "gate": {"on_fail": "explode"}}, 400, "on_fail"),
        ({"release": "no-slash", "group": GROUP}, 400, "no-slash"),
        ({"release": "pumpops-skab/2"}, 422, "group"),
    ],
)
def test_rollout_start_bad_input_is_4xx_with_a_reason(
    api: Api, body: dict[str, object], status: int, says: str
) -> None:
    _release(api)
    response = api.post("/api/rollouts", "admin", body)
    assert response.status_code == status, response.text
    assert says in response.text
    assert api.get("/api/rollouts").json() == []


def test_rollout_second_start_for_a_busy_group_is_refused(api: Api) -> None:
    _release(api)
    body = {"release": "pumpops-skab/2", "group": GROUP}
    assert api.post("/api/rollouts", "admin", body).status_code == 201
    refused = api.post("/api/rollouts", "admin", body)
    assert refused.status_code == 400
    assert "active rollout" in refused.json()["detail"]


def test_rollout_command_on_unknown_id_is_404(api: Api) -> None:
    assert api.post("/api/rollouts/r-nope/pause", "operator").status_code == 404
    assert api.post("/api/rollouts/bad id!/pause", "operator").status_code in (404, 422)


def test_promote_unknown_version_is_404_and_audits_nothing(api: Api) -> None:
    response = api.post("/api/models/no-such-model/3/promote", "admin", {"group": GROUP})
    assert response.status_code == 404, response.text
    assert api.store.audit_entries() == []


def test_promote_force_without_reason_is_400(api: Api) -> None:
    response = api.post("/api/models/m/1/promote", "admin", {"force": True})
    assert response.status_code == 400
    assert "reason" in response.json()["detail"]


def test_approve_unknown_version_is_404_and_releases_nothing(api: Api) -> None:
    response = api.post("/api/models/no-such-model/2/approve", "admin", {"rollout": False})
    assert response.status_code == 404, response.text
    assert api.store.releases() == []
    assert api.store.audit_entries() == []
