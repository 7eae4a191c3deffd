"""What the loop achieved, against the simulator's ground truth (issue 15's figures).

From what the hub stored (the agents' summaries, drift reports and alarms) and the
run's ground truth (``ground-truth.json``, written by the simulator before the run):

- false-alarm fraction of normal rows per group: before the drift, on the stale model
  after it, after the recovery (the retrained model), and the change against before;
- drift verdicts per pump: a pump counts as *called drifting* when one of its drift
  reports at or after its drift's onset (any time, for a pump without a drift) says
  drift and not fault; precision and recall against the pumps the truth says drift
  (benign scheduled drift; the weather that is always there is normal), and the delay
  from the onset to the first such report;
- fault recall and delay of the first alarm, for faults that start before and after the
  group's recovery;
- which tier acted (retrain the group; recalibrate a device) and how long from the drift
  onset to a recovered group, in simulated hours and wall seconds.

Pure functions of their inputs; ``benchmarks/loop.py`` and the demo's report use them.
May import: the stdlib.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "drift_truth",
    "drift_verdicts",
    "false_alarm_goal",
    "fault_recall",
    "read_truth",
    "says_drift",
    "tiers_acted",
]

_H_MS = 3_600_000
#: Drift kinds the truth lists that are not a change: the weather is always there, also in training.
_ALWAYS_ON = frozenset({"ambient_temperature"})


def drift_truth(truth: Mapping[str, Any]) -> tuple[dict[str, int], dict[str, list[tuple[int, int]]]]:
    """From a ground-truth document: the onset (ms) of each drifted pump, and each pump's fault intervals.

    >>> doc = {"events": [
    ...     {"device_id": "p-1", "category": "drift", "kind": "setpoint_change", "start_ms": 5, "end_ms": 9},
    ...     {"device_id": "p-2", "category": "drift", "kind": "ambient_temperature",
    ...      "start_ms": 0, "end_ms": 9},
    ...     {"device_id": "p-3", "category": "fault", "kind": "cavitation", "start_ms": 2, "end_ms": 4}]}
    >>> drift_truth(doc)
    ({'p-1': 5}, {'p-3': [(2, 4)]})
    """
    onsets: dict[str, int] = {}
    faults: dict[str, list[tuple[int, int]]] = {}
    for e in truth.get("events", []):
        dev = str(e["device_id"])
        if e["category"] == "drift" and e["kind"] not in _ALWAYS_ON:
            onsets[dev] = min(onsets.get(dev, int(e["start_ms"])), int(e["start_ms"]))
        elif e["category"] == "fault":
            faults.setdefault(dev, []).append((int(e["start_ms"]), int(e["end_ms"])))
    return onsets, faults


def read_truth(path: Path) -> dict[str, Any]:
    """The ground-truth document of a run (``{}`` when the run wrote none)."""
    if not path.is_file():
        return {}
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def says_drift(body: Mapping[str, Any]) -> bool:
    """Whether one drift report says *drift* (and not a fault).

    The report's ``alert``; a verdict that names the change fault-like (``hint`` or
    ``verdict.hint`` ``fault_like``, or ``verdict.kind``/``classification`` ``fault``) is not drift.

    >>> says_drift({"alert": True}), says_drift({"alert": False})
    (True, False)
    >>> says_drift({"alert": True, "hint": "fault_like"})
    False
    """
    verdict = body.get("verdict")
    hints = {body.get("hint"), body.get("classification")}
    if isinstance(verdict, Mapping):
        hints |= {verdict.get("hint"), verdict.get("kind"), verdict.get("classification")}
    if hints & {"fault_like", "fault"}:
        return False
    return bool(body.get("alert"))


def drift_verdicts(
    reports: Mapping[str, Sequence[tuple[int, Mapping[str, Any]]]],
    onsets: Mapping[str, int],
    faults: Mapping[str, Sequence[tuple[int, int]]],
    *,
    t0_ms: int,
) -> dict[str, Any]:
    """Per-pump drift verdicts against the truth.

    Args:
        reports: each pump's drift reports as (time ms, body), any order.
        onsets: the truly drifted pumps and their drift onsets.
        faults: fault intervals per pump (a pump with a fault and no drift that is called
            drifting is a false positive: a fault is not drift).
        t0_ms: start of the run (earlier reports are not counted).

    Returns:
        ``pumps`` (one row each: truth, called, first call in hours from t0, delay in
        minutes), ``tp``/``fp``/``fn``/``tn``, ``precision``/``recall`` (None when undefined),
        ``delay_min`` (mean, max over true positives; None without one).

    >>> v = drift_verdicts({"a": [(10, {"alert": True})], "b": [(3, {"alert": True})], "c": []},
    ...                    {"a": 4, "c": 4}, {}, t0_ms=0)
    >>> (v["tp"], v["fp"], v["fn"], v["precision"], v["recall"])
    (1, 1, 1, 0.5, 0.5)
    """
    rows = []
    counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    delays: list[float] = []
    for dev in sorted(set(reports) | set(onsets)):
        onset = onsets.get(dev)
        since = t0_ms if onset is None else onset
        calls = sorted(ts for ts, body in reports.get(dev, ()) if ts >= since and says_drift(body))
        called = bool(calls)
        truth = "drift" if onset is not None else ("fault" if faults.get(dev) else "normal")
        key = ("tp" if called else "fn") if onset is not None else ("fp" if called else "tn")
        counts[key] += 1
        delay = None
        if called and onset is not None:
            delay = round((calls[0] - onset) / 60_000, 1)
            delays.append(delay)
        rows.append(
            {
                "device_id": dev,
                "truth": truth,
                "called": called,
                "first_call_h": round((calls[0] - t0_ms) / _H_MS, 3) if calls else None,
                "calls_h": [round((t - t0_ms) / _H_MS, 3) for t in calls],
                "onset_h": None if onset is None else round((onset - t0_ms) / _H_MS, 3),
                "delay_min": delay,
            }
        )
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    return {
        "pumps": rows,
        **counts,
        "precision": round(tp / (tp + fp), 3) if tp + fp else None,
        "recall": round(tp / (tp + fn), 3) if tp + fn else None,
        "delay_min": {"mean": round(sum(delays) / len(delays), 1), "max": max(delays)} if delays else None,
    }


def fault_recall(detection: Iterable[Mapping[str, Any]], recovered_h: float | None) -> dict[str, Any]:
    """Fault recall and mean delay before and after the recovery (faults by their start).

    Args:
        detection: :func:`pumpops.demo._report.fault_detection` rows (``start_h``, ``detected``, ``delay_s``).
        recovered_h: when the group recovered (hours from t0); None: every fault is "before".

    >>> rows = [{"start_h": 1, "detected": True, "delay_s": 8},
    ...         {"start_h": 5, "detected": False, "delay_s": None}]
    >>> fault_recall(rows, 3.0)["after"]
    {'faults': 1, 'detected': 0, 'recall': 0.0, 'delay_s_mean': None}
    """
    parts: dict[str, list[Mapping[str, Any]]] = {"before": [], "after": []}
    for d in detection:
        after = recovered_h is not None and float(d["start_h"]) >= recovered_h
        parts["after" if after else "before"].append(d)
    out: dict[str, Any] = {}
    for name, rows in parts.items():
        hits = [d for d in rows if d["detected"]]
        delays = [float(d["delay_s"]) for d in hits if d.get("delay_s") is not None]
        out[name] = {
            "faults": len(rows),
            "detected": len(hits),
            "recall": round(len(hits) / len(rows), 3) if rows else None,
            "delay_s_mean": round(sum(delays) / len(delays), 1) if delays else None,
        }
    return out


def false_alarm_goal(
    rates: Mapping[str, Mapping[str, float | None]], *, tolerance_pp: float = 1.0
) -> dict[str, Any]:
    """Per group: after-recovery false alarms against before the drift (percent), and the goal.

    Args:
        rates: per group, percent per phase (``before drift``, ``stale model, after drift``,
            ``retrained model``, ``no drift (same period)``).
        tolerance_pp: the goal: after within this many percentage points of before.

    >>> false_alarm_goal({"g": {"before drift": 0.1, "retrained model": 0.5}})["g"]["met"]
    True
    >>> false_alarm_goal({"g": {"before drift": 0.1, "stale model, after drift": 40.0}})["g"]["met"]
    False
    """
    out: dict[str, Any] = {}
    for group, phases in sorted(rates.items()):
        before = phases.get("before drift")
        stale = phases.get("stale model, after drift")
        after = phases.get("retrained model")
        if after is None and stale is None:
            after = phases.get("no drift (same period)")  # a group that needed no recovery
        elif after is None:
            after = None  # drifted, never recovered
        excess = None if before is None or after is None else round(after - before, 3)
        out[group] = {
            "before": before,
            "stale": stale,
            "after": after,
            "excess_pp": excess,
            "met": excess is not None and excess <= tolerance_pp,
        }
    return out


def tiers_acted(
    outcomes: Iterable[Mapping[str, Any]], recalibrations: Iterable[Mapping[str, Any]] = ()
) -> list[str]:
    """What responded to the drift: ``retrain <group>: <status>``, ``recalibrate <device>: <status>``.

    >>> tiers_acted([{"group": "g", "trigger": "drift", "status": "released"},
    ...              {"group": "h", "trigger": "manual", "status": "validation_failed"}])
    ['retrain g: released']
    """
    acted = [
        f"retrain {o['group']}: {o['status']}"
        for o in outcomes
        if o.get("trigger") not in ("manual", "initial")
    ]
    acted += [f"recalibrate {r.get('device_id')}: {r.get('status', 'sent')}" for r in recalibrations]
    return acted
