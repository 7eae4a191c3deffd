"""The tiered response, cheapest first: recalibrate a device, retrain a group, or keep alarming.

:func:`choose_tiers` turns one group's planned response (the hub's shift
verdicts, :class:`pumpops.monitoring.GroupResponse`) into actions, given what
was already done for the same shift (:class:`TierMemory`, read back from the
audit trail): a pure decision, table-driven tests pin it.

- **recalibrate** (tier 1): a device whose shift is its own (``device_local``):
  the hub signs a recalibration order for it (``pumpops.release._recalibrate``);
  once per shift: not again while the last order was signed after the shift began.
- **retrain** (tier 2): a shift shared by the group (``retrain_group``): the
  retraining policy runs a drift-triggered retrain with the shift's onset
  (post-drift gate); noted once per onset.
- **alarm** (tier 0): a fault-like change: no recalibration or retrain may absorb
  it; the device keeps alarming; noted once per change.

Every action carries the evidence that chose it (the device's shift report:
sensors, sizes, since when; or the shared sensors), for the audit entry.
May import: the stdlib (responses are read by attribute).
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["TierAction", "TierMemory", "choose_tiers", "episode_ms"]

Tier = Literal["recalibrate", "retrain", "alarm"]


@dataclass(frozen=True)
class TierAction:
    """One step of the tiered response.

    Attributes:
        tier: ``recalibrate`` (a device), ``retrain`` (the group) or ``alarm`` (keep alarming).
        group: the group.
        device_id: the device (None for ``retrain``).
        since_ms: when the shift began (the episode the action answers), if known.
        reason: one sentence for people.
        evidence: what chose it, JSON-able.
    """

    tier: Tier
    group: str
    device_id: str | None
    since_ms: int | None
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (the audit payload)."""
        return {
            "tier": self.tier,
            "group": self.group,
            "device_id": self.device_id,
            "since_ms": self.since_ms,
            "reason": self.reason,
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class TierMemory:
    """What was already done, so the same shift is answered once.

    Attributes:
        recalibrated_ms: per device, the (data-clock) time its last recalibration order was signed.
        alarmed: per device, the fault episodes (``since_ms``) already noted.
        retrained: the group drift onsets already answered by a retrain note.
    """

    recalibrated_ms: Mapping[str, int] = field(default_factory=dict)
    alarmed: Mapping[str, Set[int]] = field(default_factory=dict)
    retrained: Set[int] = frozenset()


def episode_ms(evidence: Any) -> int | None:
    """When a device's shift began: its earliest ``since_ms``, else its report's time (None: unknown).

    >>> from types import SimpleNamespace as N
    >>> episode_ms(N(since_ms={"a": 50, "b": 20}, ts_ms=90)), episode_ms(N(since_ms={}, ts_ms=90))
    (20, 90)
    """
    if evidence is None:
        return None
    since = getattr(evidence, "since_ms", None) or {}
    values = [int(v) for v in since.values()]
    if values:
        return min(values)
    ts = getattr(evidence, "ts_ms", None)
    return None if ts is None else int(ts)


def _evidence(shift: Any) -> dict[str, Any]:
    if shift is None:
        return {}
    to_dict = getattr(shift, "to_dict", None)
    return dict(to_dict()) if callable(to_dict) else {}


def choose_tiers(response: Any, memory: TierMemory, *, recalibrate_local: bool = True) -> list[TierAction]:
    """The actions one group's planned response asks for, cheapest first, minus what was done.

    Args:
        response: the group's :class:`~pumpops.monitoring.GroupResponse` (read by attribute:
            ``group``, ``recalibrate``, ``retrain_group``, ``faults``, ``group_drift``, ``verdict``).
        memory: what was already done for the group's devices.
        recalibrate_local: tier 1 enabled (``retrain.recalibrate_local``); off: device-local
            shifts are left alone (noted nowhere: the monitoring verdict still shows them).

    >>> from types import SimpleNamespace as N
    >>> shift = N(since_ms={"flow": 100}, ts_ms=200, to_dict=lambda: {"shifted": ["flow"]})
    >>> verdict = N(evidence={"a": shift}, since_ms={}, shared={})
    >>> r = N(group="g", recalibrate=("a",), retrain_group=False, faults=(), group_drift=(), verdict=verdict)
    >>> [(a.tier, a.device_id, a.since_ms) for a in choose_tiers(r, TierMemory())]
    [('recalibrate', 'a', 100)]
    >>> choose_tiers(r, TierMemory(recalibrated_ms={"a": 150}))
    []
    """
    verdict = response.verdict
    evidence: Mapping[str, Any] = getattr(verdict, "evidence", {}) or {}
    out: list[TierAction] = []
    if recalibrate_local:
        for device in response.recalibrate:
            since = episode_ms(evidence.get(device))
            last = memory.recalibrated_ms.get(device)
            if last is not None and (since is None or last >= since):
                continue  # an order was signed after this shift began: the device is on it
            shifted = list(getattr(evidence.get(device), "shifted", ()) or ())
            out.append(
                TierAction(
                    "recalibrate",
                    response.group,
                    device,
                    since,
                    f"{device}: a level shift of its own on {', '.join(shifted) or 'its sensors'} "
                    "(not shared by the group, not fault-like): recalibrate the device",
                    _evidence(evidence.get(device)),
                )
            )
    if response.retrain_group:
        onsets = [int(v) for v in (getattr(verdict, "since_ms", {}) or {}).values()]
        onset = min(onsets) if onsets else None
        if onset is None or onset not in memory.retrained:
            shared = {k: list(v) for k, v in (getattr(verdict, "shared", {}) or {}).items()}
            out.append(
                TierAction(
                    "retrain",
                    response.group,
                    None,
                    onset,
                    f"{response.group}: a shift shared by {len(response.group_drift)} device(s) on "
                    f"{', '.join(shared) or 'its sensors'}: retrain the group on post-drift data",
                    {"shared": shared, "devices": list(response.group_drift)},
                )
            )
    for device in response.faults:
        since = episode_ms(evidence.get(device))
        if since is not None and since in memory.alarmed.get(device, frozenset()):
            continue
        signs = list(getattr(evidence.get(device), "fault_signs", ()) or ())
        out.append(
            TierAction(
                "alarm",
                response.group,
                device,
                since,
                f"{device}: the change looks like a fault ({'; '.join(signs) or 'fault-like'}): "
                "keep alarming, no recalibration or retrain absorbs it",
                _evidence(evidence.get(device)),
            )
        )
    return out
