"""The features step: from a snapshot to regular rows of normal data per device, and a labelled holdout.

Pure functions, no I/O: resampling onto a regular grid, short-gap filling,
the hygiene that leaves faults and alarms out of training, and the labels of
the holdout. Window features (means, detrending) are computed by the detector
itself, inside its ONNX graph, so the device runs exactly what was trained.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pumpops.pipeline._snapshot import Dataset, Recording

Interval = tuple[int, int]  # [start_us, end_us)


@dataclass(frozen=True, slots=True)
class DeviceFeatures:
    """One device's rows after the features step.

    Attributes:
        device_id: the device (or recording).
        train: ``(n, S)`` normal rows to fit and calibrate on (its clean runs, joined in time order).
        test_ts_us: ``(m,)`` grid times of the holdout rows.
        test: ``(m, S)`` holdout rows (finite).
        test_labels: ``(m,)`` int8 labels, or None when nothing labels the holdout.
    """

    device_id: str
    train: np.ndarray
    test_ts_us: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray | None


def resample(
    ts_us: np.ndarray, values: np.ndarray, period_us: int, fill_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Average readings into bins of ``period_us`` (aligned to the epoch); fill gaps of up to ``fill_rows``.

    Empty bins are NaN unless a value at most ``fill_rows`` bins earlier can be
    carried forward (per sensor).

    >>> ts = np.array([0, 1_000_000, 3_000_000, 3_500_000])
    >>> grid, x = resample(ts, np.array([[1.0], [2.0], [4.0], [6.0]]), 1_000_000, 1)
    >>> grid.tolist(), x[:, 0].tolist()
    ([0, 1000000, 2000000, 3000000], [1.0, 2.0, 2.0, 5.0])
    """
    values = np.asarray(values, dtype=np.float64)
    n_sensors = values.shape[1] if values.ndim == 2 else 0
    if ts_us.size == 0:
        return np.empty(0, dtype=np.int64), np.empty((0, n_sensors))
    t0 = int(ts_us[0]) - int(ts_us[0]) % period_us
    idx = (np.asarray(ts_us, dtype=np.int64) - t0) // period_us
    m = int(idx[-1]) + 1
    out = np.full((m, n_sensors), np.nan)
    rows = np.arange(m)
    for j in range(n_sensors):
        col = values[:, j]
        ok = np.isfinite(col)
        sums = np.bincount(idx[ok], weights=col[ok], minlength=m)
        counts = np.bincount(idx[ok], minlength=m)
        have = counts > 0
        filled = np.where(have, sums / np.maximum(counts, 1), np.nan)
        if fill_rows > 0:
            last = np.maximum.accumulate(np.where(have, rows, -1))
            carry = (~have) & (last >= 0) & (rows - last <= fill_rows)
            filled[carry] = filled[last[carry]]
        out[:, j] = filled
    return t0 + rows * period_us, out


def interval_mask(ts_us: np.ndarray, intervals: Sequence[Interval]) -> np.ndarray:
    """Rows whose time falls in any ``[start_us, end_us)`` interval.

    >>> interval_mask(np.array([0, 5, 10, 15]), [(5, 11)]).tolist()
    [False, True, True, False]
    """
    mask = np.zeros(ts_us.shape, dtype=bool)
    for start, end in intervals:
        mask |= (ts_us >= start) & (ts_us < end)
    return mask


def dilate(mask: np.ndarray, rows: int) -> np.ndarray:
    """Widen every True run by ``rows`` on both sides.

    >>> dilate(np.array([0, 0, 0, 1, 0, 0, 0], dtype=bool), 2).astype(int).tolist()
    [0, 1, 1, 1, 1, 1, 0]
    """
    if rows <= 0 or not mask.any():
        return mask.copy()
    kernel = np.ones(2 * rows + 1)
    return np.convolve(mask.astype(np.float64), kernel, mode="same") > 0


def runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of every run of True.

    >>> runs(np.array([1, 1, 0, 1, 0, 1, 1, 1], dtype=bool))
    [(0, 2), (3, 4), (5, 8)]
    """
    padded = np.concatenate([[False], valid.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


@dataclass(frozen=True, slots=True)
class FeatureSettings:
    """What the features step needs from the config, in grid rows and µs."""

    period_us: int
    fill_rows: int
    min_segment_rows: int
    margin_us: int
    exclude_labelled: bool


def settings_from(
    resample_period_s: float,
    max_gap_fill_s: float,
    min_segment_samples: int,
    margin_s: float,
    exclude_labelled: bool,
) -> FeatureSettings:
    """Convert the config's seconds into grid rows and µs."""
    period_us = max(1, round(resample_period_s * 1e6))
    return FeatureSettings(
        period_us=period_us,
        fill_rows=math.floor(max_gap_fill_s * 1e6 / period_us),
        min_segment_rows=min_segment_samples,
        margin_us=round(margin_s * 1e6),
        exclude_labelled=exclude_labelled,
    )


def _grid_labels(rec: Recording, grid: np.ndarray, s: FeatureSettings) -> np.ndarray | None:
    if rec.anomaly is None:
        return None
    _, lab = resample(rec.ts_us, rec.anomaly.astype(np.float64)[:, None], s.period_us, s.fill_rows)
    out: np.ndarray = np.nan_to_num(lab[:, 0], nan=0.0) > 0
    return out[: grid.size]


def normal_rows(
    rec: Recording, s: FeatureSettings, excluded: Sequence[Interval]
) -> tuple[np.ndarray, dict[str, int]]:
    """Normal rows of one training recording, with counts of what hygiene removed."""
    grid, x = resample(rec.ts_us, rec.values, s.period_us, s.fill_rows)
    finite = np.isfinite(x).all(axis=1) if x.size else np.zeros(grid.size, dtype=bool)
    widened = [(a - s.margin_us, b + s.margin_us) for a, b in excluded]
    bad = interval_mask(grid, widened)
    labels = _grid_labels(rec, grid, s)
    if s.exclude_labelled and labels is not None:
        bad |= dilate(labels, -(-s.margin_us // s.period_us))
    valid = finite & ~bad
    keep = [x[a:b] for a, b in runs(valid) if b - a >= s.min_segment_rows]
    rows = np.concatenate(keep) if keep else np.empty((0, x.shape[1] if x.ndim == 2 else 0))
    stats = {
        "grid_rows": int(grid.size),
        "excluded_rows": int((finite & bad).sum()),
        "kept_rows": int(rows.shape[0]),
    }
    return rows, stats


def holdout_rows(
    rec: Recording, s: FeatureSettings, label_intervals: Sequence[Interval] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Holdout rows (finite only) with their grid times and labels (from the recording or intervals)."""
    grid, x = resample(rec.ts_us, rec.values, s.period_us, s.fill_rows)
    finite = np.isfinite(x).all(axis=1) if x.size else np.zeros(grid.size, dtype=bool)
    labels = _grid_labels(rec, grid, s)
    if labels is None and label_intervals is not None:
        labels = interval_mask(grid, label_intervals)
    return grid[finite], x[finite], None if labels is None else labels[finite].astype(np.int8)


def build_features(
    dataset: Dataset,
    s: FeatureSettings,
    *,
    excluded: dict[str, list[Interval]],
    labels: dict[str, list[Interval]] | None,
) -> tuple[list[DeviceFeatures], dict[str, int]]:
    """Turn a snapshot into per-device training rows and holdout rows.

    Args:
        dataset: the snapshot.
        s: grid and hygiene settings.
        excluded: per device, intervals to leave out of training (faults, alarms), before the margin.
        labels: per device, intervals that are anomalous in the holdout (None: use the
            recordings' own labels, if any).

    Returns:
        The devices (sorted by id) and totals of rows kept and excluded.
    """
    by_device: dict[str, dict[str, list[Recording]]] = {}
    for rec in dataset.recordings:
        by_device.setdefault(rec.device_id, {"train": [], "test": []})[rec.split].append(rec)
    n_sensors = len(dataset.sensors)
    totals = {"grid_rows": 0, "excluded_rows": 0, "kept_rows": 0, "test_rows": 0}
    out = []
    for device_id in sorted(by_device):
        parts = by_device[device_id]
        train_parts = []
        for rec in parts["train"]:
            rows, stats = normal_rows(rec, s, excluded.get(device_id, []))
            train_parts.append(rows)
            for k, v in stats.items():
                totals[k] += v
        train = np.concatenate(train_parts) if train_parts else np.empty((0, n_sensors))
        ts_l, x_l, y_l = [], [], []
        for rec in parts["test"]:
            intervals = None if labels is None else labels.get(device_id, [])
            ts, x, y = holdout_rows(rec, s, intervals)
            ts_l.append(ts)
            x_l.append(x)
            y_l.append(y)
        has_labels = bool(y_l) and all(y is not None for y in y_l)
        test_ts = np.concatenate(ts_l) if ts_l else np.empty(0, dtype=np.int64)
        test = np.concatenate(x_l) if x_l else np.empty((0, n_sensors))
        test_labels = np.concatenate([y for y in y_l if y is not None]) if has_labels else None
        totals["test_rows"] += int(test.shape[0])
        out.append(DeviceFeatures(device_id, train, test_ts.astype(np.int64), test, test_labels))
    return out, totals
