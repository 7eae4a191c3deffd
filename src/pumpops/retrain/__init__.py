"""The policy that turns drift, schedules and feedback into a new candidate and drives it to rollout.

``_policy.py``: :func:`decide_retrain`, the pure decision (settings ``[retrain]``);
``_tiers.py``: :func:`choose_tiers`, the tiered response to shift verdicts (recalibrate
a device, retrain a group, keep alarming), pure; ``_respond.py``:
:func:`respond_to_shifts`, that response as a hub step (signed recalibration orders,
``tier.*`` audit entries with their evidence);
``_chain.py``: :func:`run_retrain` and :func:`approve`, recent data → pipeline →
register → validate → release → publish → rollout (``docs/retrain.md``); the
commands ``pumpops retrain run|policy`` and ``pumpops approve`` live in
``pumpops.cli``.
May import every hub-side part below it (the package itself imports nothing
until a name is used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pumpops._lazy import lazy_exports

if TYPE_CHECKING:
    from pumpops.retrain._chain import (
        RetrainOutcome,
        RolloutStarter,
        alarm_intervals,
        approve,
        outcome_json,
        pipeline_config,
        run_retrain,
    )
    from pumpops.retrain._policy import GroupFacts, RetrainDecision, RetrainSettings, decide_retrain
    from pumpops.retrain._post_drift import PostDriftWindows, post_drift_data, post_drift_windows
    from pumpops.retrain._respond import TierOutcome, respond_to_shifts, tier_memory
    from pumpops.retrain._tiers import TierAction, TierMemory, choose_tiers, episode_ms

__all__ = [
    "GroupFacts",
    "PostDriftWindows",
    "RetrainDecision",
    "RetrainOutcome",
    "RetrainSettings",
    "RolloutStarter",
    "TierAction",
    "TierMemory",
    "TierOutcome",
    "alarm_intervals",
    "approve",
    "choose_tiers",
    "decide_retrain",
    "episode_ms",
    "outcome_json",
    "pipeline_config",
    "post_drift_data",
    "post_drift_windows",
    "respond_to_shifts",
    "run_retrain",
    "tier_memory",
]

# Loaded on first use (PEP 562): the chain pulls in the pipeline, the registry and release.
_LAZY = {
    **dict.fromkeys(
        (
            "RetrainOutcome",
            "RolloutStarter",
            "alarm_intervals",
            "approve",
            "outcome_json",
            "pipeline_config",
            "run_retrain",
        ),
        "pumpops.retrain._chain",
    ),
    **dict.fromkeys(
        ("PostDriftWindows", "post_drift_data", "post_drift_windows"), "pumpops.retrain._post_drift"
    ),
    **dict.fromkeys(("TierOutcome", "respond_to_shifts", "tier_memory"), "pumpops.retrain._respond"),
    **dict.fromkeys(("TierAction", "TierMemory", "choose_tiers", "episode_ms"), "pumpops.retrain._tiers"),
    **dict.fromkeys(
        ("GroupFacts", "RetrainDecision", "RetrainSettings", "decide_retrain"), "pumpops.retrain._policy"
    ),
}


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
