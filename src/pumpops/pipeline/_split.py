"""Which pumps a run fits on and which it reports on: the per-device split of the evaluate step.

Pure logic, no I/O. A group model that is scored on the pumps it was fitted on
looks better than it is on a pump it has never seen (issue 14). With a
``by_device`` split the fit step sees only the *fit* pumps; every pump is still
calibrated on its own normal period (as a new pump of the group is), and the
evaluate step reports its headline metrics on the *held-out* pumps, with the
fitted pumps' figures beside them as ``insample_*``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pumpops.errors import ConfigError
from pumpops.pipeline._config import EvaluationConfig

__all__ = ["DeviceSplit", "choose_split"]


@dataclass(frozen=True)
class DeviceSplit:
    """The pumps a run fits on and the pumps it reports on.

    Attributes:
        mode: ``by_device`` (held-out pumps are reported on) or ``none`` (every pump).
        fit: pumps whose normal rows the model is fitted on.
        holdout: pumps never fitted on (empty with ``none``).
        reason: one line saying what was chosen and why (printed by ``pumpops train``).
    """

    mode: Literal["by_device", "none"]
    fit: tuple[str, ...]
    holdout: tuple[str, ...]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The split as recorded in ``evaluation.json`` and ``lineage.json``."""
        return {
            "mode": self.mode,
            "fit": list(self.fit),
            "holdout": list(self.holdout),
            "reason": self.reason,
        }


def _spread(candidates: Sequence[str], makes: Mapping[str, str], count: int, seed: int) -> list[str]:
    """``count`` of ``candidates``, seeded, taken in turn from each make so every make is held out.

    >>> held = _spread(["a1", "a2", "b1", "b2"], {"a1": "A", "a2": "A", "b1": "B", "b2": "B"}, 2, 0)
    >>> sorted(d[0] for d in held)
    ['a', 'b']
    """
    by_make: dict[str, list[str]] = {}
    for device in sorted(candidates):
        by_make.setdefault(makes.get(device, ""), []).append(device)
    rng = np.random.default_rng(seed)
    queues = {make: [ids[i] for i in rng.permutation(len(ids))] for make, ids in sorted(by_make.items())}
    chosen: list[str] = []
    while len(chosen) < count:
        for make in sorted(queues):
            if queues[make] and len(chosen) < count:
                chosen.append(queues[make].pop(0))
    return sorted(chosen)


def choose_split(  # noqa: PLR0911 - one return per case reads best
    ev: EvaluationConfig,
    *,
    devices: Sequence[str],
    scorable: Sequence[str],
    makes: Mapping[str, str],
    fleet: bool,
    seed: int,
) -> DeviceSplit:
    """Decide the split of a run from ``[evaluation]`` and the pumps the data has.

    Args:
        ev: the ``[evaluation]`` section.
        devices: the pumps with enough normal rows to fit on.
        scorable: the pumps with rows in the evaluation period.
        makes: make (profile id) per pump, where known; the held-out pumps are spread over them.
        fleet: the data is a fleet's (store or simulator), not SKAB-format files.
        seed: the run's seed (``split_seed`` overrides it).

    Raises:
        ConfigError: ``holdout_devices`` names a pump the data does not have,
            or leaves no pump to fit on; ``by_device`` with fewer than 2 pumps.

    >>> ev = EvaluationConfig()
    >>> ids = [f"p-{i}" for i in range(1, 9)]
    >>> s = choose_split(ev, devices=ids, scorable=ids, makes={}, fleet=True, seed=0)
    >>> s.mode, len(s.fit), len(s.holdout), set(s.fit) & set(s.holdout)
    ('by_device', 6, 2, set())
    >>> choose_split(ev, devices=ids[:3], scorable=ids[:3], makes={}, fleet=True, seed=0).mode
    'none'
    """
    all_devices = tuple(sorted(devices))
    if not ev.enabled:
        return DeviceSplit("none", all_devices, (), "evaluation disabled: nothing is reported")
    if ev.split == "none":
        return DeviceSplit(
            "none",
            all_devices,
            (),
            "split = none: metrics are on the pumps the model was fitted on (a later period), not held out",
        )
    known = set(all_devices) | set(scorable)
    if ev.holdout_devices:
        unknown = sorted(set(ev.holdout_devices) - known)
        if unknown:
            raise ConfigError(
                f"evaluation.holdout_devices: {unknown} are not pumps of this data (it has {sorted(known)})"
            )
        fit = tuple(d for d in all_devices if d not in set(ev.holdout_devices))
        if not fit:
            raise ConfigError("evaluation.holdout_devices: every pump is held out, none is left to fit on")
        held = tuple(sorted(ev.holdout_devices))
        return DeviceSplit(
            "by_device",
            fit,
            held,
            f"split by device: fitted on {len(fit)} pumps, {len(held)} listed held out",
        )
    if ev.split == "auto":
        if not fleet:
            return DeviceSplit(
                "none",
                all_devices,
                (),
                "split auto: off for recording files (their held-out protocol is `pumpops benchmark skab`); "
                "metrics are on the recordings fitted on",
            )
        if len(all_devices) < ev.min_devices:
            return DeviceSplit(
                "none",
                all_devices,
                (),
                f"split auto: off, only {len(all_devices)} pumps with normal data (by device needs "
                f"evaluation.min_devices = {ev.min_devices}); metrics are on the pumps fitted on",
            )
    candidates = [d for d in all_devices if d in set(scorable)]
    if len(all_devices) < 2 or not candidates:
        if ev.split == "by_device":
            raise ConfigError(
                f"evaluation.split = 'by_device' needs at least 2 pumps with normal data and one with an "
                f"evaluation period (got {len(all_devices)} and {len(candidates)})"
            )
        return DeviceSplit("none", all_devices, (), "split auto: off, no pump has an evaluation period")
    count = min(max(1, round(ev.holdout_fraction * len(all_devices))), len(all_devices) - 1, len(candidates))
    split_seed = seed if ev.split_seed is None else ev.split_seed
    held = tuple(_spread(candidates, makes, count, split_seed))
    fit = tuple(d for d in all_devices if d not in set(held))
    return DeviceSplit(
        "by_device",
        fit,
        held,
        f"split by device: fitted on {len(fit)} pumps, reported on {len(held)} held-out pumps "
        f"(fraction {ev.holdout_fraction:g}, seed {split_seed})",
    )
