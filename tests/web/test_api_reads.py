"""The read endpoints: fleet, devices, telemetry downsampling, alarms, audit, rollouts, drift; bad input."""

from __future__ import annotations

import time

import numpy as np
import pytest

from .conftest import DEVICES, GROUP, Api

pytestmark = [pytest.mark.mosquitto]


def test_fleet_counts_devices_by_condition_and_lists_worst_first(api: Api) -> None:
    api.state("p-0")
    api.state("p-1", health="failed")
    summary = api.get("/api/fleet").json()
    assert summary["devices"] == len(DEVICES)
    assert summary["by_condition"]["unhealthy"] == 1
    assert summary["by_condition"]["ok"] == 1
    assert summary["by_condition"]["never_seen"] == 2
    assert summary["groups"][0]["group"] == GROUP
    page = api.get("/api/devices", params={"limit": 2}).json()
    assert page["total"] == 4
    assert [d["device_id"] for d in page["devices"]] == ["p-1", "p-0"]  # unhealthy before ok
    row = page["devices"][0]
    assert row["model"] == "pumpops-skab/1"
    assert row["health"] == "failed"
    assert row["outbox_depth"] == 3


def test_fleet_view_older_than_two_seconds_is_served_stale_and_refreshed_behind(api: Api) -> None:
    api.state("p-0")
    assert api.get("/api/fleet").json()["by_condition"]["ok"] == 1
    api.state("p-3")
    when, view = api.context.cache["fleet_view"]
    api.context.cache["fleet_view"] = (when - 60, view)  # as if computed a minute ago
    assert api.get("/api/fleet").json()["by_condition"]["ok"] == 1  # answered at once, from the old view
    deadline = time.monotonic() + 30
    while api.get("/api/fleet").json()["by_condition"]["ok"] != 2:  # the refresh lands
        assert time.monotonic() < deadline, "the fleet view was not refreshed"
        time.sleep(0.05)


def test_devices_filters_page_and_clamps_a_huge_limit(api: Api) -> None:
    page = api.get("/api/devices", params={"limit": 1_000_000, "site": "site-0"}).json()
    assert page["limit"] == 500
    assert [d["device_id"] for d in page["devices"]] == ["p-0", "p-2"]
    assert api.get("/api/devices", params={"search": "p-3"}).json()["total"] == 1


@pytest.mark.parametrize(
    ("params", "status"),
    [({"condition": "on-fire"}, 400), ({"offset": -1}, 422), ({"limit": 0}, 422), ({"limit": "ten"}, 422)],
)
def test_devices_bad_parameters_are_4xx_with_reasons(
    api: Api, params: dict[str, object], status: int
) -> None:
    response = api.get("/api/devices", params=params)
    assert response.status_code == status
    assert response.json()["detail"]


def test_device_unknown_is_404(api: Api) -> None:
    response = api.get("/api/devices/no-such-pump")
    assert response.status_code == 404
    assert "no-such-pump" in response.json()["detail"]


def test_device_shows_its_newest_state(api: Api) -> None:
    api.state("p-2", version=4)
    device = api.get("/api/devices/p-2").json()
    assert device["state"]["model_version"] == 4
    assert device["condition"] == "ok"


def test_telemetry_downsamples_a_day_to_the_point_budget_keeping_the_spike(api: Api) -> None:
    start_us = 1_700_000_000_000_000
    ts = start_us + np.arange(86_400, dtype=np.int64) * 1_000_000  # a day at 1 Hz
    flow = np.full(86_400, 2.0)
    flow[50_000] = 99.0
    api.readings("p-0", ts, {"flow": flow})
    body = api.get(
        "/api/devices/p-0/telemetry",
        params={"since_us": start_us, "until_us": start_us + 86_400_000_000, "points": 500},
    ).json()
    (series,) = body["series"]
    assert series["sensor"] == "flow"
    assert len(series["values"]) <= 500
    assert max(series["values"]) == 99.0
    assert body["raw_readings"] == 86_400
    assert series["ts_us"] == sorted(series["ts_us"])


def test_telemetry_huge_point_budget_is_clamped(api: Api) -> None:
    ts = 1_700_000_000_000_000 + np.arange(20, dtype=np.int64) * 1_000_000
    api.readings("p-0", ts, {"flow": np.arange(20, dtype=float)})
    body = api.get(
        "/api/devices/p-0/telemetry",
        params={"since_us": int(ts[0]), "until_us": int(ts[-1]) + 1, "points": 10**9},
    ).json()
    assert body["points_per_series"] == 10_000
    assert body["clamped"] is True
    assert len(body["series"][0]["values"]) == 20


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/api/devices/p-0/telemetry", {"since_us": 10, "until_us": 5}, 400),
        ("/api/devices/p-0/telemetry", {"since_us": -1}, 422),
        ("/api/devices/p-0/telemetry", {"until_us": 2**70}, 422),
        ("/api/devices/p-0/telemetry", {"points": 1}, 422),
        ("/api/devices/nope/telemetry", {}, 404),
        ("/api/alarms", {"since_us": 10, "until_us": 10}, 400),
        ("/api/audit/verify", {"head": "xyz"}, 422),
        ("/api/rollouts/no-such-rollout", {}, 404),
        ("/api/models/pumpops-skab/notanumber", {}, 422),
    ],
)
def test_reads_bad_input_is_4xx_with_a_reason(
    api: Api, path: str, params: dict[str, object], status: int
) -> None:
    response = api.get(path, params=params)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]
    assert body["detail"]


def test_alarms_newest_first_with_acknowledgement_and_feedback(api: Api) -> None:
    now_ms = int(time.time() * 1000)
    first = api.alarm("p-0", now_ms - 60_000)
    second = api.alarm("p-1", now_ms - 30_000)
    assert api.post(f"/api/alarms/{first}/ack", "operator", {"note": "crew sent"}).status_code == 200
    assert (
        api.post(f"/api/alarms/{second}/feedback", "operator", {"verdict": "false_alarm"}).status_code == 200
    )
    alarms = api.get("/api/alarms").json()["alarms"]
    assert [a["alarm_id"] for a in alarms] == [second, first]
    assert alarms[1]["acknowledged"]["by"] == "operator-ann"
    assert alarms[0]["feedback"]["verdict"] == "false_alarm"
    only = api.get("/api/alarms", params={"device_id": "p-0"}).json()["alarms"]
    assert [a["alarm_id"] for a in only] == [first]


def test_alarms_page_on_with_next_misses_and_repeats_nothing_even_on_equal_times(api: Api) -> None:
    now_ms = int(time.time() * 1000)
    expected = [api.alarm(d.device_id, now_ms - 1000) for d in DEVICES]  # four alarms, one instant
    expected += [api.alarm("p-0", now_ms - 5000 - i) for i in range(3)]
    seen: list[str] = []
    page = api.get("/api/alarms", params={"limit": 2}).json()
    while True:
        seen += [a["alarm_id"] for a in page["alarms"]]
        if page["next"] is None:
            break
        page = api.get("/api/alarms", params={"limit": 2, "after": page["next"]}).json()
    assert sorted(seen) == sorted(expected)
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize("after", ["yesterday", "12", ":p-0:1", "x:p-0:1", "9" * 30 + ":p-0:1"])
def test_alarms_bad_next_is_400(api: Api, after: str) -> None:
    response = api.get("/api/alarms", params={"after": after})
    assert response.status_code == 400
    assert "previous page" in response.json()["detail"]


def test_audit_lists_entries_and_verifies_the_chain(api: Api) -> None:
    alarm = api.alarm("p-0", int(time.time() * 1000))
    api.post(f"/api/alarms/{alarm}/ack", "operator")
    entries = api.get("/api/audit").json()
    assert [e["action"] for e in entries] == ["alarm.acknowledged"]
    verdict = api.get("/api/audit/verify").json()
    assert verdict["ok"] is True
    assert verdict["count"] == 1
    assert verdict["head_hash"] == entries[-1]["hash"]


def test_drift_per_group_and_per_pump(api: Api) -> None:
    api.agent(
        "p-0", "drift", {"drifting": True, "psi": {"flow": 0.4}, "drifted": ["flow"], "change_fired": False}
    )
    drift = api.get("/api/drift").json()
    assert drift["groups"][0]["group"] == GROUP
    reports = api.get("/api/drift/p-0").json()["reports"]
    assert reports[0]["psi"] == {"flow": 0.4}


def test_releases_and_empty_rollouts(api: Api) -> None:
    api.store.add_release(
        "pumpops-skab", 2, GROUP, ["x86_64-ipc"], created_by="ci", bundle_root="/b", record={}
    )
    (release,) = api.get("/api/releases").json()
    assert release["model"] == "pumpops-skab/2"
    assert api.get("/api/rollouts").json() == []
