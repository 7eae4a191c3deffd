"""The post-drift gate: a drift-triggered candidate must bring false alarms back and keep catching faults.

A pure decision, like the gates in ``_gates.py``: the measurement layer
(``_measure.py``) scores the candidate and the champion on the group's own
data and on the simulated fault suite, :func:`check_post_drift` judges the
numbers. The data (:class:`PostDriftData`) is gathered by whoever knows
where the drift began (the retraining chain, from the store):

- **pre-drift level**: the champion's false-alarm fraction on the group's
  normal rows before the onset (each device calibrated on the first half of
  that period, scored on the second), i.e. how quiet the group was;
- **post-drift hold-out**: the newest slice of the post-drift data, which
  the candidate was *not* trained on; each device is calibrated on its
  post-drift training slice (as the bundle's calibration would be) and the
  hold-out rows are scored. Alarm periods (except those a technician called
  false alarms) are left out, as they are left out of training;
- **fault recall**: the fraction of the simulated fault suite's faults that
  raise an alarm within the behaviour budget's delay, candidate and champion.

The gate passes when the candidate's post-drift false-alarm fraction is at
most the pre-drift level plus ``far_tolerance`` (default 1 percentage point)
and its fault recall is not lower than the champion's.
May import: the stdlib, ``pumpops.pipeline`` records (types only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pumpops.validation._gates import GateResult

if TYPE_CHECKING:
    from pumpops.pipeline import Recording

__all__ = ["PostDriftData", "PostDriftDevice", "PostDriftMeasurement", "check_post_drift"]


@dataclass(frozen=True)
class PostDriftDevice:
    """One device's normal data around a drift.

    Attributes:
        device_id: the device.
        pre_calibration: the first half of its pre-drift period (the champion calibrates on it).
        pre_test: the second half (the champion's false alarms there are the pre-drift level).
        post_train: its post-drift rows the candidate was trained on (the candidate calibrates on them).
        post_holdout: its newest post-drift rows, never trained on (the gate's false alarms).
    """

    device_id: str
    pre_calibration: Recording | None
    pre_test: Recording | None
    post_train: Recording | None
    post_holdout: Recording | None


@dataclass(frozen=True)
class PostDriftData:
    """A group's data around a drift, for the post-drift gate.

    Attributes:
        sensors: the column order of every recording's values.
        devices: per device, its slices.
        far_tolerance: how far above the pre-drift level the candidate may stay (a fraction).
        source: where it came from (onset, slice bounds, left-out alarm periods), JSON-able.
    """

    sensors: tuple[str, ...]
    devices: tuple[PostDriftDevice, ...]
    far_tolerance: float = 0.01
    source: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PostDriftMeasurement:
    """What the post-drift gate judges.

    Attributes:
        candidate_far: the candidate's false-alarm fraction on the post-drift hold-out (NaN: no rows).
        pre_drift_far: the champion's on the pre-drift normal rows (NaN: none, or no champion).
        stale_far: the champion's on the same post-drift hold-out, calibrated before the drift
            (for the record).
        candidate_recall: fraction of the simulated faults the candidate caught in time (NaN: no suite).
        champion_recall: the same for the champion (NaN: no champion or no suite).
        holdout_rows: post-drift hold-out rows scored.
        pre_rows: pre-drift rows scored.
        per_device: per device, ``candidate_far`` / ``stale_far`` / ``pre_far`` (JSON-able).
        faults: per fault kind, ``[candidate caught, champion caught]``.
        skipped: devices left out and why.
        far_tolerance: the tolerance judged with.
        notes: where the data came from.
    """

    candidate_far: float
    pre_drift_far: float
    stale_far: float
    candidate_recall: float
    champion_recall: float
    holdout_rows: int
    pre_rows: int
    per_device: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    faults: Mapping[str, Sequence[bool | None]] = field(default_factory=dict)
    skipped: Mapping[str, str] = field(default_factory=dict)
    far_tolerance: float = 0.01
    notes: Mapping[str, Any] = field(default_factory=dict)


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:.3g} %"


def check_post_drift(m: PostDriftMeasurement) -> GateResult:
    """Gate ``post_drift``: false alarms back to the pre-drift level, fault recall not below the champion's.

    >>> ok = PostDriftMeasurement(0.012, 0.005, 0.30, 1.0, 1.0, 1200, 900)
    >>> check_post_drift(ok).passed
    True
    >>> bad = PostDriftMeasurement(0.09, 0.005, 0.30, 0.8, 1.0, 1200, 900)
    >>> for r in check_post_drift(bad).reasons:
    ...     print(r)
    post-drift hold-out: 9 % of normal rows alarmed, pre-drift level 0.5 % + tolerance 1 point = 1.5 %
    fault recall 80 % on the simulated suite is below the champion's 100 %
    """
    measurements: dict[str, Any] = {
        "candidate_far": _num(m.candidate_far),
        "pre_drift_far": _num(m.pre_drift_far),
        "stale_far": _num(m.stale_far),
        "candidate_recall": _num(m.candidate_recall),
        "champion_recall": _num(m.champion_recall),
        "holdout_rows": m.holdout_rows,
        "pre_rows": m.pre_rows,
        "far_tolerance": m.far_tolerance,
        "per_device": {k: dict(v) for k, v in sorted(m.per_device.items())},
        "faults": {k: list(v) for k, v in sorted(m.faults.items())},
        "skipped": dict(m.skipped),
        "data": dict(m.notes),
    }
    reasons: list[str] = []
    if m.holdout_rows <= 0 or not math.isfinite(m.candidate_far):
        reasons.append("no post-drift hold-out rows were scored: recovery cannot be shown")
    elif not math.isfinite(m.pre_drift_far):
        reasons.append("no pre-drift level was measured (no champion or no pre-drift rows)")
    else:
        limit = m.pre_drift_far + m.far_tolerance
        if m.candidate_far > limit + 1e-12:
            reasons.append(
                f"post-drift hold-out: {_pct(m.candidate_far)} of normal rows alarmed, pre-drift level "
                f"{_pct(m.pre_drift_far)} + tolerance {100 * m.far_tolerance:g} point = {_pct(limit)}"
            )
    if not math.isfinite(m.candidate_recall):
        reasons.append("no simulated fault was scored: fault recall cannot be shown")
    elif math.isfinite(m.champion_recall) and m.candidate_recall < m.champion_recall - 1e-12:
        reasons.append(
            f"fault recall {_pct(m.candidate_recall)} on the simulated suite is below the champion's "
            f"{_pct(m.champion_recall)}"
        )
    if not reasons:
        reasons.append(
            f"post-drift false alarms {_pct(m.candidate_far)} (stale model {_pct(m.stale_far)}, pre-drift "
            f"{_pct(m.pre_drift_far)}); fault recall {_pct(m.candidate_recall)} "
            f"(champion {_pct(m.champion_recall)})"
        )
        return GateResult("post_drift", True, reasons, measurements)
    return GateResult("post_drift", False, reasons, measurements)
