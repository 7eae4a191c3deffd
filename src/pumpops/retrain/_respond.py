"""The tiered response as a hub step: read the shift verdicts, act cheapest first, audit each step.

:func:`respond_to_shifts` is what ``hub serve --services`` (the retrain loop)
calls (the demo and ``benchmarks/loop.py`` do not yet): per group the monitoring service's
planned response (:meth:`pumpops.monitoring.MonitoringService.responses`), the
actions :func:`~pumpops.retrain._tiers.choose_tiers` keeps after what the audit
trail says was done, then:

- ``recalibrate``: a signed recalibration order for the device
  (:func:`pumpops.release.sign_recalibration`; audited there as
  ``release.recalibration_signed``), and ``tier.recalibrate`` on ``device/<id>``;
- ``retrain``: ``tier.retrain`` on ``group/<g>`` with the onset; the retrain
  itself is the retraining policy's (:func:`~pumpops.retrain.decide_retrain`
  with ``drift_onset_us``, then :func:`~pumpops.retrain.run_retrain`);
- ``alarm``: ``tier.alarm`` on ``device/<id>``: nothing is changed, alarms go on.

Every ``tier.*`` entry carries the action, its reason and the evidence (the
device's shift report or the shared sensors) and ``now_ms`` (the caller's
clock: the demo's is simulated). A group without a signed repository still
gets its audit entries; the recalibration is then reported as not signed.
May import: every hub-side part.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pumpops.errors import PumpopsError
from pumpops.retrain._tiers import TierAction, TierMemory, choose_tiers
from pumpops.settings import Settings

__all__ = ["TierOutcome", "respond_to_shifts", "tier_memory"]


@dataclass(frozen=True)
class TierOutcome:
    """One action taken.

    Attributes:
        action: the action.
        done: the recalibration order was signed (recalibrate), or the note made (retrain, alarm).
        order: the signed order number (recalibrate), else None.
        error: why a recalibration could not be signed, else None.
    """

    action: TierAction
    done: bool
    order: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return {**self.action.to_dict(), "done": self.done, "order": self.order, "error": self.error}


def tier_memory(store: Any, *, since_us: int | None = None) -> dict[str, TierMemory]:
    """Per group, what the audit trail says the tiered response already did (``tier.*`` entries)."""
    recalibrated: dict[str, dict[str, int]] = defaultdict(dict)
    alarmed: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    retrained: dict[str, set[int]] = defaultdict(set)
    for entry in store.audit_entries(since_us=since_us):
        if not entry.action.startswith("tier."):
            continue
        try:
            payload = entry.payload
        except PumpopsError:  # a tampered entry: audit verify names it; it proves nothing here
            continue
        group, device = payload.get("group"), payload.get("device_id")
        since, now_ms = payload.get("since_ms"), payload.get("now_ms")
        if not isinstance(group, str):
            continue
        if entry.action == "tier.recalibrate" and isinstance(device, str) and isinstance(now_ms, int):
            if payload.get("done"):
                recalibrated[group][device] = max(now_ms, recalibrated[group].get(device, now_ms))
        elif entry.action == "tier.alarm" and isinstance(device, str) and isinstance(since, int):
            alarmed[group][device].add(since)
        elif entry.action == "tier.retrain" and isinstance(since, int):
            retrained[group].add(since)
    groups = set(recalibrated) | set(alarmed) | set(retrained)
    return {
        g: TierMemory(
            dict(recalibrated.get(g, {})),
            {d: frozenset(s) for d, s in alarmed.get(g, {}).items()},
            frozenset(retrained.get(g, set())),
        )
        for g in groups
    }


def respond_to_shifts(
    settings: Settings,
    store: Any,
    now_us: int,
    *,
    actor: str,
    responses: dict[str, Any] | None = None,
    sink: Any | None = None,
) -> list[TierOutcome]:
    """Act on every group's shift verdict, cheapest first; audit each action with its evidence.

    Args:
        settings: the workspace settings (``[monitoring]`` window, ``[retrain]`` tier switches).
        store: the open store (its audit entries are signed when it has the workspace's signer).
        now_us: now on the caller's clock (the verdict window ends here; ``now_ms`` in the audit).
        actor: who acts (audit trail).
        responses: the planned responses per group (default: the monitoring service's at ``now_us``).
        sink: where ``tier.*`` events go (default: stored, not published).

    Returns:
        What was done, in order (recalibrations first).
    """
    if sink is None:
        from pumpops.registry import EventSink  # noqa: PLC0415 - the hub's side only

        sink = EventSink(store, None, topic_prefix=settings.topic_prefix)
    if responses is None:
        from pumpops.monitoring import MonitoringService  # noqa: PLC0415 - the hub's side only

        responses = MonitoringService(store, sink, settings.monitoring).responses(now_us)
    lookback_us = round(max(settings.retrain.recalibration_ttl_s, 86_400.0) * 1e6)
    memory = tier_memory(store, since_us=round(time.time() * 1e6) - lookback_us)  # audit times are wall times
    out: list[TierOutcome] = []
    now_ms = now_us // 1000
    for group, response in sorted(responses.items()):
        actions = choose_tiers(
            response, memory.get(group, TierMemory()), recalibrate_local=settings.retrain.recalibrate_local
        )
        for action in actions:
            outcome = _act(settings, store, action, actor=actor)
            subject = f"group/{group}" if action.device_id is None else f"device/{action.device_id}"
            payload = {**outcome.to_dict(), "now_ms": now_ms}
            store.append_audit(actor, f"tier.{action.tier}", subject, payload)
            sink.emit(f"tier.{action.tier}", subject, payload)
            out.append(outcome)
    return out


def _act(settings: Settings, store: Any, action: TierAction, *, actor: str) -> TierOutcome:
    if action.tier != "recalibrate" or action.device_id is None:
        return TierOutcome(action, True)
    from pumpops.release import sign_recalibration  # noqa: PLC0415 - python-tuf on first use

    try:
        signed = sign_recalibration(
            settings,
            action.group,
            [action.device_id],
            reason=action.reason,
            actor=actor,
            evidence={action.device_id: action.evidence},
            store=store,
        )
    except PumpopsError as exc:
        return TierOutcome(action, False, error=f"{type(exc).__name__}: {exc}")
    return TierOutcome(action, True, signed[action.device_id].order)
