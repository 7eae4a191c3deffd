"""The policy that turns drift, schedules and feedback into a new candidate and drives it to rollout.

``_policy.py``: :func:`decide_retrain`, the pure decision (settings ``[retrain]``);
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

__all__ = [
    "GroupFacts",
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
        ("GroupFacts", "RetrainDecision", "RetrainSettings", "decide_retrain"), "pumpops.retrain._policy"
    ),
}


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
