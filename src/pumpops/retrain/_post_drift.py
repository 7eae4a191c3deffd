"""The post-drift part of a drift-triggered retrain: where it trains and is judged, and the gate's data.

:func:`post_drift_windows` cuts the slices (pre-drift, post-drift training,
the later hold-out); :func:`post_drift_data` reads the group's normal rows
of each slice from the store for the ``post_drift`` validation gate
(``pumpops.validation._post_drift``); :func:`gate_figures` picks the gate's
figures from a report for the outcome and the audit entry.
May import: every hub-side part.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from pumpops.errors import NotFoundError
from pumpops.fleet import get_profile
from pumpops.pipeline import Recording
from pumpops.settings import RetrainSettings
from pumpops.validation import PostDriftData, PostDriftDevice

__all__ = ["PostDriftWindows", "gate_figures", "json_safe", "post_drift_data", "post_drift_windows"]


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class PostDriftWindows:
    """Where a drift-triggered run trains and is judged, in µs since the epoch.

    Attributes:
        pre_since: start of the pre-drift slice (the champion calibrates on its first half,
            its second half is scored).
        onset: the drift's onset: training starts here.
        holdout_since: training ends here; the post-drift hold-out runs from here to ``until``.
        until: the newest data.
    """

    pre_since: int
    onset: int
    holdout_since: int
    until: int

    @property
    def post_s(self) -> float:
        """Seconds of data since the onset."""
        return (self.until - self.onset) / 1e6

    def to_dict(self) -> dict[str, str]:
        """The bounds as ISO 8601 times."""
        return {
            "pre_since": _iso(self.pre_since),
            "onset": _iso(self.onset),
            "holdout_since": _iso(self.holdout_since),
            "until": _iso(self.until),
        }


def post_drift_windows(onset_us: int, until_us: int, policy: RetrainSettings) -> PostDriftWindows:
    """The slices of a drift-triggered run: training after the onset, a later hold-out, a pre-drift slice.

    Training starts at the onset, or ``window_h`` before the end if the onset is older;
    the newest ``post_drift_holdout_fraction`` of that span is the hold-out; the
    pre-drift slice is as long as the post-drift span (at most ``window_h``).

    >>> p = RetrainSettings(window_h=6, post_drift_holdout_fraction=0.25)
    >>> w = post_drift_windows(10_000_000_000, 14_000_000_000, p)
    >>> (w.pre_since, w.onset, w.holdout_since, w.until)
    (6000000000, 10000000000, 13000000000, 14000000000)
    """
    window_us = round(policy.window_h * 3_600_000_000)
    start = max(onset_us, until_us - window_us)
    holdout = until_us - round((until_us - start) * policy.post_drift_holdout_fraction)
    pre = onset_us - min(until_us - start, window_us)
    return PostDriftWindows(pre, start, holdout, until_us)


def _inside(ts_us: np.ndarray, intervals: Sequence[tuple[int, int]]) -> np.ndarray:
    mask = np.zeros(ts_us.size, dtype=bool)
    for begin, end in intervals:
        mask |= (ts_us >= begin) & (ts_us < end)
    return mask


def post_drift_data(
    store: Any,
    group: str,
    windows: PostDriftWindows,
    *,
    intervals: Sequence[dict[str, str]],
    margin_s: float,
    far_tolerance: float,
) -> PostDriftData:
    """The group's normal data around the drift, read from the store, for the post-drift gate.

    Every alarm period of ``intervals`` (with ``margin_s``) is left out of every slice,
    as training leaves it out: the gate counts false alarms on normal rows only.

    Raises:
        NotFoundError: the group has no registered devices.
    """
    devices = sorted((d for d in store.devices() if d.group == group), key=lambda d: d.device_id)
    if not devices:
        raise NotFoundError(f"group {group!r} has no registered devices")
    sensors = tuple(s.canonical for s in get_profile(devices[0].profile_id).sensors)
    margin_us = round(margin_s * 1e6)
    periods: dict[str, list[tuple[int, int]]] = {}
    for item in intervals:
        begin = _parse_us(item["start"]) - margin_us
        end = _parse_us(item["end"]) + margin_us
        periods.setdefault(item["device_id"], []).append((begin, end))
    mid = windows.pre_since + (windows.onset - windows.pre_since) // 2
    bounds = (
        (windows.pre_since, mid),
        (mid, windows.onset),
        (windows.onset, windows.holdout_since),
        (windows.holdout_since, windows.until),
    )
    out = []
    left_out = 0
    for device in devices:
        frame = store.query(
            device.device_id, sensors=sensors, since_us=windows.pre_since, until_us=windows.until
        )
        ts = np.asarray(frame.ts_us, dtype=np.int64)
        values = np.asarray(frame.values, dtype=np.float64)
        alarmed = _inside(ts, periods.get(device.device_id, []))
        left_out += int(alarmed.sum())
        parts: list[Recording | None] = []
        for split, (begin, end) in zip(("train", "test", "train", "test"), bounds, strict=True):
            keep = (ts >= begin) & (ts < end) & ~alarmed
            parts.append(
                Recording(device.device_id, split, ts[keep], values[keep]) if keep.any() else None  # type: ignore[arg-type]
            )
        out.append(PostDriftDevice(device.device_id, *parts))
    source = {
        "kind": "store",
        "group": group,
        **windows.to_dict(),
        "devices": len(out),
        "alarm_rows_left_out": left_out,
        "margin_s": margin_s,
    }
    return PostDriftData(sensors, tuple(out), far_tolerance, source)


def _parse_us(text: str) -> int:
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1_000_000)


def gate_figures(report: Any) -> dict[str, Any] | None:
    """The post-drift gate's headline figures from a validation report (None: no such gate)."""
    try:
        gate = report.gate("post_drift")
    except KeyError:
        return None
    keep = (
        "candidate_far",
        "pre_drift_far",
        "stale_far",
        "candidate_recall",
        "champion_recall",
        "holdout_rows",
        "pre_rows",
        "far_tolerance",
    )
    figures: dict[str, Any] = {k: gate.measurements.get(k) for k in keep}
    figures["passed"] = gate.passed
    figures["reasons"] = list(gate.reasons)
    figures["data"] = gate.measurements.get("data")
    return figures


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float as None (audit payloads are strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
