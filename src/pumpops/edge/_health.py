"""Health check of a freshly installed model: a pure decision and a thin measurement.

:func:`decide_health` takes what was measured (:class:`HealthMeasurements`)
and the target's latency budget and returns a :class:`HealthDecision`; it
never touches a file or onnxruntime, so tests drive it with tables.
:func:`measure_health` is the shell: it loads the bundle's ONNX model in
onnxruntime (one thread, the first available execution provider of the
target's preference list, else CPU), scores the device's recent windows of
raw canonical readings with the device's calibration from the manifest, and
times one window (median of a few runs).
May import: errors, numpy, onnxruntime and the stdlib only (bundles are
passed in, already read and verified).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

if TYPE_CHECKING:  # the bundle format is loaded lazily: importing pumpops.edge must stay small
    from pumpops.schema import Bundle

__all__ = ["HealthDecision", "HealthMeasurements", "decide_health", "measure_health", "session_options"]


@dataclass(frozen=True)
class HealthMeasurements:
    """What the health check saw when it ran the new model.

    Attributes:
        load_error: why the model did not load in onnxruntime (``None``: it loaded).
        run_error: why scoring failed (``None``: it ran).
        n_windows: windows scored.
        n_outputs: output values produced.
        n_non_finite: output values that are NaN or infinite.
        latency_ms: per-window latency, median of a few runs, one thread (``None``: not measured).
        provider: the execution provider used.
    """

    load_error: str | None = None
    run_error: str | None = None
    n_windows: int = 0
    n_outputs: int = 0
    n_non_finite: int = 0
    latency_ms: float | None = None
    provider: str | None = None


@dataclass(frozen=True)
class HealthDecision:
    """Pass or fail, with one sentence per reason (empty when it passes)."""

    ok: bool
    reasons: tuple[str, ...] = ()
    measurements: HealthMeasurements = field(default_factory=HealthMeasurements)


def decide_health(m: HealthMeasurements, max_latency_ms: float | None) -> HealthDecision:
    """Decide whether a model may become current from what was measured.

    Args:
        m: the measurements.
        max_latency_ms: the target's per-window latency budget (``None``: no budget).

    Returns:
        The decision; ``reasons`` says every rule that failed.

    >>> decide_health(HealthMeasurements(n_windows=1, n_outputs=1, latency_ms=0.2), 5.0).ok
    True
    >>> m = HealthMeasurements(n_windows=1, n_outputs=2, n_non_finite=1, latency_ms=0.2)
    >>> decide_health(m, 5.0).reasons
    ('1 of 2 outputs are not finite (NaN or infinite)',)
    """
    reasons: list[str] = []
    if m.load_error is not None:
        reasons.append(f"model does not load: {m.load_error}")
    elif m.run_error is not None:
        reasons.append(f"model does not score the recent window: {m.run_error}")
    else:
        if m.n_windows < 1:
            reasons.append("no window was scored")
        if m.n_outputs < 1:
            reasons.append("model produced no output")
        if m.n_non_finite > 0:
            reasons.append(f"{m.n_non_finite} of {m.n_outputs} outputs are not finite (NaN or infinite)")
        if max_latency_ms is not None:
            if m.latency_ms is None or not math.isfinite(m.latency_ms):
                reasons.append("latency was not measured")
            elif m.latency_ms > max_latency_ms:
                reasons.append(
                    f"per-window latency {m.latency_ms:.3g} ms exceeds the target's {max_latency_ms:g} ms"
                )
    return HealthDecision(not reasons, tuple(reasons), m)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


def session_options() -> ort.SessionOptions:
    """The onnxruntime options for a small model on a small device: least memory, one thread.

    No memory arena (it keeps a batch's peak for the life of the session), no memory
    pattern planning (it keeps buffers sized for the largest input seen), no pre-packed
    copies of the weights, one thread for the operators and one between them, and only
    onnxruntime's basic graph optimisations (bundles were optimised when packaged), with
    no optimised model written anywhere. Scores are unchanged (``tests/edge/test_health.py``).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.add_session_config_entry("session.disable_prepacking", "1")
    return options


def _provider(preferred: Sequence[str], available: Sequence[str]) -> str:
    for name in preferred:
        if name in available:
            return name
    return "CPUExecutionProvider"


def measure_health(
    bundle: Bundle,
    device_id: str,
    windows: np.ndarray | None = None,
    *,
    runs: int = 5,
    center: Sequence[float] | None = None,
    scale: Sequence[float] | None = None,
) -> HealthMeasurements:
    """Load and run a bundle's model on the device's recent windows; measure, do not judge.

    Args:
        bundle: the installed bundle (already verified by ``read_bundle``).
        device_id: whose calibration from the manifest to use.
        windows: recent raw canonical readings, shape ``(n, window_rows, n_sensors)``
            or one window ``(window_rows, n_sensors)``; ``None`` uses the calibration
            centre repeated (a healthy-looking window) when the device has no history yet.
        runs: timed runs of one window; the median is reported.
        center: the device's own reference centre (commissioned on the device),
            used instead of the manifest's calibration; give ``scale`` too.
        scale: the device's own reference spread.

    Returns:
        The measurements; errors are recorded in them, never raised.
    """
    manifest = bundle.manifest
    provider = _provider(manifest.target.execution_providers, ort.get_available_providers())
    cal = manifest.calibrations.get(device_id)
    if center is not None and scale is not None:
        ref_center, ref_scale = tuple(center), tuple(scale)
    elif cal is not None:
        ref_center, ref_scale = cal.center, cal.scale
    else:
        return HealthMeasurements(
            run_error=f"the bundle has no calibration for device {device_id!r}", provider=provider
        )
    rows, n_sensors = manifest.inputs.window_rows, len(manifest.inputs.sensors)
    if windows is None:
        windows = np.tile(np.asarray(ref_center, dtype=np.float64), (1, rows, 1))
    batch = np.asarray(windows, dtype=np.float64)
    if batch.ndim == 2:
        batch = batch[np.newaxis]
    if batch.shape[1:] != (rows, n_sensors) or batch.shape[0] < 1:
        return HealthMeasurements(
            run_error=f"recent windows have shape {batch.shape}, the manifest wants (n, {rows}, {n_sensors})",
            provider=provider,
        )
    options = session_options()
    try:
        session = ort.InferenceSession(str(bundle.model_path), sess_options=options, providers=[provider])
    except Exception as exc:  # onnxruntime raises its own untyped errors; record the reason
        return HealthMeasurements(load_error=_short(exc), provider=provider)
    dtype = np.float32 if manifest.inputs.dtype == "float32" else np.float64
    names = [i.name for i in session.get_inputs()]
    arrays = (batch, np.asarray(ref_center), np.asarray(ref_scale))
    try:
        feeds: dict[str, Any] = dict(zip(names, (a.astype(dtype) for a in arrays), strict=True))
        outputs = session.run(None, feeds)
        values = np.concatenate([np.asarray(o, dtype=np.float64).ravel() for o in outputs])
        one = {**feeds, names[0]: feeds[names[0]][-1:]}
        times = []
        for _ in range(max(1, runs)):
            t0 = time.perf_counter()
            session.run(None, one)
            times.append(time.perf_counter() - t0)
    except Exception as exc:  # wrong input names/shapes, a failing kernel: record the reason
        return HealthMeasurements(run_error=_short(exc), n_windows=batch.shape[0], provider=provider)
    return HealthMeasurements(
        n_windows=batch.shape[0],
        n_outputs=int(values.size),
        n_non_finite=int(np.count_nonzero(~np.isfinite(values))),
        latency_ms=statistics.median(times) * 1000.0,
        provider=provider,
    )
