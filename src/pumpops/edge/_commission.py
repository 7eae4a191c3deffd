"""Commissioning: a device computes its own calibration from a normal period of its readings.

On a new device, or after maintenance (``pumpops agent recalibrate``), the
agent collects rows with :class:`Commissioner` (reporting ``calibrating``
meanwhile), then :func:`commission` turns them into the calibration the
bundle's model needs: per-sensor ``center`` and ``scale``, decile
``quantiles`` (the drift reference) and the alarm ``threshold``. The result
has the keys of the bundle's ``BundleCalibration``, so the agent uses it in
place of the hub's. The model is run through a callable the agent passes in
(a closure over its onnxruntime session), so nothing here is model-specific.

May import: the standard library, numpy and ``pumpops.errors`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pumpops.errors import ConfigError, IncompatibleBundleError, InputError

__all__ = ["COMMISSION_BATCH_WINDOWS", "Commissioner", "commission"]

#: Windows scored per call of the model while commissioning (bounds memory: B x W x S floats, and
#: onnxruntime's intermediates of that size: 32 x 120 x 8 float64 is 240 kB; 512 kept ~40 MiB
#: resident in the agent after calibration, issue 16).
COMMISSION_BATCH_WINDOWS = 32

# Same definitions as the pipeline's robust_center_scale and calibrate
# (pumpops.pipeline.detectors._base), which the edge may not import; a test
# compares the two.
_QUANTILES = np.linspace(0.0, 1.0, 11)
_SCALE_FLOOR = 1e-6  # in units of each sensor's own magnitude

#: ``(windows (B, W, S), center (S,), scale (S,)) -> scores (B,)``: the bundle's model.
ScoreWindows = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _center_scale(rows: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-sensor median and IQR / 1.349 (the std if the IQR is 0), floored at 1e-6 of the magnitude."""
    center = np.median(rows, axis=0)
    q75, q25 = np.percentile(rows, [75.0, 25.0], axis=0)
    scale = (q75 - q25) / 1.349
    scale = np.where(scale > 0, scale, rows.std(axis=0))
    floor = np.maximum(np.abs(center), 1.0) * _SCALE_FLOOR
    return center.astype(np.float64), np.maximum(scale, floor).astype(np.float64)


def _typical_rows(z: NDArray[np.float64], trim_z: float) -> NDArray[np.bool_]:
    """Rows whose every value lies within ``trim_z`` robust deviations of its median (all if too few)."""
    if trim_z <= 0:
        return np.ones(z.shape[0], dtype=bool)
    med = np.median(z, axis=0)
    mad = np.median(np.abs(z - med), axis=0) * 1.4826
    keep = np.asarray((np.abs(z - med) / np.maximum(mad, 1e-9) <= trim_z).all(axis=1))
    return keep if keep.sum() >= max(10, z.shape[0] // 4) else np.ones_like(keep)


def commission(
    rows: ArrayLike,
    score_windows: ScoreWindows,
    *,
    window_rows: int,
    threshold_quantile: float,
    threshold_factor: float,
    trim_z: float = 0.0,
) -> dict[str, Any]:
    """Calibrate the installed model for this device from a normal period of its readings.

    What the pipeline's ``Detector.calibrate`` computes, on the device:

    - ``center``, ``scale``: per-sensor median and robust spread (IQR / 1.349;
      the standard deviation if the IQR is 0; floored at 1e-6 of the
      sensor's magnitude), as ``robust_center_scale``: identical.
    - ``quantiles``: per sensor the 11 deciles (minimum to maximum) of the
      rows, the drift reference: identical.
    - ``threshold``: ``threshold_factor`` times the ``threshold_quantile``
      quantile of the normal period's scores (``base``); when ``base <= 0``,
      ``base + |base| * (threshold_factor - 1)`` so a factor above 1 still
      raises it. The scores differ from the pipeline's in one way: the
      pipeline scores every row, padding the first ``window_rows - 1`` rows'
      windows with repeats of the first row (a warm-up); the device's model
      scores only full windows, so here the scores are those of the windows
      ending at rows ``window_rows - 1 ... n - 1`` (``n - window_rows + 1``
      scores, the warm-up rows left out). On those rows the two agree to
      float64 rounding; the threshold then differs only by the left-out
      warm-up scores and the quantile's sample size (a few percent on a few
      hundred rows, less on longer periods).
    - trimming (``trim_z > 0``): the pipeline leaves out of the threshold the
      rows whose *model features* lie beyond ``trim_z`` robust deviations
      (median / MAD) of their median; features are model-specific and not in
      the bundle, so here the same test is applied to the robust-scaled raw
      rows ``(x - center) / scale``, and a window is left out when its last
      row is. Raw rows are noisier than window-averaged features, so the same
      ``trim_z`` trims somewhat more here. As in the pipeline, if fewer than
      ``max(10, n // 4)`` rows would remain, nothing is trimmed.

    Windows are scored in batches of at most :data:`COMMISSION_BATCH_WINDOWS`
    (strided views, one contiguous copy per batch), so memory stays bounded
    on long periods.

    Args:
        rows: ``(n, S)`` canonical SI readings of normal operation, oldest
            first, sensors in the model's order, no missing values.
        score_windows: the model: ``(windows (B, W, S), center (S,), scale
            (S,)) -> scores (B,)``, float64.
        window_rows: rows per model window ``W`` (manifest ``inputs.window_rows``).
        threshold_quantile: quantile of the normal scores, in ``(0, 1]``.
        threshold_factor: factor on that quantile, ``> 0``.
        trim_z: robust deviations beyond which a row is left out of the
            threshold (0: keep all).

    Returns:
        ``{"center", "scale", "threshold", "quantiles", "n_rows", "extra"}``
        (JSON-able lists and floats), ``extra = {"score_quantile": base,
        "source": "device"}``.

    Raises:
        ConfigError: a parameter is out of range.
        InputError: ``rows`` has the wrong shape, a non-finite value, or fewer
            rows than one window ("need N rows").
        IncompatibleBundleError: the model returned scores of the wrong shape
            or non-finite scores on normal data.

    >>> rows = np.column_stack([np.arange(10.0), np.full(10, 5.0)])
    >>> mean_z = lambda w, c, s: ((w - c) / s).mean(axis=(1, 2))
    >>> cal = commission(rows, mean_z, window_rows=3, threshold_quantile=1.0, threshold_factor=2.0)
    >>> cal["center"], cal["n_rows"], cal["extra"]["source"]
    ([4.5, 5.0], 10, 'device')
    >>> round(cal["threshold"], 4)  # 2 x the last window's mean z: (8 - 4.5) / 3.3358 and 0, averaged
    1.0492
    """
    if window_rows < 1:
        raise ConfigError(f"window_rows must be >= 1, got {window_rows}")
    if not 0.0 < threshold_quantile <= 1.0:
        raise ConfigError(f"threshold_quantile must be in (0, 1], got {threshold_quantile}")
    if not threshold_factor > 0.0:
        raise ConfigError(f"threshold_factor must be > 0, got {threshold_factor}")
    if not trim_z >= 0.0:
        raise ConfigError(f"trim_z must be >= 0, got {trim_z}")
    x = np.asarray(rows, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise InputError(f"commissioning rows must have shape (rows, sensors), got {x.shape}")
    need = max(window_rows, 2)
    if x.shape[0] < need:
        raise InputError(
            f"commissioning has {x.shape[0]} rows, need {need} rows at least (one model window of "
            f"{window_rows}); collect a longer normal period"
        )
    finite = np.isfinite(x)
    if not finite.all():
        r, c = np.argwhere(~finite)[0]
        raise InputError(f"commissioning rows have a non-finite value at row {r}, sensor index {c}")
    n = x.shape[0]
    center, scale = _center_scale(x)
    quantiles = np.quantile(x, _QUANTILES, axis=0).T
    # (n - W + 1, S, W) strided view: the window ending at each row from W - 1 on.
    view = np.lib.stride_tricks.sliding_window_view(x, window_rows, axis=0)
    scores = np.empty(view.shape[0], dtype=np.float64)
    for start in range(0, view.shape[0], COMMISSION_BATCH_WINDOWS):
        batch = np.ascontiguousarray(view[start : start + COMMISSION_BATCH_WINDOWS].transpose(0, 2, 1))
        got = np.asarray(score_windows(batch, center.copy(), scale.copy()), dtype=np.float64)
        if got.shape != (batch.shape[0],):
            raise IncompatibleBundleError(
                f"the model returned scores of shape {got.shape} for {batch.shape[0]} windows, "
                f"expected ({batch.shape[0]},)"
            )
        scores[start : start + batch.shape[0]] = got
    bad = int((~np.isfinite(scores)).sum())
    if bad:
        raise IncompatibleBundleError(
            f"the model returned {bad} non-finite scores on {scores.size} normal windows: "
            "it cannot be calibrated on this device"
        )
    typical = _typical_rows((x - center) / scale, trim_z)[window_rows - 1 :]
    base = float(np.quantile(scores[typical], threshold_quantile))
    threshold = base * threshold_factor if base > 0 else base + abs(base) * (threshold_factor - 1)
    return {
        "center": [float(v) for v in center],
        "scale": [float(v) for v in scale],
        "threshold": float(threshold),
        "quantiles": [[float(v) for v in sensor] for sensor in quantiles],
        "n_rows": int(n),
        "extra": {"score_quantile": base, "source": "device"},
    }


class Commissioner:
    """Collects the normal period a device calibrates on, skipping rows with missing values.

    Args:
        n_sensors: sensors per row (the model's order).
        rows_needed: rows to collect (the agent's setting; at least one model window).

    Raises:
        ConfigError: ``n_sensors`` or ``rows_needed`` below 1.

    >>> c = Commissioner(n_sensors=2, rows_needed=3)
    >>> [c.add(r) for r in ([1.0, 2.0], [float("nan"), 2.0], [3.0, 4.0])]
    [True, False, True]
    >>> c.progress, c.done, c.skipped
    ((2, 3), False, 1)
    """

    def __init__(self, n_sensors: int, rows_needed: int) -> None:
        if n_sensors < 1 or rows_needed < 1:
            raise ConfigError(
                f"commissioning needs at least one sensor and one row, got n_sensors={n_sensors}, "
                f"rows_needed={rows_needed}"
            )
        self.n_sensors = int(n_sensors)
        self.rows_needed = int(rows_needed)
        self._rows: NDArray[np.float64] = np.empty((self.rows_needed, self.n_sensors), dtype=np.float64)
        self._have = 0
        self._skipped = 0

    def add(self, row: ArrayLike) -> bool:
        """Collect one row; a row with a NaN or infinite value is skipped and counted.

        Rows after :attr:`done` are ignored.

        Args:
            row: ``(n_sensors,)`` canonical SI readings.

        Returns:
            Whether the row was kept.

        Raises:
            InputError: the row has the wrong shape or is not numeric.
        """
        try:
            values = np.asarray(row, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"a reading row must be numeric: {exc}") from exc
        if values.shape != (self.n_sensors,):
            raise InputError(f"a reading row must have shape ({self.n_sensors},), got {values.shape}")
        if self.done:
            return False
        if not np.isfinite(values).all():
            self._skipped += 1
            return False
        self._rows[self._have] = values
        self._have += 1
        return True

    @property
    def progress(self) -> tuple[int, int]:
        """``(rows collected, rows needed)``."""
        return self._have, self.rows_needed

    @property
    def done(self) -> bool:
        """Whether enough rows have been collected."""
        return self._have >= self.rows_needed

    @property
    def skipped(self) -> int:
        """Rows skipped because a value was missing (NaN or infinite)."""
        return self._skipped

    def rows(self) -> NDArray[np.float64]:
        """The rows collected so far, oldest first, as a new ``(have, n_sensors)`` array."""
        return self._rows[: self._have].copy()

    def reset(self) -> None:
        """Start over (``pumpops agent recalibrate``)."""
        self._have = 0
        self._skipped = 0
