"""The retraining decision as a table, and the chain's pure pieces (hygiene intervals, pipeline config)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from pumpops.pipeline import parse_config
from pumpops.retrain._chain import alarm_intervals, pipeline_config
from pumpops.retrain._policy import GroupFacts, decide_retrain
from pumpops.settings import RetrainSettings

H = 3_600_000_000
ON = RetrainSettings(enabled=True, cooldown_h=2, feedback_min=5, schedule_h=24)


@pytest.mark.parametrize(
    ("facts", "policy", "run", "trigger"),
    [
        (
            GroupFacts("g", 10 * H, drift_alert_open=True, drift_alert_opened_us=9 * H),
            RetrainSettings(),
            False,
            None,
        ),
        (GroupFacts("g", 10 * H, drift_alert_open=True, drift_alert_opened_us=9 * H), ON, True, "drift"),
        (
            GroupFacts("g", 10 * H, drift_alert_open=True, drift_alert_opened_us=9 * H, rollout_active=True),
            ON,
            False,
            None,
        ),
        (
            GroupFacts(
                "g",
                10 * H,
                drift_alert_open=True,
                drift_alert_opened_us=9 * H,
                rollout_active=True,
                rollout_gate_paused=True,
            ),
            ON,
            True,
            "drift",
        ),
        (
            GroupFacts("g", 30 * H, last_run_us=5 * H, rollout_active=True, rollout_gate_paused=True),
            ON,
            False,
            None,
        ),
        (
            GroupFacts(
                "g",
                10 * H,
                drift_alert_open=True,
                drift_alert_opened_us=9 * H,
                rollout_active=True,
                rollout_gate_paused=True,
            ),
            ON.model_copy(update={"on_drift": False}),
            False,
            None,
        ),
        (
            GroupFacts("g", 10 * H, drift_alert_open=True, drift_alert_opened_us=9 * H, last_run_us=9 * H),
            ON,
            False,
            None,
        ),
        (
            GroupFacts("g", 10 * H, drift_alert_open=True, drift_alert_opened_us=5 * H, last_run_us=6 * H),
            ON,
            False,
            None,
        ),
        (
            GroupFacts("g", 10 * H, drift_alert_open=True, drift_alert_opened_us=8 * H, last_run_us=6 * H),
            ON,
            True,
            "drift",
        ),
        (
            GroupFacts("g", 10 * H, drift_alert_open=True, drift_alert_opened_us=9 * H),
            ON.model_copy(update={"on_drift": False}),
            True,
            "schedule",
        ),
        (GroupFacts("g", 10 * H, new_feedback=5, last_run_us=5 * H), ON, True, "feedback"),
        (GroupFacts("g", 10 * H, new_feedback=4, last_run_us=5 * H), ON, False, None),
        (GroupFacts("g", 30 * H, last_run_us=5 * H), ON, True, "schedule"),
        (GroupFacts("g", 20 * H, last_run_us=5 * H), ON, False, None),
        (GroupFacts("g", 20 * H), ON.model_copy(update={"schedule_h": None}), False, None),
    ],
    ids=[
        "disabled",
        "drift",
        "rollout-under-way",
        "drift-supersedes-gate-paused-rollout",
        "schedule-waits-for-gate-paused-rollout",
        "no-drift-trigger-waits-for-gate-paused-rollout",
        "cooldown",
        "alert-older-than-last-run",
        "new-alert-after-run",
        "drift-ignored-schedule-first-run",
        "feedback-enough",
        "feedback-short",
        "schedule-due",
        "schedule-not-due",
        "no-trigger",
    ],
)
def test_decide_retrain(facts: GroupFacts, policy: RetrainSettings, run: bool, trigger: str | None) -> None:
    decision = decide_retrain(facts, policy)
    assert (decision.run, decision.trigger) == (run, trigger)
    assert decision.reason


@dataclass
class _Rec:
    device_id: str
    kind: str
    ts_ms: int
    payload: dict[str, Any]

    def body(self) -> dict[str, Any]:
        return self.payload


@dataclass
class _Verdict:
    alarm_id: str
    verdict: str


class _Store:
    def __init__(self, alarms: list[_Rec], verdicts: list[_Verdict]) -> None:
        self.alarms = alarms
        self.verdicts = verdicts

    def agent_messages(self, *, device_id: str, kind: str) -> list[_Rec]:
        return [a for a in self.alarms if a.device_id == device_id and a.kind == kind]

    def feedback(self) -> list[_Verdict]:
        return self.verdicts


def _alarm(device: str, event: str, start_ms: int, end_ms: int | None = None) -> _Rec:
    body = {"event": event, "alarm_id": f"{device}:{start_ms}", "started_ms": start_ms, "ended_ms": end_ms}
    return _Rec(device, "alarm", end_ms or start_ms, body)


def test_alarm_intervals_leave_out_alarms_but_keep_false_ones() -> None:
    store = _Store(
        [
            _alarm("p-1", "raised", 1_000_000),
            _alarm("p-1", "cleared", 1_000_000, 1_600_000),
            _alarm("p-2", "raised", 2_000_000),  # still open: left out to the end of the window
            _alarm("p-3", "raised", 3_000_000),
            _alarm("p-3", "cleared", 3_000_000, 3_500_000),
        ],
        [_Verdict("p-3:3000000", "false_alarm"), _Verdict("p-1:1000000", "confirmed")],
    )
    got = alarm_intervals(store, ["p-1", "p-2", "p-3"], 0, 5_000_000_000)
    assert [(i["device_id"], i["start"], i["end"]) for i in got] == [
        ("p-1", "1970-01-01T00:16:40Z", "1970-01-01T00:26:40Z"),
        ("p-2", "1970-01-01T00:33:20Z", "1970-01-01T01:23:20Z"),
    ]


def test_pipeline_config_is_a_valid_store_config_with_the_policy() -> None:
    policy = RetrainSettings(window_samples=20, baseline_window_samples=300, threshold_factor=1.5)
    raw = pipeline_config(
        "acme-ansi",
        0,
        3_600_000_000,
        policy,
        [{"device_id": "p-1", "start": "1970-01-01T00:10:00Z", "end": "1970-01-01T00:20:00Z"}],
    )
    config = parse_config(json.loads(json.dumps(raw)), source="test")
    assert config.data.source == "store"
    assert config.features.window_samples == 20
    assert config.features.baseline_window_samples == 300
    assert len(config.data.hygiene.alarm_intervals) == 1
    assert config.evaluation.enabled is False
