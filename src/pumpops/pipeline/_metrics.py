"""Point-wise detection metrics against labels: F1, false-alarm rate, missed-alarm rate, detection delay.

Pure functions over boolean arrays, as SKAB defines them: F1 = TP / (TP + (FP + FN) / 2),
FAR = FP / (FP + TN), MAR = FN / (FN + TP); and the same per fault kind and per make
(:func:`breakdown`) for the evaluate step's held-out and in-sample pumps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class ScoredDevice:
    """One device's evaluation rows, scored: what :func:`breakdown` groups.

    Attributes:
        device_id: the device.
        make: its make (profile id), or the group when unknown.
        labels: ``(m,)`` 1 inside a labelled event.
        kinds: ``(m,)`` the labelled event's kind per row (``""`` outside events).
        alarms: ``(m,)`` the model's alarms.
        ts_us: ``(m,)`` row times.
    """

    device_id: str
    make: str
    labels: np.ndarray
    kinds: np.ndarray
    alarms: np.ndarray
    ts_us: np.ndarray


def breakdown(devices: Sequence[ScoredDevice]) -> dict[str, Any]:
    """Metrics of some devices pooled, per fault kind and per make.

    Per kind ``k``: the rows labelled with another kind are left out, so the
    false alarms are those of every normal row and the hits those of kind ``k``
    (as SKAB scores an experiment that holds one kind of fault). Per make: the
    pooled metrics of that make's devices.

    >>> y = np.array([0, 1, 1, 0, 1, 1])
    >>> kinds = np.array(["", "a", "a", "", "b", "b"])
    >>> alarms = np.array([0, 1, 1, 1, 0, 0])
    >>> out = breakdown([ScoredDevice("p-1", "m", y, kinds, alarms, np.arange(6) * 1_000_000)])
    >>> out["kind"]["a"]["f1"], out["kind"]["a"]["far"], out["kind"]["b"]["mar"], out["devices"]
    (0.8, 0.5, 1.0, 1.0)
    """
    out: dict[str, Any] = {"devices": float(len(devices)), "all": {}, "kind": {}, "make": {}}
    if not devices:
        return out
    out["all"] = summarise([(d.labels, d.alarms, d.ts_us) for d in devices])
    names = sorted({str(k) for d in devices for k in np.unique(d.kinds[np.asarray(d.labels) > 0])})
    for kind in names:
        parts = []
        for d in devices:
            labelled = np.asarray(d.labels) > 0
            keep = ~labelled | (d.kinds == kind)
            parts.append((labelled[keep].astype(np.int8), np.asarray(d.alarms)[keep], d.ts_us[keep]))
        out["kind"][kind] = summarise(parts)
    for make in sorted({d.make for d in devices}):
        out["make"][make] = summarise([(d.labels, d.alarms, d.ts_us) for d in devices if d.make == make])
    return out


def flatten(prefix: str, doc: dict[str, Any]) -> dict[str, float]:
    """Dotted metric names of a :func:`breakdown` (for MLflow), finite numbers only.

    >>> flatten("heldout", {"devices": 2.0, "all": {"f1": 0.5}, "kind": {"a": {"f1": 1.0}}, "make": {}})
    {'heldout.devices': 2.0, 'heldout.f1': 0.5, 'heldout.kind.a.f1': 1.0}
    """
    flat: dict[str, float] = {}
    if "devices" in doc:
        flat[f"{prefix}.devices"] = float(doc["devices"])
    for key, value in doc.get("all", {}).items():
        flat[f"{prefix}.{key}"] = float(value)
    for group in ("kind", "make"):
        for name, metrics in doc.get(group, {}).items():
            for key, value in metrics.items():
                flat[f"{prefix}.{group}.{name}.{key}"] = float(value)
    return {k: v for k, v in flat.items() if np.isfinite(v)}
