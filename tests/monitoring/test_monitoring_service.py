"""The monitoring service on a fake store, SQLite and PostgreSQL: drift alerts open and close, feedback.

Agent messages are put with ``put_agent_messages`` as ingest would store them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pumpops.errors import InputError, NotFoundError
from pumpops.monitoring import (
    DRIFT_ALERT_KIND,
    EVENT_ALARM_FEEDBACK,
    EVENT_DRIFT_CLEARED,
    EVENT_DRIFT_DETECTED,
    MonitoringService,
    record_feedback,
)
from pumpops.registry import EventSink
from pumpops.settings import MonitoringSettings

from ._monitoring_records import HOUR_MS, MINUTE_MS, T0_MS, Agent

NOW_MS = T0_MS + 24 * HOUR_MS
SETTINGS = MonitoringSettings()  # 6 h, 0.3, 2


def _us(ms: int) -> int:
    return ms * 1000


def _actions(store: Any) -> list[tuple[str, str]]:
    return [(e.action, e.subject) for e in store.audit_entries()]


def _event_kinds(store: Any) -> list[tuple[str, str]]:
    return [(e.kind, e.subject) for e in store.events()]


@pytest.fixture
def agents() -> dict[str, Agent]:
    names = ["g1-1", "g1-2", "g1-3", "g1-4", "g2-1", "g2-2"]
    return {n: Agent(n, "site-a" if n.startswith("g1") else "site-b") for n in names}


def _report(store: Any, agents: dict[str, Agent], at_ms: int, drifting: set[str]) -> None:
    """Every agent sends a state and a drift report at ``at_ms``; those in ``drifting`` alert."""
    records = []
    for name, agent in agents.items():
        records.append(agent.state(at_ms - MINUTE_MS, drift="drift" if name in drifting else "ok"))
        records.append(agent.drift(at_ms, alert=name in drifting))
    store.put_agent_messages(records)


def test_service_opens_one_alert_per_drifting_group_and_closes_it(
    fleet_store: Any, sink: EventSink, agents: dict[str, Agent]
) -> None:
    service = MonitoringService(fleet_store, sink, SETTINGS, actor="monitor@test")
    _report(fleet_store, agents, NOW_MS, {"g1-1", "g1-2"})

    first = service.evaluate(_us(NOW_MS))
    alert_id = f"drift:g1:{NOW_MS}"
    assert [(c.alert_id, c.group, c.action) for c in first.changes] == [(alert_id, "g1", "opened")]
    assert first.changes[0].detail["drifting_devices"] == ["g1-1", "g1-2"]
    (alert,) = fleet_store.fleet_alerts(open_only=True)
    assert (alert.alert_id, alert.group, alert.kind, alert.opened_at_us) == (
        alert_id,
        "g1",
        DRIFT_ALERT_KIND,
        _us(NOW_MS),
    )
    detail = json.loads(alert.detail_json)
    assert (detail["reporting"], detail["fraction"], detail["policy"]["min_devices"]) == (4, 0.5, 2)
    assert detail["model_versions"] == {"pumpops-g1/1": 4}
    assert _actions(fleet_store) == [(EVENT_DRIFT_DETECTED, alert_id)]
    assert fleet_store.audit_entries()[0].actor == "monitor@test"
    assert _event_kinds(fleet_store) == [(EVENT_DRIFT_DETECTED, alert_id)]
    assert [g.drift.drifting for g in first.view.groups] == [True, False]

    # still drifting ten minutes later: nothing new is written
    later = service.evaluate(_us(NOW_MS + 10 * MINUTE_MS))
    assert later.changes == ()
    assert len(fleet_store.fleet_alerts()) == 1
    assert len(fleet_store.audit_entries()) == 1

    # the devices report no drift any more: the alert closes
    _report(fleet_store, agents, NOW_MS + HOUR_MS, set())
    cleared = service.evaluate(_us(NOW_MS + HOUR_MS))
    assert [(c.alert_id, c.action) for c in cleared.changes] == [(alert_id, "closed")]
    (closed,) = fleet_store.fleet_alerts()
    assert closed.closed_at_us == _us(NOW_MS + HOUR_MS)
    assert fleet_store.fleet_alerts(open_only=True) == []
    assert _actions(fleet_store)[-1] == (EVENT_DRIFT_CLEARED, alert_id)
    assert _event_kinds(fleet_store)[-1] == (EVENT_DRIFT_CLEARED, alert_id)

    # a new episode gets a new alert
    _report(fleet_store, agents, NOW_MS + 2 * HOUR_MS, {"g1-3", "g1-4", "g1-1"})
    again = service.evaluate(_us(NOW_MS + 2 * HOUR_MS))
    assert [c.alert_id for c in again.changes] == [f"drift:g1:{NOW_MS + 2 * HOUR_MS}"]
    assert [a.alert_id for a in service.open_alerts()] == [f"drift:g1:{NOW_MS + 2 * HOUR_MS}"]
    assert len(fleet_store.fleet_alerts(group="g1")) == 2


def test_service_alert_stays_open_when_devices_fall_silent(
    fleet_store: Any, sink: EventSink, agents: dict[str, Agent]
) -> None:
    service = MonitoringService(fleet_store, sink, SETTINGS)
    _report(fleet_store, agents, NOW_MS, {"g2-1", "g2-2"})
    assert [c.group for c in service.evaluate(_us(NOW_MS)).changes] == ["g2"]
    # seven hours without a message: no device reports in the window: no data, not "drift ended"
    silent = service.evaluate(_us(NOW_MS + 7 * HOUR_MS))
    assert silent.changes == ()
    (g2,) = [g for g in silent.view.groups if g.group == "g2"]
    assert (g2.drift.verdict, g2.drift.reason) == ("no data", "no device reported in the last 6 h")
    assert [a.group for a in service.open_alerts()] == ["g2"]
    view = silent.view
    assert all(not d.reporting for d in view.devices)
    assert {d.model for d in view.devices} == {"pumpops-g1/1"}  # the newest state, from before the window
    # the devices report again, without drift: now the alert closes
    _report(fleet_store, agents, NOW_MS + 8 * HOUR_MS, set())
    back = service.evaluate(_us(NOW_MS + 8 * HOUR_MS))
    assert [(c.group, c.action) for c in back.changes] == [("g2", "closed")]


def test_service_ignores_unregistered_devices_and_other_alert_kinds(
    fleet_store: Any, sink: EventSink, agents: dict[str, Agent]
) -> None:
    strangers = [Agent("x-1"), Agent("x-2")]
    fleet_store.put_agent_messages([a.drift(NOW_MS, alert=True) for a in strangers])
    fleet_store.open_fleet_alert("other:g1:1", group="g1", kind="other", detail_json="{}", time_us=1)
    _report(fleet_store, agents, NOW_MS, {"g1-1", "g1-2"})
    service = MonitoringService(fleet_store, sink, SETTINGS)
    result = service.evaluate(_us(NOW_MS))
    assert [c.group for c in result.changes] == ["g1"]  # not "(unregistered)"; "other" is not a drift alert
    assert result.view.group("(unregistered)") is not None
    assert [a.alert_id for a in fleet_store.fleet_alerts(open_only=True)] == [
        "other:g1:1",
        f"drift:g1:{NOW_MS}",
    ]


def test_service_closes_alert_of_a_group_without_devices(fleet_store: Any, sink: EventSink) -> None:
    fleet_store.open_fleet_alert(
        "drift:gone:5", group="gone", kind=DRIFT_ALERT_KIND, detail_json="{}", time_us=5
    )
    result = MonitoringService(fleet_store, sink, SETTINGS).evaluate(_us(NOW_MS))
    assert [(c.alert_id, c.action, c.detail["reason"]) for c in result.changes] == [
        ("drift:gone:5", "closed", "the group has no devices")
    ]
    assert fleet_store.fleet_alerts(open_only=True) == []


def test_service_thresholds_come_from_settings(
    fleet_store: Any, sink: EventSink, agents: dict[str, Agent]
) -> None:
    _report(fleet_store, agents, NOW_MS, {"g1-1"})
    lenient = MonitoringService(fleet_store, sink, MonitoringSettings(min_devices=1, min_fraction=0.25))
    assert lenient.policy.min_devices == 1
    assert [c.group for c in lenient.evaluate(_us(NOW_MS)).changes] == ["g1"]


def test_service_json_of_an_evaluation(fleet_store: Any, sink: EventSink, agents: dict[str, Agent]) -> None:
    _report(fleet_store, agents, NOW_MS, {"g1-1", "g1-2"})
    data = MonitoringService(fleet_store, sink, SETTINGS).evaluate(_us(NOW_MS)).to_dict()
    again = json.loads(json.dumps(data))
    assert again["changes"][0]["action"] == "opened"
    assert [g["group"] for g in again["view"]["groups"]] == ["g1", "g2"]


def test_feedback_on_a_received_alarm_is_stored_audited_and_an_event(
    fleet_store: Any, sink: EventSink, agents: dict[str, Agent]
) -> None:
    started = NOW_MS - HOUR_MS
    agent = agents["g1-2"]
    fleet_store.put_agent_messages(
        [agent.alarm(started), agent.alarm(started, event="cleared", ended_ms=NOW_MS)]
    )
    alarm_id = f"g1-2:{started}"
    got = record_feedback(
        fleet_store,
        sink,
        alarm_id,
        verdict="false_alarm",
        actor="tech@site-a",
        note="valve cycled",
        time_us=10,
    )
    assert (got.alarm_id, got.device_id, got.verdict, got.actor, got.note) == (
        alarm_id,
        "g1-2",
        "false_alarm",
        "tech@site-a",
        "valve cycled",
    )
    assert [(f.alarm_id, f.verdict) for f in fleet_store.feedback()] == [(alarm_id, "false_alarm")]
    assert _actions(fleet_store) == [(EVENT_ALARM_FEEDBACK, alarm_id)]
    payload = json.loads(fleet_store.audit_entries()[0].payload_json)
    assert (payload["verdict"], payload["model_version"], payload["started_ms"]) == (
        "false_alarm",
        1,
        started,
    )
    assert _event_kinds(fleet_store) == [(EVENT_ALARM_FEEDBACK, alarm_id)]

    # a later verdict replaces it; the audit trail keeps both
    record_feedback(fleet_store, sink, alarm_id, verdict="confirmed", actor="lead@hq", time_us=20)
    assert [(f.verdict, f.actor) for f in fleet_store.feedback(device_id="g1-2")] == [
        ("confirmed", "lead@hq")
    ]
    assert [a for a, _ in _actions(fleet_store)] == [EVENT_ALARM_FEEDBACK] * 2


@pytest.mark.parametrize("alarm_id", ["g1-1:123", "nobody:1", "no-colon", ":5"])
def test_feedback_refuses_an_alarm_the_hub_never_received(
    fleet_store: Any, sink: EventSink, agents: dict[str, Agent], alarm_id: str
) -> None:
    fleet_store.put_agent_messages([agents["g1-1"].alarm(NOW_MS), agents["g1-1"].state(NOW_MS + 1)])
    with pytest.raises(NotFoundError, match=f"alarm '{alarm_id}'"):
        record_feedback(fleet_store, sink, alarm_id, verdict="confirmed", actor="tech")
    assert fleet_store.feedback() == []
    assert fleet_store.audit_entries() == []


def test_feedback_refuses_an_unknown_verdict(
    fleet_store: Any, sink: EventSink, agents: dict[str, Agent]
) -> None:
    fleet_store.put_agent_messages([agents["g1-1"].alarm(NOW_MS)])
    with pytest.raises(InputError, match="confirmed, false_alarm"):
        record_feedback(fleet_store, sink, f"g1-1:{NOW_MS}", verdict="maybe", actor="tech")


def test_service_alert_closed_meanwhile_is_not_recorded_twice(
    fleet_store: Any, sink: EventSink, agents: dict[str, Agent]
) -> None:
    service = MonitoringService(fleet_store, sink, SETTINGS)
    _report(fleet_store, agents, NOW_MS, {"g1-1", "g1-2"})
    service.evaluate(_us(NOW_MS))
    (alert,) = service.open_alerts()

    class ClosedMeanwhile:
        """The store as another monitoring step left it: the alert read as open is closed already."""

        def __getattr__(self, name: str) -> Any:
            return getattr(fleet_store, name)

        def fleet_alerts(self, **kwargs: Any) -> list[Any]:
            return [alert]

    fleet_store.close_fleet_alert(alert.alert_id, time_us=_us(NOW_MS + 1))
    _report(fleet_store, agents, NOW_MS + HOUR_MS, set())
    racing = MonitoringService(ClosedMeanwhile(), sink, SETTINGS)  # type: ignore[arg-type]
    assert racing.evaluate(_us(NOW_MS + HOUR_MS)).changes == ()
    assert [e.action for e in fleet_store.audit_entries()] == [EVENT_DRIFT_DETECTED]
