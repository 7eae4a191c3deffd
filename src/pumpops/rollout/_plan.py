"""Which devices of a group go in which wave of a rollout: a pure, deterministic plan.

Waves are given as cumulative percentages of the group (``1,10,50,100``: by
the end of wave 1 at least 1 % of the devices run the release, by the end of
wave 2 at least 10 %, ...). The devices are ordered by the SHA-256 of
``<rollout id>/<device id>``, so the plan depends only on the rollout id and
the set of devices: the hub computes the same plan after a restart, whatever
order the store lists the devices in, and different rollouts pick different
canaries (no pump is always first). The rollout stores the plan it started
with; devices that join the group later are not in it.

May import: errors and the standard library only.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from collections.abc import Sequence

from pumpops.errors import ConfigError

__all__ = ["DEFAULT_WAVES_PERCENT", "parse_waves", "plan_waves"]

#: The waves of ``pumpops rollout start`` when ``--waves`` is not given.
DEFAULT_WAVES_PERCENT: tuple[int, ...] = (1, 10, 50, 100)


def parse_waves(text: str) -> tuple[int, ...]:
    """Read ``--waves`` (``"1,10,50,100"``) into checked cumulative percentages.

    Raises:
        ConfigError: a part is not a whole number, or the percentages are not
            increasing whole numbers from 1 to 100 ending with 100.

    >>> parse_waves(" 5, 50,100 ")
    (5, 50, 100)
    """
    parts = [p.strip() for p in text.split(",")]
    try:
        waves = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(
            f"waves {text!r}: write whole percentages separated by commas, e.g. 1,10,50,100"
        ) from None
    _check_waves_percent(waves)
    return waves


def _check_waves_percent(waves_percent: Sequence[int]) -> None:
    if not waves_percent:
        raise ConfigError("waves: give at least one wave (e.g. 1,10,50,100)")
    for p in waves_percent:
        if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 100:
            raise ConfigError(f"waves: {p!r} is not a whole percentage from 1 to 100")
    for before, after in itertools.pairwise(waves_percent):
        if after <= before:
            raise ConfigError(
                f"waves: percentages are cumulative and must increase, but {after} follows {before}"
            )
    if waves_percent[-1] != 100:
        raise ConfigError(f"waves: the last wave must be 100 (the whole group), not {waves_percent[-1]}")


def _order_key(key: str, device_id: str) -> tuple[str, str]:
    digest = hashlib.sha256(f"{key}/{device_id}".encode()).hexdigest()
    return digest, device_id


def plan_waves(devices: Sequence[str], waves_percent: Sequence[int], *, key: str) -> list[list[str]]:
    """Assign a group's devices to waves, deterministically.

    Wave ``i`` ends with ``ceil(n * waves_percent[i] / 100)`` devices in total
    (so a 1 % wave of 10 devices is 1 device), adjusted so that every wave
    gets at least one device of its own: raised when the rounded count adds
    nobody (10 devices at ``1,10``: 1 then 2), lowered when it would leave a
    later wave empty (2 devices at ``51,100``: 1 then 2).

    Args:
        devices: the group's device ids (any order; no repeats).
        waves_percent: cumulative percentages, increasing, the last 100.
        key: what makes the order differ between rollouts (the rollout id).

    Returns:
        One list of device ids per wave; every device is in exactly one.

    Raises:
        ConfigError: the percentages break a rule (named in the message), the
            group is empty or repeats a device, or it has fewer devices than
            there are waves.

    >>> plan = plan_waves([f"p-{i}" for i in range(20)], [5, 50, 100], key="r-1")
    >>> [len(w) for w in plan]
    [1, 9, 10]
    >>> plan == plan_waves(sorted(sum(plan, []), reverse=True), [5, 50, 100], key="r-1")
    True
    """
    _check_waves_percent(waves_percent)
    if not devices:
        raise ConfigError("the group has no devices: nothing to roll out to")
    if len(set(devices)) != len(devices):
        repeated = sorted(d for d, count in Counter(devices).items() if count > 1)
        raise ConfigError(f"device ids repeat in the group: {', '.join(repeated[:5])}")
    n, k = len(devices), len(waves_percent)
    if n < k:
        raise ConfigError(
            f"{k} waves need at least {k} devices (one per wave) but the group has {n}; "
            "use fewer waves, e.g. --waves 100"
        )
    ordered = sorted(devices, key=lambda d: _order_key(key, d))
    plan: list[list[str]] = []
    end = 0
    for i, p in enumerate(waves_percent):
        wanted = -(-n * p // 100)  # ceil without floats
        # at least one new device in this wave, and one left for each later wave
        new_end = min(max(wanted, end + 1), n - (k - 1 - i))
        plan.append(ordered[end:new_end])
        end = new_end
    return plan
