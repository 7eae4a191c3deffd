"""Packaging's measurements: held-out windows per device, scores of a built model, latency and peak memory.

The held-out data and its calibration come from validation and the pipeline
(:func:`~pumpops.validation.simulated_holdout`,
:func:`~pumpops.pipeline.calibrated_holdout`); sessions from
:func:`~pumpops.pipeline.open_session`, on one thread, so figures compare.
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from pumpops.errors import ConfigError
from pumpops.pipeline import calibrated_holdout, load_model_folder, open_session
from pumpops.validation import MeasurementSection, reset_peak_rss, rss_kib, simulated_holdout, skab_holdout

__all__ = ["HeldOutScores", "deviation", "held_out", "measure", "score_all"]


@dataclass(frozen=True)
class HeldOutScores:
    """Held-out windows per device with their calibration feeds and thresholds.

    Attributes:
        windows: device -> ``(n, W, S)`` float64 windows.
        center: device -> ``(S,)`` reference center.
        scale: device -> ``(S,)`` reference scale.
        threshold: device -> alarm threshold.
        source: where the data came from (for the record).
    """

    windows: dict[str, np.ndarray]
    center: dict[str, np.ndarray]
    scale: dict[str, np.ndarray]
    threshold: dict[str, float]
    source: dict[str, Any]


def held_out(folder: Path, data: Path | int | None, *, max_windows: int) -> HeldOutScores:
    """Held-out data for the model in ``folder``: SKAB-format files, or the simulated suite.

    Args:
        folder: the model folder.
        data: a folder of SKAB-format files, or a seed for the simulated suite
            (None: seed 0); the simulated suite needs a group of a known make.
        max_windows: windows kept per device.

    Raises:
        ConfigError: the data cannot serve this model.
    """
    model = load_model_folder(folder)
    sensors = model.detector.sensors
    if isinstance(data, (str, Path)):
        held = skab_holdout(Path(data), sensors)
    else:
        held = simulated_holdout(model.group, sensors, seed=int(data or 0), m=MeasurementSection())
    windows, center, scale, threshold = {}, {}, {}, {}
    for dev in held.devices:
        rows = calibrated_holdout(model, dev.calibration, dev.test)
        cal, x = rows.calibration, rows.rows
        if x.shape[0] == 0:
            continue
        windows[dev.device_id] = model.detector.windows(x)[:max_windows]
        center[dev.device_id] = np.asarray(cal.center, dtype=np.float64)
        scale[dev.device_id] = np.asarray(cal.scale, dtype=np.float64)
        threshold[dev.device_id] = float(cal.threshold)
    if not windows:
        raise ConfigError("the held-out data has no rows to compare float and int8 scores on")
    return HeldOutScores(windows, center, scale, threshold, held.source)


def _feeds(
    session: ort.InferenceSession, windows: np.ndarray, center: np.ndarray, scale: np.ndarray
) -> dict[str, np.ndarray]:
    names = [i.name for i in session.get_inputs()]
    dtype = np.float32 if session.get_inputs()[0].type == "tensor(float)" else np.float64
    return dict(zip(names, (a.astype(dtype) for a in (windows, center, scale)), strict=True))


def score_all(onnx_bytes: bytes, held: HeldOutScores) -> dict[str, np.ndarray]:
    """Scores of every held-out device (float64 out, whatever the model's precision)."""
    session = open_session(onnx_bytes)
    out = {}
    for dev, windows in held.windows.items():
        parts = [
            session.run(None, _feeds(session, windows[i : i + 1024], held.center[dev], held.scale[dev]))[0]
            for i in range(0, windows.shape[0], 1024)
        ]
        out[dev] = np.concatenate(parts).astype(np.float64)
    return out


def deviation(
    reference: dict[str, np.ndarray], other: dict[str, np.ndarray], thresholds: dict[str, float]
) -> float:
    """Largest ``|other - reference| / threshold`` over all devices and rows.

    >>> ref = {"a": np.array([1.0, 2.0])}
    >>> deviation(ref, {"a": np.array([1.1, 2.0])}, {"a": 2.0})
    0.05...
    """
    worst = 0.0
    for dev, ref in reference.items():
        scale = max(abs(thresholds[dev]), 1e-12)
        worst = max(worst, float(np.max(np.abs(other[dev] - ref))) / scale)
    return worst


def measure(onnx_bytes: bytes, held: HeldOutScores, runs: int) -> dict[str, Any]:
    """Per-window latency (median, one thread) and peak memory of a fresh session scoring a batch."""
    dev = next(iter(held.windows))
    windows = held.windows[dev]
    batch = np.ascontiguousarray(np.resize(windows, (256, *windows.shape[1:])))
    gc.collect()
    before = rss_kib("VmRSS")
    if before is not None and reset_peak_rss():
        session = open_session(onnx_bytes)
        session.run(None, _feeds(session, batch, held.center[dev], held.scale[dev]))
        peak_mb = max(0.0, ((rss_kib("VmHWM") or before) - before) / 1024.0)
        method = "VmHWM growth while a fresh session scores 256 windows"
    else:
        session = open_session(onnx_bytes)
        peak_mb = 0.0
        method = "not measured (no /proc/self/clear_refs)"
    feeds = _feeds(session, windows[-1:], held.center[dev], held.scale[dev])
    for _ in range(10):
        session.run(None, feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return {
        "model_bytes": len(onnx_bytes),
        "latency_ms": round(statistics.median(times) * 1000.0, 4),
        "peak_memory_mb": round(peak_mb, 2),
        "measured_on": "build machine, onnxruntime CPU, one thread",
        "memory_method": method,
        "latency_runs": runs,
    }
