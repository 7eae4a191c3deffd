"""PCA T²+Q (Hotelling's T² in the principal subspace plus the squared prediction error, SPE)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from onnx import helper, numpy_helper

from pumpops.errors import ConfigError
from pumpops.pipeline.detectors._base import Detector, OnnxCore, register_detector


@register_detector
class PcaT2Q(Detector):
    """PCA on window features; score ``T²/k + Q/mean(Q_train)``.

    Args:
        variance: fraction of the feature variance the kept components explain.
        eig_floor: variance floor of the model, in squared robust deviations
            of the raw readings: every kept component's variance, and the
            mean squared residual, count as at least this much (0: none). A
            short normal period in which a window-averaged feature barely
            moves would otherwise make any later drift of it an extreme T².
        **base: see :class:`~pumpops.pipeline.detectors.Detector`.

    >>> rng = np.random.default_rng(0)
    >>> X = np.column_stack([2.0 + 0.1 * rng.standard_normal(500), 230 + rng.standard_normal(500)])
    >>> det = PcaT2Q(sensors=["motor_current", "motor_voltage"], window=5).fit([X[:400]])
    >>> cal = det.calibrate(X[:400])
    >>> bad = X[400:].copy(); bad[50:, 0] += 1.0
    >>> scores = det.score(bad, cal)
    >>> bool(scores[:40].max() < scores[60:].min())
    True
    """

    kind = "pca_t2q"

    def __init__(self, *, variance: float = 0.9, eig_floor: float = 0.0, **base: Any) -> None:
        super().__init__(**base)
        if not 0.0 < variance <= 1.0:
            raise ConfigError(f"variance must be in (0, 1], got {variance}")
        if not 0.0 <= eig_floor < 1e6:
            raise ConfigError(f"eig_floor must be in [0, 1e6), got {eig_floor}")
        self.variance = float(variance)
        self.eig_floor = float(eig_floor)
        self._mean = np.zeros(0)
        self._t2 = np.zeros((0, 0))  # (S, k): components / sqrt(eigenvalue)
        self._resid = np.zeros((0, 0))  # (S, S): I - P Pᵀ
        self._q_scale = 1.0

    def _core_params(self) -> dict[str, Any]:
        return {"variance": self.variance, "eig_floor": self.eig_floor}

    def _fit_core(self, features: np.ndarray) -> None:
        mean = features.mean(axis=0)
        centered = features - mean
        cov = centered.T @ centered / max(features.shape[0] - 1, 1)
        eigval, eigvec = np.linalg.eigh(cov)
        order = np.argsort(eigval)[::-1]
        eigval, eigvec = np.maximum(eigval[order], 0.0), eigvec[:, order]
        signs = np.sign(eigvec[np.argmax(np.abs(eigvec), axis=0), np.arange(eigvec.shape[1])])
        eigvec = eigvec * np.where(signs == 0, 1.0, signs)
        total = eigval.sum()
        k = 1 if total <= 0 else int(np.searchsorted(np.cumsum(eigval) / total, self.variance - 1e-12) + 1)
        k = min(k, features.shape[1])
        floor = max(max(total, 1e-12) * 1e-6, self.eig_floor)
        comps = eigvec[:, :k]
        self._mean = mean
        self._t2 = comps / np.sqrt(np.maximum(eigval[:k], floor)) / np.sqrt(k)
        self._resid = np.eye(features.shape[1]) - comps @ comps.T
        q = ((centered @ self._resid) ** 2).sum(axis=1)
        q_floor = max(max(total, 1e-12) * 1e-6, self.eig_floor * max(features.shape[1] - k, 1))
        self._q_scale = 1.0 / max(float(q.mean()), q_floor)

    def _core_score(self, features: np.ndarray) -> np.ndarray:
        centered = features - self._mean
        t2 = ((centered @ self._t2) ** 2).sum(axis=1)
        q = ((centered @ self._resid) ** 2).sum(axis=1)
        return np.asarray(t2 + q * self._q_scale)

    def _core_onnx(self) -> OnnxCore:
        inits = [
            numpy_helper.from_array(self._mean, "pca_mean"),
            numpy_helper.from_array(self._t2, "pca_t2"),
            numpy_helper.from_array(self._resid, "pca_resid"),
            numpy_helper.from_array(np.array([self._q_scale]), "pca_q_scale"),
        ]
        nodes = [
            helper.make_node("Sub", ["features", "pca_mean"], ["pca_c"], name="pca_center"),
            helper.make_node("MatMul", ["pca_c", "pca_t2"], ["pca_p"], name="pca_project"),
            helper.make_node(
                "ReduceSumSquare", ["pca_p"], ["pca_t2v"], name="pca_t2sum", axes=[1], keepdims=0
            ),
            helper.make_node("MatMul", ["pca_c", "pca_resid"], ["pca_r"], name="pca_residual"),
            helper.make_node("ReduceSumSquare", ["pca_r"], ["pca_qv"], name="pca_qsum", axes=[1], keepdims=0),
            helper.make_node("Mul", ["pca_qv", "pca_q_scale"], ["pca_qn"], name="pca_qnorm"),
            helper.make_node("Add", ["pca_t2v", "pca_qn"], ["core_score"], name="pca_score"),
        ]
        return OnnxCore(nodes, inits)

    def _get_state(self) -> dict[str, np.ndarray]:
        return {
            "mean": self._mean,
            "t2": self._t2,
            "resid": self._resid,
            "q_scale": np.array([self._q_scale]),
        }

    def _set_state(self, state: Mapping[str, np.ndarray]) -> None:
        self._mean = np.asarray(state["mean"])
        self._t2 = np.asarray(state["t2"])
        self._resid = np.asarray(state["resid"])
        self._q_scale = float(state["q_scale"][0])
