"""Whether to follow the hub's signed recalibration order: a pure decision, no I/O.

The hub answers a device-local level shift by signing a recalibration order
for the device into its group's TUF targets role (``x-pumpops-recalibrate``,
``pumpops.release._recalibrate``). The updater reads the group's orders from
metadata it verified (:attr:`~pumpops.edge._updater.Installed.recalibrations`)
and :func:`decide_recalibration` says whether this device recommissions now:

- no order for this device → nothing;
- an order whose number the device already followed → nothing (it stays in the
  metadata; following it again would throw away a good calibration);
- an expired order → refused, with the time it expired (a device set up
  after the order, with no memory of it, never acts on an old word);
- a malformed order → refused, naming what is wrong;
- otherwise → recommission, and remember the number.

An MQTT ``recalibrate`` hint (a number) only makes the device look sooner: a
hint the signed metadata does not carry is refused as unsigned, one naming a
number already followed as replayed. May import: the stdlib only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["RECALIBRATE_FIELD", "RecalibrationDecision", "decide_recalibration", "signed_orders"]

#: The custom field carrying the hub's signed recalibration orders (= ``pumpops.release.RECALIBRATE_FIELD``).
RECALIBRATE_FIELD = "x-pumpops-recalibrate"


@dataclass(frozen=True)
class RecalibrationDecision:
    """What to do about the signed orders.

    Attributes:
        follow: recommission now.
        order: the order number followed (or refused), None when there is none.
        refused: why an order or a hint was not followed (for the state report), or None.
        reason: the order's reason (what the hub said), for the log.
    """

    follow: bool
    order: int | None = None
    refused: str | None = None
    reason: str = ""


def _ms(text: object) -> int | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def signed_orders(fields: Mapping[str, Any], group: str) -> dict[str, Any]:
    """The group's orders in a targets role's custom fields (none: empty), by device id.

    Raises:
        ValueError: the signed field is not an object of groups of devices.

    >>> signed_orders({RECALIBRATE_FIELD: {"g": {"p-1": {"order": 1}}}}, "g")
    {'p-1': {'order': 1}}
    >>> signed_orders({}, "g")
    {}
    """
    per_group = fields.get(RECALIBRATE_FIELD)
    if per_group is None:
        return {}
    if not isinstance(per_group, Mapping):
        raise ValueError(f"the signed field {RECALIBRATE_FIELD} is not an object of groups")
    orders = per_group.get(group)
    if orders is None:
        return {}
    if not isinstance(orders, Mapping):
        raise ValueError(f"the signed recalibration orders of group {group} are not an object")
    return {str(k): v for k, v in orders.items()}


def decide_recalibration(
    orders: Mapping[str, Any],
    device_id: str,
    *,
    followed: int,
    now_ms: int,
    hint: int | None = None,
) -> RecalibrationDecision:
    """Whether ``device_id`` recommissions now on the hub's signed orders (module docstring).

    Args:
        orders: the group's signed orders by device id (from verified metadata).
        device_id: this device.
        followed: the highest order number this device already followed (0: none).
        now_ms: the device's clock.
        hint: the order number an MQTT ``recalibrate`` message named, if any.

    >>> good = {"p-1": {"order": 2, "expires": "2026-12-08T00:00:00Z", "reason": "shift"}}
    >>> decide_recalibration(good, "p-1", followed=1, now_ms=1_765_000_000_000).follow
    True
    >>> decide_recalibration(good, "p-1", followed=2, now_ms=1_765_000_000_000).follow
    False
    >>> decide_recalibration(good, "p-1", followed=2, now_ms=1_765_000_000_000, hint=2).refused
    'recalibration order 2 refused: replayed (order 2 was already followed)'
    >>> decide_recalibration({}, "p-1", followed=0, now_ms=0, hint=1).refused
    'recalibration order 1 refused: not signed by the hub'
    """
    entry = orders.get(device_id)
    hint_refused = None
    if hint is not None:
        signed = entry.get("order") if isinstance(entry, Mapping) else None
        if not isinstance(signed, int) or isinstance(signed, bool) or signed < hint:
            hint_refused = f"recalibration order {hint} refused: not signed by the hub"
        elif hint <= followed:
            hint_refused = (
                f"recalibration order {hint} refused: replayed (order {followed} was already followed)"
            )
    decision = _judge(entry, followed=followed, now_ms=now_ms)
    if hint_refused is not None and decision.refused is None:
        return RecalibrationDecision(decision.follow, decision.order or hint, hint_refused, decision.reason)
    return decision


def _judge(entry: object, *, followed: int, now_ms: int) -> RecalibrationDecision:  # noqa: PLR0911 - one rule, one return
    if entry is None:
        return RecalibrationDecision(False)
    if not isinstance(entry, Mapping):
        return RecalibrationDecision(False, None, "the signed recalibration order is not an object: ignored")
    number = entry.get("order")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        return RecalibrationDecision(
            False, None, "the signed recalibration order has no order number: ignored"
        )
    if number <= followed:
        return RecalibrationDecision(False, number)
    expires = _ms(entry.get("expires"))
    if expires is None:
        return RecalibrationDecision(
            False, number, f"recalibration order {number} refused: it has no valid expiry time"
        )
    if now_ms >= expires:
        return RecalibrationDecision(
            False, number, f"recalibration order {number} refused: expired at {entry.get('expires')}"
        )
    return RecalibrationDecision(True, number, None, str(entry.get("reason", "")))
