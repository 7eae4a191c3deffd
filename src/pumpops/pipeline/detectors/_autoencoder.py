"""An MLP autoencoder (scikit-learn MLPRegressor trained to reconstruct its input), exported by hand."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from onnx import helper, numpy_helper
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor

from pumpops.errors import ConfigError
from pumpops.pipeline.detectors._base import Detector, OnnxCore, register_detector


@register_detector
class MlpAutoencoder(Detector):
    """MLP autoencoder on window features; score = mean squared reconstruction error.

    The features are standardised with the training features' mean and
    standard deviation before the network (baked into the graph).

    Args:
        hidden: sizes of the hidden layers (the middle one is the bottleneck).
        max_iter: training epochs (L-BFGS iterations).
        alpha: L2 penalty.
        **base: see :class:`~pumpops.pipeline.detectors.Detector`.

    >>> rng = np.random.default_rng(0)
    >>> X = np.column_stack([2.0 + 0.1 * rng.standard_normal(500), 230 + rng.standard_normal(500)])
    >>> det = MlpAutoencoder(sensors=["motor_current", "motor_voltage"], window=5, hidden=[4, 1, 4])
    >>> cal = det.fit([X[:400]]).calibrate(X[:400])
    >>> bad = X[400:].copy(); bad[50:, 0] += 1.0
    >>> scores = det.score(bad, cal)
    >>> bool(scores[:40].max() < scores[60:].min())
    True
    """

    kind = "mlp_autoencoder"

    def __init__(
        self,
        *,
        hidden: list[int] | tuple[int, ...] = (8, 3, 8),
        max_iter: int = 300,
        alpha: float = 1e-3,
        **base: Any,
    ) -> None:
        super().__init__(**base)
        hidden_t = tuple(int(h) for h in hidden)
        if not hidden_t or min(hidden_t) < 1 or max_iter < 1 or alpha < 0:
            raise ConfigError("hidden must be positive layer sizes, max_iter >= 1, alpha >= 0")
        self.hidden = hidden_t
        self.max_iter = int(max_iter)
        self.alpha = float(alpha)
        self._mu = np.zeros(0)
        self._sd = np.ones(0)
        self._weights: list[np.ndarray] = []
        self._biases: list[np.ndarray] = []

    def _core_params(self) -> dict[str, Any]:
        return {"hidden": list(self.hidden), "max_iter": self.max_iter, "alpha": self.alpha}

    def _fit_core(self, features: np.ndarray) -> None:
        self._mu = features.mean(axis=0)
        self._sd = np.maximum(features.std(axis=0), 1e-6)
        z = (features - self._mu) / self._sd
        net = MLPRegressor(
            hidden_layer_sizes=self.hidden,
            activation="tanh",
            solver="lbfgs",
            alpha=self.alpha,
            max_iter=self.max_iter,
            random_state=self.seed,
        )
        with warnings.catch_warnings():
            # A reconstruction model need not converge to be useful; the
            # threshold is calibrated on its actual errors.
            warnings.simplefilter("ignore", ConvergenceWarning)
            net.fit(z, z)
        self._weights = [np.asarray(w, dtype=np.float64) for w in net.coefs_]
        self._biases = [np.asarray(b, dtype=np.float64) for b in net.intercepts_]

    def _core_score(self, features: np.ndarray) -> np.ndarray:
        z = (features - self._mu) / self._sd
        h = z
        last = len(self._weights) - 1
        for i, (w, b) in enumerate(zip(self._weights, self._biases, strict=True)):
            h = h @ w + b
            if i < last:
                h = np.tanh(h)
        return np.asarray(((h - z) ** 2).mean(axis=1))

    def _core_onnx(self) -> OnnxCore:
        inits = [numpy_helper.from_array(self._mu, "ae_mu"), numpy_helper.from_array(self._sd, "ae_sd")]
        nodes = [
            helper.make_node("Sub", ["features", "ae_mu"], ["ae_c"], name="ae_center"),
            helper.make_node("Div", ["ae_c", "ae_sd"], ["ae_z"], name="ae_standardise"),
        ]
        h = "ae_z"
        last = len(self._weights) - 1
        for i, (w, b) in enumerate(zip(self._weights, self._biases, strict=True)):
            inits += [numpy_helper.from_array(w, f"ae_w{i}"), numpy_helper.from_array(b, f"ae_b{i}")]
            nodes += [
                helper.make_node("MatMul", [h, f"ae_w{i}"], [f"ae_mm{i}"], name=f"ae_matmul{i}"),
                helper.make_node("Add", [f"ae_mm{i}", f"ae_b{i}"], [f"ae_lin{i}"], name=f"ae_bias{i}"),
            ]
            h = f"ae_lin{i}"
            if i < last:
                nodes.append(helper.make_node("Tanh", [h], [f"ae_act{i}"], name=f"ae_tanh{i}"))
                h = f"ae_act{i}"
        nodes += [
            helper.make_node("Sub", [h, "ae_z"], ["ae_err"], name="ae_error"),
            helper.make_node("Mul", ["ae_err", "ae_err"], ["ae_sq"], name="ae_square"),
            helper.make_node("ReduceMean", ["ae_sq"], ["core_score"], name="ae_mse", axes=[1], keepdims=0),
        ]
        return OnnxCore(nodes, inits)

    def _get_state(self) -> dict[str, np.ndarray]:
        state = {"mu": self._mu, "sd": self._sd}
        for i, (w, b) in enumerate(zip(self._weights, self._biases, strict=True)):
            state[f"w{i}"] = w
            state[f"b{i}"] = b
        return state

    def _set_state(self, state: Mapping[str, np.ndarray]) -> None:
        self._mu = np.asarray(state["mu"])
        self._sd = np.asarray(state["sd"])
        n = sum(1 for k in state if k.startswith("w"))
        self._weights = [np.asarray(state[f"w{i}"]) for i in range(n)]
        self._biases = [np.asarray(state[f"b{i}"]) for i in range(n)]
