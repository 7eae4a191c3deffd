"""Pins the public API of ``pumpops.retrain``: a change to this list is a change users see."""

from __future__ import annotations

import pumpops.retrain

_PUBLIC = {
    "GroupFacts",
    "PostDriftWindows",
    "TierAction",
    "TierMemory",
    "TierOutcome",
    "choose_tiers",
    "episode_ms",
    "post_drift_data",
    "post_drift_windows",
    "respond_to_shifts",
    "tier_memory",
    "RetrainDecision",
    "RetrainOutcome",
    "RetrainSettings",
    "RolloutStarter",
    "alarm_intervals",
    "approve",
    "decide_retrain",
    "outcome_json",
    "pipeline_config",
    "run_retrain",
}


def test_retrain_exported_members_are_pinned() -> None:
    assert set(pumpops.retrain.__all__) == _PUBLIC
    for name in _PUBLIC:
        assert hasattr(pumpops.retrain, name), name
