"""Point-wise detection metrics against labels: F1, false-alarm rate, missed-alarm rate, detection delay.

Pure functions over boolean arrays, as SKAB defines them: F1 = TP / (TP + (FP + FN) / 2),
FAR = FP / (FP + TN), MAR = FN / (FN + TP).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pointwise(labels: np.ndarray, alarms: np.ndarray) -> dict[str, float]:
    """Point-wise confusion counts and rates.

    >>> m = pointwise(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 0]))
    >>> m["f1"], m["far"], m["mar"]
    (0.5, 0.5, 0.5)
    """
    y = np.asarray(labels).astype(bool)
    a = np.asarray(alarms).astype(bool)
    tp = int((y & a).sum())
    fp = int((~y & a).sum())
    fn = int((y & ~a).sum())
    tn = int((~y & ~a).sum())
    return {
        "tp": float(tp),
        "fp": float(fp),
        "fn": float(fn),
        "tn": float(tn),
        "f1": tp / (tp + (fp + fn) / 2) if tp + fp + fn else 1.0,
        "far": fp / (fp + tn) if fp + tn else 0.0,
        "mar": fn / (fn + tp) if fn + tp else 0.0,
    }


def event_delays(labels: np.ndarray, alarms: np.ndarray, ts_us: np.ndarray) -> list[float | None]:
    """Seconds from the start of each labelled event to its first alarm inside it (None: missed).

    >>> event_delays(np.array([0, 1, 1, 1, 0, 1]), np.array([0, 0, 1, 1, 0, 0]), np.arange(6) * 1_000_000)
    [1.0, None]
    """
    y = np.asarray(labels).astype(bool)
    a = np.asarray(alarms).astype(bool)
    padded = np.concatenate([[False], y, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    delays: list[float | None] = []
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        hits = np.flatnonzero(a[start:end])
        delays.append(None if hits.size == 0 else float(ts_us[start + hits[0]] - ts_us[start]) / 1e6)
    return delays


def summarise(
    parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> dict[str, float]:
    """Pool ``(labels, alarms, ts_us)`` of several devices into one set of metrics.

    Returns:
        ``f1``, ``far``, ``mar``, the counts, ``events``, ``events_missed`` and
        ``mean_delay_s`` (NaN when every event was missed).
    """
    if not parts:
        return {}
    y = np.concatenate([p[0] for p in parts])
    a = np.concatenate([p[1] for p in parts])
    metrics = pointwise(y, a)
    delays = [d for p in parts for d in event_delays(*p)]
    found = [d for d in delays if d is not None]
    metrics["events"] = float(len(delays))
    metrics["events_missed"] = float(len(delays) - len(found))
    metrics["mean_delay_s"] = float(np.mean(found)) if found else float("nan")
    return metrics
