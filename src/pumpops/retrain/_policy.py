"""When to retrain a group: fleet drift, a schedule, or enough technician feedback — a pure decision.

:func:`decide_retrain` looks at what the hub knows about one group and says
whether a retraining run is due and why. No I/O: the service gathers the
facts, this function decides, table-driven tests pin the rules.
May import: settings, the stdlib.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pumpops.settings import RetrainSettings

__all__ = ["GroupFacts", "RetrainDecision", "RetrainSettings", "decide_retrain"]

Trigger = Literal["drift", "schedule", "feedback"]


@dataclass(frozen=True)
class GroupFacts:
    """What the hub knows about one group when deciding.

    Attributes:
        group: the device group.
        now_us: now.
        drift_alert_open: a fleet drift alert is open for the group.
        drift_alert_opened_us: when it opened (None: no alert).
        last_run_us: when the last retraining run for the group started (None: never).
        new_feedback: technician verdicts on the group's alarms since that run.
        rollout_active: a rollout for the group is under way.
        rollout_gate_paused: every rollout under way for the group was paused by its gate
            (not by an operator): a drift retrain may go ahead and supersede it.
        drift_onset_us: when the group's drift began, if known (the shift verdicts' earliest
            ``since``); None: the drift alert's opening time stands for it.
    """

    group: str
    now_us: int
    drift_alert_open: bool = False
    drift_alert_opened_us: int | None = None
    last_run_us: int | None = None
    new_feedback: int = 0
    rollout_active: bool = False
    rollout_gate_paused: bool = False
    drift_onset_us: int | None = None


@dataclass(frozen=True)
class RetrainDecision:
    """Whether to retrain now, why, or why not.

    Attributes:
        run: retrain now.
        trigger: why (None: not now).
        reason: a sentence for people.
        drift_onset_us: a drift trigger's onset, for ``run_retrain(drift_onset_us=...)`` (post-drift gate).
    """

    run: bool
    trigger: Trigger | None
    reason: str
    drift_onset_us: int | None = None


_H_US = 3_600_000_000


def decide_retrain(facts: GroupFacts, policy: RetrainSettings) -> RetrainDecision:  # noqa: PLR0911 - one rule, one return
    """Decide whether ``facts.group`` should be retrained now.

    Rules, in order: disabled → no; a rollout under way → wait (except for a drift
    when every rollout under way was paused by its gate: the soak saw the drift, and the
    retrained release supersedes it; any other trigger still waits); within the
    cooldown of the last run → wait; an open drift alert (opened after the
    last run) → drift, once ``min_post_drift_s`` of data followed the drift's onset
    (before that: wait, nothing else triggers); enough new feedback → feedback; the
    schedule due → schedule.

    >>> p = RetrainSettings(enabled=True, cooldown_h=1)
    >>> decide_retrain(GroupFacts("g", now_us=10 * _H_US, drift_alert_open=True,
    ...                           drift_alert_opened_us=9 * _H_US), p).trigger
    'drift'
    >>> decide_retrain(GroupFacts("g", now_us=10 * _H_US), p).run
    False
    >>> decide_retrain(GroupFacts("g", now_us=10 * _H_US, drift_alert_open=True,
    ...                           drift_alert_opened_us=10 * _H_US - 60_000_000), p).reason
    'drift began 60 s ago: waiting for 1800 s of post-drift data (retrain.min_post_drift_s)'
    """
    if not policy.enabled:
        return RetrainDecision(False, None, "automatic retraining is disabled (retrain.enabled = false)")
    busy = RetrainDecision(False, None, f"a rollout for {facts.group} is under way")
    drift_may_supersede = facts.rollout_gate_paused and policy.on_drift and facts.drift_alert_open
    if facts.rollout_active and not drift_may_supersede:
        return busy
    since_last = None if facts.last_run_us is None else facts.now_us - facts.last_run_us
    if since_last is not None and since_last < policy.cooldown_h * _H_US:
        return RetrainDecision(
            False, None, f"last run {since_last / _H_US:.1f} h ago, cooldown {policy.cooldown_h:g} h"
        )
    if (
        policy.on_drift
        and facts.drift_alert_open
        and (facts.last_run_us is None or (facts.drift_alert_opened_us or 0) > facts.last_run_us)
    ):
        onset = facts.drift_onset_us if facts.drift_onset_us is not None else facts.drift_alert_opened_us
        waited_s = None if onset is None else (facts.now_us - onset) / 1e6
        if waited_s is not None and waited_s < policy.min_post_drift_s:
            return RetrainDecision(
                False,
                None,
                f"drift began {waited_s:.0f} s ago: waiting for {policy.min_post_drift_s:g} s "
                "of post-drift data (retrain.min_post_drift_s)",
                onset,
            )
        return RetrainDecision(True, "drift", f"fleet drift alert open for {facts.group}", onset)
    if facts.rollout_active:
        return busy
    if facts.new_feedback >= policy.feedback_min:
        return RetrainDecision(
            True, "feedback", f"{facts.new_feedback} new alarm verdicts (policy: {policy.feedback_min})"
        )
    if policy.schedule_h is not None and (since_last is None or since_last >= policy.schedule_h * _H_US):
        return RetrainDecision(True, "schedule", f"scheduled every {policy.schedule_h:g} h")
    return RetrainDecision(False, None, "no trigger")
