"""The detectors' shared numerics and ONNX names: robust scaling, alarm smoothing, the graph's inputs.

Pure numpy, no model: the statistics every detector computes the same way,
and the names of the ONNX contract's inputs and output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "INPUT_CENTER",
    "INPUT_SCALE",
    "INPUT_WINDOW",
    "ONNX_OPSET",
    "OUTPUT_SCORE",
    "k_of_n",
    "robust_center_scale",
    "scale_floor_vector",
    "smooth_alarms",
]

ONNX_OPSET = 17
INPUT_WINDOW = "window"
INPUT_CENTER = "center"
INPUT_SCALE = "scale"
OUTPUT_SCORE = "score"
_FEATURES = "features"  # (N, S) float64 feature rows, the core's input
_CORE_SCORE = "core_score"  # (N,) float64, the core's output
_FORMAT = 1
_QUANTILES = np.linspace(0.0, 1.0, 11)
_SCALE_FLOOR = 1e-6  # in units of each sensor's own magnitude, see robust_center_scale


def robust_center_scale(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sensor median and robust spread (IQR / 1.349, floored) of normal data.

    The floor keeps a constant channel (a voltage that never moves) from
    dividing by zero: it is 1e-6 of the channel's magnitude, or 1e-6.

    >>> c, s = robust_center_scale(np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]]))
    >>> c.tolist(), s.round(4).tolist()
    ([2.0, 5.0], [0.7413, 0.0])
    """
    center = np.median(normal, axis=0)
    q75, q25 = np.percentile(normal, [75.0, 25.0], axis=0)
    scale = (q75 - q25) / 1.349
    std = normal.std(axis=0)
    scale = np.where(scale > 0, scale, std)
    floor = np.maximum(np.abs(center), 1.0) * _SCALE_FLOOR
    return center.astype(np.float64), np.maximum(scale, floor).astype(np.float64)


def scale_floor_vector(sensors: Sequence[str], default: float, by_kind: Mapping[str, float]) -> np.ndarray:
    """Per-sensor relative scale floors: the first ``by_kind`` key in the sensor's name, else ``default``.

    >>> scale_floor_vector(["vibration_accel_de", "flow_rate"], 0.01, {"vibration": 0.03}).tolist()
    [0.03, 0.01]
    """
    return np.array(
        [next((f for k, f in by_kind.items() if k in s), default) for s in sensors], dtype=np.float64
    )


def sensor_windows(sensors: Sequence[str], default: int, by_kind: Mapping[str, int]) -> np.ndarray:
    """Per-sensor window lengths: the first ``by_kind`` key in the sensor's name, else ``default``.

    >>> sensor_windows(["vibration_accel_de", "flow_rate"], 10, {"flow": 60}).tolist()
    [10, 60]
    """
    return np.array(
        [next((w for k, w in by_kind.items() if k in s), default) for s in sensors], dtype=np.int64
    )


def k_of_n(exceed: np.ndarray, k: int, n: int) -> np.ndarray:
    """Causal ``k``-of-``n`` smoothing: alarm at ``i`` when ``k`` of rows ``i-n+1..i`` exceed.

    >>> k_of_n(np.array([1, 0, 1, 1, 0, 0, 0], dtype=bool), 2, 3).astype(int).tolist()
    [0, 0, 1, 1, 1, 0, 0]
    """
    counts = np.cumsum(np.concatenate([[0], exceed.astype(np.int64)]))
    lo = np.maximum(np.arange(1, exceed.size + 1) - n, 0)
    return np.asarray((counts[1:] - counts[lo]) >= k, dtype=bool)


def smooth_alarms(
    scores: np.ndarray, threshold: float, k: int, n: int, *, release: float = 1.0, hold: int = 0
) -> np.ndarray:
    """``k``-of-``n`` alarms with hysteresis: once on, stay on while ``score > release * threshold``.

    Then an off-delay: an alarm that ends stays on for ``hold`` more rows.

    >>> s = np.array([0.0, 2.0, 2.0, 0.8, 0.8, 0.3, 2.0])
    >>> smooth_alarms(s, 1.0, 2, 2).astype(int).tolist()
    [0, 0, 1, 0, 0, 0, 0]
    >>> smooth_alarms(s, 1.0, 2, 2, release=0.5).astype(int).tolist()
    [0, 0, 1, 1, 1, 0, 0]
    >>> smooth_alarms(s, 1.0, 2, 2, hold=2).astype(int).tolist()
    [0, 0, 1, 1, 1, 0, 0]
    """
    raised = k_of_n(scores > threshold, k, n)
    if release < 1.0:
        above = scores > release * threshold
        out = np.zeros(scores.shape[0], dtype=bool)
        on = False
        for i in range(scores.shape[0]):
            on = bool(raised[i] or (on and above[i]))
            out[i] = on
        raised = out
    return k_of_n(raised, 1, hold + 1) if hold > 0 else raised


def typical_rows(features: np.ndarray, trim_z: float) -> np.ndarray:
    """Rows whose every feature lies within ``trim_z`` robust deviations of its median (0: all rows).

    Falls back to every row when fewer than ``max(10, n / 4)`` would remain.

    >>> f = np.zeros((40, 1)); f[::2] = 1.0; f[5] = 50.0
    >>> int(typical_rows(f, 3.0).sum()), bool(typical_rows(f, 3.0)[5])
    (39, False)
    """
    if trim_z <= 0:
        return np.ones(features.shape[0], dtype=bool)
    med = np.median(features, axis=0)
    mad = np.median(np.abs(features - med), axis=0) * 1.4826
    dev = np.abs(features - med) / np.maximum(mad, 1e-9)
    keep = np.asarray((dev <= trim_z).all(axis=1))
    return keep if keep.sum() >= max(10, features.shape[0] // 4) else np.ones_like(keep)


def input_windows(readings: np.ndarray, rows: int) -> np.ndarray:
    """``(n, rows, S)``: the window ending at every row, the first reading repeated before the start.

    >>> input_windows(np.arange(3.0).reshape(3, 1), 2)[:, :, 0].tolist()
    [[0.0, 0.0], [0.0, 1.0], [1.0, 2.0]]
    """
    x = np.asarray(readings, dtype=np.float64)
    padded = np.concatenate([np.repeat(x[:1], rows - 1, axis=0), x])
    view = np.lib.stride_tricks.sliding_window_view(padded, rows, axis=0)  # (n, S, rows)
    return np.ascontiguousarray(view.transpose(0, 2, 1))


def trailing_mean(values: np.ndarray, m: int) -> np.ndarray:
    """Causal mean of the last ``m`` values (the first value repeated before the start).

    >>> trailing_mean(np.array([2.0, 4.0, 6.0]), 2).tolist()
    [2.0, 3.0, 5.0]
    """
    if m == 1:
        return np.asarray(values, dtype=np.float64)
    padded = np.concatenate([np.repeat(values[:1], m - 1), values])
    cs = np.concatenate([[0.0], np.cumsum(padded)])
    return np.asarray((cs[m:] - cs[:-m]) / m)
