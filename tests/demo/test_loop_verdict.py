"""The demo's summary: whether the loop closed, from its figures (``summary.json``, checked by CI)."""

from __future__ import annotations

from typing import Any

from pumpops.demo import loop_verdict


def _figures(**changes: Any) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "faults": [{"device_id": "p-0002", "detected": True}, {"device_id": "p-0003", "detected": True}],
        "retraining": [
            {"group": "acme-ansi", "trigger": "drift", "status": "released", "rollout_id": "r-1"},
            {"group": "sakura-esp", "trigger": "manual", "status": "validation_failed", "rollout_id": None},
        ],
        "drift_onset_to": {"retrained_group_complete_after_drift": {"simulated_h": 4.0, "wall_s": 120.0}},
        "audit_verified": True,
    }
    figures.update(changes)
    return figures


def test_loop_verdict_everything_happened_closes_the_loop() -> None:
    assert loop_verdict(_figures()) == {
        "faults_detected": True,
        "drifted_group_retrained_and_rolled_out": True,
        "bad_candidate_blocked": True,
        "audit_verified": True,
        "loop_closed": True,
    }


def test_loop_verdict_missed_fault_does_not_close_the_loop() -> None:
    faults = [{"device_id": "p-0002", "detected": True}, {"device_id": "p-0003", "detected": False}]
    verdict = loop_verdict(_figures(faults=faults))
    assert verdict["faults_detected"] is False
    assert verdict["loop_closed"] is False


def test_loop_verdict_rollout_not_completed_does_not_close_the_loop() -> None:
    verdict = loop_verdict(_figures(drift_onset_to={}))
    assert verdict["drifted_group_retrained_and_rolled_out"] is False
    assert verdict["loop_closed"] is False


def test_loop_verdict_bad_candidate_released_does_not_close_the_loop() -> None:
    retraining = [
        {"group": "acme-ansi", "trigger": "drift", "status": "released", "rollout_id": "r-1"},
        {"group": "sakura-esp", "trigger": "manual", "status": "released", "rollout_id": None},
    ]
    verdict = loop_verdict(_figures(retraining=retraining))
    assert verdict["bad_candidate_blocked"] is False
    assert verdict["loop_closed"] is False


def test_loop_verdict_broken_audit_chain_does_not_close_the_loop() -> None:
    assert loop_verdict(_figures(audit_verified=False))["loop_closed"] is False


def test_loop_verdict_no_figures_is_not_a_closed_loop() -> None:
    assert loop_verdict({})["loop_closed"] is False
