# ruff: noqa: N803, N806 - X (rows x sensors), W, S, P follow the notation of the docstrings
"""The detector interface: windowed features, a model core, a calibrated threshold and alarm smoothing.

Every detector is the same pipeline around a small model-specific core:

1. per-device robust scaling ``z = (x - center) / scale`` (``center``/``scale``
   come from the device's own normal period: :class:`Calibration`);
2. causal window features per sensor: the mean of the last ``window`` rows,
   minus (for the ``detrend`` sensors, by default the temperatures) the mean of
   the last ``baseline_window`` rows, so slow drift does not look like a fault;
3. the core (PCA T²+Q, Isolation Forest, autoencoder, ...) maps one feature
   row to a score;
4. the score is averaged over the last ``score_window`` positions.

Row ``i``'s score uses rows ``<= i`` only. Before a device has a full window
its first reading is repeated (``padding: repeat_first`` in the manifest).

The ONNX contract (opset 17, float64): input ``window`` of shape
``(B, W, S)`` — raw canonical readings, oldest first, ``W =``
:attr:`Detector.input_length`, ``S`` sensors in :attr:`Detector.sensors` order
— plus ``center`` and ``scale`` of shape ``(S,)`` from the device's
calibration; output ``score`` of shape ``(B,)``. The threshold (from the
calibration) and the alarm rule (``k``-of-``n``, hysteresis, off-delay: see
:func:`smooth_alarms`) are declared in :meth:`Detector.manifest` and applied by
the agent, so they travel with the model rather than living in the caller.

This module holds the base class; the shared numerics and ONNX names are in
``_numerics.py``, :class:`Calibration` in ``_calibration.py``, the graph
wrapper and manifest in ``_graph.py``, the registry of kinds in ``_registry.py``.

May import: ``pumpops.schema``, ``pumpops.errors``, numpy, scikit-learn,
skl2onnx, onnx, onnxruntime. Never the store or MLflow.
"""

from __future__ import annotations

import abc
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from pumpops.errors import ConfigError, InputError, IntegrityError
from pumpops.pipeline.detectors._calibration import Calibration, OnnxCore
from pumpops.pipeline.detectors._graph import detector_manifest, feature_matrices, scoring_graph
from pumpops.pipeline.detectors._numerics import (
    _FORMAT,
    _QUANTILES,
    INPUT_CENTER,
    INPUT_SCALE,
    INPUT_WINDOW,
    ONNX_OPSET,
    OUTPUT_SCORE,
    input_windows,
    k_of_n,
    robust_center_scale,
    scale_floor_vector,
    sensor_windows,
    smooth_alarms,
    trailing_mean,
    typical_rows,
)
from pumpops.pipeline.detectors._registry import DETECTORS, build_detector, register_detector
from pumpops.schema import CANONICAL_SENSORS

__all__ = [
    "DETECTORS",
    "INPUT_CENTER",
    "INPUT_SCALE",
    "INPUT_WINDOW",
    "ONNX_OPSET",
    "OUTPUT_SCORE",
    "Calibration",
    "Detector",
    "OnnxCore",
    "build_detector",
    "k_of_n",
    "register_detector",
    "robust_center_scale",
    "smooth_alarms",
]


def _default_detrend(sensors: Sequence[str]) -> tuple[str, ...]:
    return tuple(s for s in sensors if s.endswith("_temperature"))


class Detector(abc.ABC):
    """A trained anomaly detector over a fixed list of canonical sensors.

    Subclasses implement :meth:`_fit_core`, :meth:`_core_score`,
    :meth:`_core_onnx`, :meth:`_get_state` and :meth:`_set_state`; the base
    class owns input checks, features, calibration, thresholds, smoothing,
    the ONNX wrapper, the manifest and persistence.

    Args:
        sensors: canonical sensor names, in the column order of every array.
        seed: random seed of anything random in fitting.
        window: rows averaged into each feature (input smoothing).
        baseline_window: rows of the slow baseline subtracted from the
            ``detrend`` sensors' features (0: no detrending).
        detrend: sensors whose features are differences from the slow
            baseline (default: every ``*_temperature`` sensor).
        detrend_weight: factor on the ``detrend`` sensors' features (below 1:
            slow channels, whose short-term swings are mostly benign, count less).
        score_window: positions the per-position score is averaged over.
        threshold_quantile: quantile of the normal period's scores ...
        threshold_factor: ... multiplied by this factor gives the threshold.
        alarm_k: rows above threshold needed ...
        alarm_n: ... among the last ``alarm_n`` rows to raise an alarm.
        alarm_release: hysteresis: a raised alarm stays on while the score is
            above ``alarm_release * threshold`` (1: no hysteresis).
        alarm_hold: off-delay in rows: an ending alarm stays on this much longer.
        trim_z: leave out of fitting and of the threshold the normal rows with a
            feature beyond ``trim_z`` robust deviations (0: keep all rows).
        scale_floor: variance floor inside the model: each sensor's scale is
            at least ``scale_floor * |center|`` (0: none), so a sensor that
            barely moved in a short normal period (a quantised flow, a fluid
            temperature steady to 0.01 K) cannot dominate the score later. It
            is applied to the ``center``/``scale`` inputs in the ONNX graph,
            so a device's calibration stays the plain median / IQR.
        scale_floors: per sensor kind, a floor replacing ``scale_floor``: the
            first key found in a sensor's name (``{"vibration": 0.03}``).
        score_offset: a constant added to every score (in the graph too): the
            threshold (``factor`` x a quantile of normal scores) then has an
            absolute part, ``core > factor * q + (factor - 1) * offset`` (0: none).
        change_weight: multi-scale features: each sensor also gets a change
            feature ``change_weight * (fast mean - slow baseline)`` beside its
            level (needs ``baseline_window``; 0: level features only).
        window_by_kind: per sensor kind, its own ``window`` (the first key found
            in a sensor's name, ``{"flow": 60}``): a quantised or noisy channel
            averaged longer shows a small level shift the short window hides.
    """

    kind: ClassVar[str]

    def __init__(
        self,
        *,
        sensors: Sequence[str],
        seed: int = 0,
        window: int = 30,
        baseline_window: int = 0,
        detrend: Sequence[str] | None = None,
        detrend_weight: float = 1.0,
        score_window: int = 1,
        threshold_quantile: float = 0.99,
        threshold_factor: float = 1.0,
        alarm_k: int = 1,
        alarm_n: int = 1,
        alarm_release: float = 1.0,
        alarm_hold: int = 0,
        trim_z: float = 0.0,
        scale_floor: float = 0.0,
        scale_floors: Mapping[str, float] | None = None,
        score_offset: float = 0.0,
        change_weight: float = 0.0,
        window_by_kind: Mapping[str, int] | None = None,
    ) -> None:
        sensors = tuple(sensors)
        unknown = [s for s in sensors if s not in CANONICAL_SENSORS]
        if not sensors or unknown or len(set(sensors)) != len(sensors):
            raise ConfigError(
                f"sensors must be distinct canonical sensors, got {list(sensors)}; "
                f"known: {', '.join(CANONICAL_SENSORS)}"
            )
        detrend_t = _default_detrend(sensors) if detrend is None else tuple(detrend)
        if any(s not in sensors for s in detrend_t):
            raise ConfigError(f"detrend sensors {list(detrend_t)} must be among {list(sensors)}")
        checks = {
            "window": window >= 1,
            "baseline_window": baseline_window == 0 or baseline_window > window,
            "score_window": score_window >= 1,
            "detrend_weight": detrend_weight > 0.0,
            "threshold_quantile": 0.0 < threshold_quantile <= 1.0,
            "threshold_factor": threshold_factor > 0.0,
            "alarm_n": 1 <= alarm_k <= alarm_n,
            "alarm_release": 0.0 < alarm_release <= 1.0,
            "alarm_hold": alarm_hold >= 0,
            "trim_z": trim_z >= 0.0,
            "scale_floor": all(0.0 <= f < 1.0 for f in [scale_floor, *(scale_floors or {}).values()]),
            "score_offset": 0.0 <= score_offset < 1e9,
            "change_weight": change_weight == 0.0 or (0.0 < change_weight < 1e6 and baseline_window > 0),
            "window_by_kind": all(int(w) >= 1 for w in (window_by_kind or {}).values()),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"invalid hyper-parameter(s) {bad} for detector {self.kind!r}")
        self.sensors: tuple[str, ...] = sensors
        self.seed = int(seed)
        self.window = int(window)
        self.baseline_window = int(baseline_window)
        self.detrend: tuple[str, ...] = detrend_t
        self.detrend_weight = float(detrend_weight)
        self.score_window = int(score_window)
        self.threshold_quantile = float(threshold_quantile)
        self.threshold_factor = float(threshold_factor)
        self.alarm_k = int(alarm_k)
        self.alarm_n = int(alarm_n)
        self.alarm_release = float(alarm_release)
        self.alarm_hold = int(alarm_hold)
        self.trim_z = float(trim_z)
        self.scale_floor = float(scale_floor)
        self.scale_floors = {str(k): float(v) for k, v in sorted((scale_floors or {}).items())}
        self.score_offset = float(score_offset)
        self.change_weight = float(change_weight)
        self.window_by_kind = {str(k): int(v) for k, v in sorted((window_by_kind or {}).items())}
        self._fitted = False

    # ----------------------------------------------------------------- subclass hooks

    @abc.abstractmethod
    def _fit_core(self, features: np.ndarray) -> None:
        """Fit the core on feature rows ``(N, S)`` of normal data."""

    @abc.abstractmethod
    def _core_score(self, features: np.ndarray) -> np.ndarray:
        """Score feature rows ``(N, S)`` -> ``(N,)`` float64 (higher is more anomalous)."""

    @abc.abstractmethod
    def _core_onnx(self) -> OnnxCore:
        """ONNX nodes computing ``core_score`` from ``features`` (see :class:`OnnxCore`)."""

    @abc.abstractmethod
    def _get_state(self) -> dict[str, np.ndarray]:
        """Fitted state as named arrays (saved in ``state.npz``)."""

    @abc.abstractmethod
    def _set_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore what :meth:`_get_state` returned."""

    def _core_params(self) -> dict[str, Any]:
        """Hyper-parameters of the core (JSON-able); subclasses extend."""
        return {}

    # ----------------------------------------------------------------- shape of the input

    @property
    def n_sensors(self) -> int:
        """Number of sensors ``S``."""
        return len(self.sensors)

    @property
    def n_features(self) -> int:
        """Features per row the core sees: ``S``, or ``2 S`` with change features."""
        return self.n_sensors * (2 if self.change_weight > 0 else 1)

    @property
    def feature_span(self) -> int:
        """Rows one feature row looks back over (itself included)."""
        return max(int(self._windows().max()), self.baseline_window)

    @property
    def input_length(self) -> int:
        """Rows ``W`` of the ONNX input window."""
        return self.feature_span + self.score_window - 1

    def params(self) -> dict[str, Any]:
        """The hyper-parameters, JSON-able, enough to rebuild an unfitted detector."""
        return {
            "kind": self.kind,
            "sensors": list(self.sensors),
            "seed": self.seed,
            "window": self.window,
            "baseline_window": self.baseline_window,
            "detrend": list(self.detrend),
            "detrend_weight": self.detrend_weight,
            "score_window": self.score_window,
            "threshold_quantile": self.threshold_quantile,
            "threshold_factor": self.threshold_factor,
            "alarm_k": self.alarm_k,
            "alarm_n": self.alarm_n,
            "alarm_release": self.alarm_release,
            "alarm_hold": self.alarm_hold,
            "trim_z": self.trim_z,
            "scale_floor": self.scale_floor,
            "scale_floors": dict(self.scale_floors),
            "score_offset": self.score_offset,
            "change_weight": self.change_weight,
            "window_by_kind": dict(self.window_by_kind),
            **self._core_params(),
        }

    def _check(self, X: np.ndarray, what: str, min_rows: int = 1) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_sensors:
            raise InputError(
                f"{what} must have shape (rows, {self.n_sensors}) for sensors {list(self.sensors)}, "
                f"got {X.shape}"
            )
        if X.shape[0] < min_rows:
            raise InputError(f"{what} needs at least {min_rows} rows, got {X.shape[0]}")
        if not np.issubdtype(X.dtype, np.number):
            raise InputError(f"{what} must be numeric, got dtype {X.dtype}")
        X = X.astype(np.float64, copy=False)
        finite = np.isfinite(X)
        if not finite.all():
            r, c = np.argwhere(~finite)[0]
            raise InputError(f"{what} has a non-finite value at row {r}, sensor {self.sensors[c]!r}")
        for j, name in enumerate(self.sensors):
            spec = CANONICAL_SENSORS[name]
            lo, hi = float(X[:, j].min()), float(X[:, j].max())
            # Half the bound again as slack: real sensors overshoot (SKAB's gauge
            # pressure reads -1.26 bar), a wrong unit misses by a factor.
            if lo < spec.minimum - 0.5 * abs(spec.minimum) or hi > spec.maximum + 0.5 * abs(spec.maximum):
                raise InputError(
                    f"{what}: sensor {name!r} ranges {lo:g}..{hi:g}, outside the physical bounds "
                    f"{spec.minimum:g}..{spec.maximum:g} {spec.unit}: readings must be in canonical "
                    f"SI units ({spec.unit})"
                )
        return X

    def _check_sensors(self, sensors: Sequence[str] | None, units: Sequence[str] | None) -> None:
        if sensors is not None and tuple(sensors) != self.sensors:
            raise InputError(f"input sensors {list(sensors)} do not match the model's {list(self.sensors)}")
        if units is not None:
            want = [CANONICAL_SENSORS[s].unit for s in self.sensors]
            if list(units) != want:
                raise InputError(f"input units {list(units)} are not the canonical units {want}")

    def _check_calibration(self, calibration: Calibration) -> None:
        if tuple(calibration.sensors) != self.sensors:
            raise InputError(
                f"calibration is for sensors {list(calibration.sensors)}, the model for {list(self.sensors)}"
            )

    def _require_fitted(self) -> None:
        if not self._fitted:
            raise ConfigError(f"detector {self.kind!r} is not fitted: call fit() or load()")

    # ----------------------------------------------------------------- features

    def _windows(self) -> np.ndarray:
        """Each sensor's fast window: ``window_by_kind``'s first key in its name, else ``window``."""
        return sensor_windows(self.sensors, self.window, self.window_by_kind)

    def _detrend_mask(self) -> np.ndarray:
        return np.array([1.0 if s in self.detrend else 0.0 for s in self.sensors])

    def _feature_weights(self) -> np.ndarray:
        return np.array([self.detrend_weight if s in self.detrend else 1.0 for s in self.sensors])

    def _floored(self, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """The scale the model divides by: ``max(scale, floor * |center|)``, ``floor`` per sensor."""
        rel = scale_floor_vector(self.sensors, self.scale_floor, self.scale_floors)
        return scale if not rel.any() else np.asarray(np.maximum(scale, np.abs(center) * rel))

    def _features(self, X: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Feature row for every row of ``X`` (causal, first row repeated before the start)."""
        Z = (X - center) / self._floored(center, scale)
        pad = np.repeat(Z[:1], self.feature_span - 1, axis=0)
        Zp = np.concatenate([pad, Z])
        cs = np.concatenate([np.zeros((1, Z.shape[1])), np.cumsum(Zp, axis=0)])
        n = Z.shape[0]
        end = np.arange(self.feature_span, self.feature_span + n)
        wins = self._windows()
        cols = np.arange(Z.shape[1])
        fast = (cs[end] - cs[end[:, None] - wins, cols]) / wins
        if self.baseline_window == 0:
            return np.asarray(fast * self._feature_weights())
        slow = (cs[end] - cs[end - self.baseline_window]) / self.baseline_window
        level = (fast - slow * self._detrend_mask()) * self._feature_weights()
        if self.change_weight > 0:
            return np.concatenate([level, (fast - slow) * self.change_weight], axis=1)
        return np.asarray(level)

    def _typical(self, features: np.ndarray) -> np.ndarray:
        """Rows whose every feature lies within ``trim_z`` robust deviations of its median.

        A "normal" period often still holds the tail of an earlier event; with
        ``trim_z > 0`` such rows neither shape the model nor raise the threshold.
        """
        return typical_rows(features, self.trim_z)

    def _smooth_scores(self, per_row: np.ndarray) -> np.ndarray:
        return trailing_mean(per_row, self.score_window) + self.score_offset

    # ----------------------------------------------------------------- public API

    def fit(self, segments: Sequence[np.ndarray]) -> Self:
        """Fit on normal data.

        Args:
            segments: one ``(n_i, S)`` float64 array per device or recording,
                canonical SI units, time-ordered, normal operation only. Each
                segment is scaled by its own robust statistics.

        Returns:
            self, fitted.

        Raises:
            InputError: a segment has the wrong shape, non-finite values or
                values outside physical bounds.
        """
        if isinstance(segments, np.ndarray):
            segments = [segments]
        if not segments:
            raise InputError("fit needs at least one segment of normal data")
        feats = []
        for i, raw in enumerate(segments):
            seg = self._check(raw, f"segment {i}", min_rows=2)
            center, scale = robust_center_scale(seg)
            f = self._features(seg, center, scale)
            feats.append(f[self._typical(f)])
        self._fit_core(np.concatenate(feats))
        self._fitted = True
        return self

    def calibrate(self, normal: np.ndarray) -> Calibration:
        """Compute a device's reference statistics and threshold from its normal period.

        The threshold is ``threshold_factor`` times the ``threshold_quantile``
        quantile of the scores over ``normal``.

        Raises:
            InputError: ``normal`` has the wrong shape or bad values.
        """
        self._require_fitted()
        normal = self._check(normal, "normal period", min_rows=2)
        center, scale = robust_center_scale(normal)
        provisional = Calibration(
            sensors=self.sensors,
            center=center,
            scale=scale,
            threshold=np.inf,
            quantiles=np.quantile(normal, _QUANTILES, axis=0).T.copy(),
            n_rows=int(normal.shape[0]),
        )
        scores = self._score_checked(normal, provisional)
        typical = self._typical(self._features(normal, center, scale))
        base = float(np.quantile(scores[typical], self.threshold_quantile))
        threshold = (
            base * self.threshold_factor if base > 0 else base + abs(base) * (self.threshold_factor - 1)
        )
        return Calibration(
            sensors=self.sensors,
            center=center,
            scale=scale,
            threshold=float(threshold),
            quantiles=provisional.quantiles,
            n_rows=provisional.n_rows,
            extra={"score_quantile": base},
        )

    def _score_checked(self, X: np.ndarray, calibration: Calibration) -> np.ndarray:
        feats = self._features(X, calibration.center, calibration.scale)
        per_row = np.asarray(self._core_score(feats), dtype=np.float64)
        return self._smooth_scores(per_row)

    def score(
        self,
        X: np.ndarray,
        calibration: Calibration,
        *,
        sensors: Sequence[str] | None = None,
        units: Sequence[str] | None = None,
    ) -> np.ndarray:
        """Anomaly score of every row of ``X`` (causal: row ``i`` uses rows ``<= i``).

        Args:
            X: ``(n, S)`` readings in canonical SI units, time-ordered.
            calibration: the device's calibration.
            sensors: if given, the names of ``X``'s columns, checked against the model's.
            units: if given, the units of ``X``'s columns, checked against canonical units.

        Returns:
            ``(n,)`` float64, higher is more anomalous.

        Raises:
            InputError: wrong sensors, units, shape, non-finite or out-of-bounds values.
        """
        self._require_fitted()
        self._check_sensors(sensors, units)
        self._check_calibration(calibration)
        return self._score_checked(self._check(X, "input"), calibration)

    def alarms(
        self,
        X: np.ndarray,
        calibration: Calibration,
        *,
        sensors: Sequence[str] | None = None,
        units: Sequence[str] | None = None,
    ) -> np.ndarray:
        """Boolean alarm per row: score above threshold, smoothed ``alarm_k``-of-``alarm_n``."""
        scores = self.score(X, calibration, sensors=sensors, units=units)
        return self.alarms_from_scores(scores, calibration)

    def alarms_from_scores(
        self, scores: np.ndarray, calibration: Calibration, *, hold: bool = True
    ) -> np.ndarray:
        """Apply the threshold and the stored alarm rule to scores from :meth:`score` or ONNX.

        Args:
            scores: ``(n,)`` scores.
            calibration: the device's calibration (its threshold).
            hold: apply the off-delay. Without it the result is the detector's
                own estimate of the abnormal state, whose edges are its
                changepoints; the off-delay is an alarm-handling convention.
        """
        return smooth_alarms(
            np.asarray(scores),
            calibration.threshold,
            self.alarm_k,
            self.alarm_n,
            release=self.alarm_release,
            hold=self.alarm_hold if hold else 0,
        )

    def score_windows(self, windows: np.ndarray, calibration: Calibration) -> np.ndarray:
        """Score ``(B, W, S)`` windows exactly as the ONNX graph does, in numpy / scikit-learn.

        The reference the exported model is timed and checked against; for
        whole recordings :meth:`score` is cheaper (it shares work between rows).
        """
        self._require_fitted()
        self._check_calibration(calibration)
        windows = np.asarray(windows, dtype=np.float64)
        if windows.ndim != 3 or windows.shape[1:] != (self.input_length, self.n_sensors):
            raise InputError(
                f"windows must have shape (batch, {self.input_length}, {self.n_sensors}), got {windows.shape}"
            )
        fast, slow = self._feature_matrices()
        scale = self._floored(calibration.center, calibration.scale)
        zt = ((windows - calibration.center) / scale).transpose(0, 2, 1)  # (B, S, W)
        fast_mean = zt @ fast if fast.ndim == 2 else np.einsum("bsw,swp->bsp", zt, fast)
        feats = fast_mean
        if self.baseline_window:
            slow_mean = zt @ slow
            feats = feats - slow_mean * self._detrend_mask()[:, None]
        feats = feats * self._feature_weights()[:, None]
        if self.change_weight > 0:
            feats = np.concatenate([feats, (fast_mean - slow_mean) * self.change_weight], axis=1)
        rows = feats.transpose(0, 2, 1).reshape(-1, self.n_features)
        per = np.asarray(self._core_score(rows), dtype=np.float64).reshape(-1, self.score_window)
        return np.asarray(per.mean(axis=1) + self.score_offset)

    def windows(self, X: np.ndarray) -> np.ndarray:
        """The ONNX input for every row of ``X``: ``(n, W, S)`` windows, first row repeated before start."""
        return input_windows(X, self.input_length)

    # ----------------------------------------------------------------- ONNX

    def _feature_matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W, P)`` averaging matrices: fast mean and slow baseline at the last ``P`` positions."""
        return feature_matrices(self)

    def to_onnx(self) -> bytes:
        """The scoring graph as deterministic ONNX bytes (same fit, same bytes)."""
        self._require_fitted()
        return scoring_graph(self)

    def manifest(self) -> dict[str, Any]:
        """What the edge agent needs to run the model without model-specific code."""
        return detector_manifest(self)

    # ----------------------------------------------------------------- persistence

    def save(self, folder: str | Path) -> None:
        """Write ``detector.json``, ``state.npz`` and ``model.onnx`` into ``folder``."""
        self._require_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = self._get_state()
        state_path = folder / "state.npz"
        with state_path.open("wb") as fh:
            np.savez(fh, **{k: state[k] for k in sorted(state)})  # type: ignore[arg-type]
        digest = hashlib.sha256(state_path.read_bytes()).hexdigest()
        meta = {"format": _FORMAT, "params": self.params(), "state_sha256": digest}
        (folder / "detector.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        (folder / "model.onnx").write_bytes(self.to_onnx())

    @classmethod
    def load(cls, folder: str | Path) -> Detector:
        """Read a detector written by :meth:`save` (any kind when called on :class:`Detector`).

        Raises:
            ConfigError: the files are missing or name an unknown kind.
            IntegrityError: ``state.npz`` does not match its recorded hash.
        """
        folder = Path(folder)
        try:
            meta = json.loads((folder / "detector.json").read_text())
            raw = (folder / "state.npz").read_bytes()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read a detector from {folder}: {exc}") from exc
        if hashlib.sha256(raw).hexdigest() != meta.get("state_sha256"):
            raise IntegrityError(f"{folder / 'state.npz'} does not match its recorded SHA-256")
        params = dict(meta["params"])
        kind = params.pop("kind")
        detector = build_detector(kind, **params)
        if cls is not Detector and not isinstance(detector, cls):
            raise ConfigError(f"{folder} holds a {kind!r} detector, not {cls.kind!r}")
        with np.load(folder / "state.npz", allow_pickle=False) as npz:
            detector._set_state({k: npz[k] for k in npz.files})
        detector._fitted = True
        return detector
