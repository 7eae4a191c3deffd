"""Isolation Forest on window features; the trees exported with skl2onnx."""

from __future__ import annotations

import io
import pickle  # the state file is hash-checked by Detector.load before unpickling
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.ensemble import IsolationForest as _SkIsolationForest

from pumpops.errors import ConfigError
from pumpops.pipeline.detectors._base import ONNX_OPSET, Detector, OnnxCore, register_detector

_PREFIX = "if_"


@register_detector
class IsolationForestDetector(Detector):
    """Isolation Forest; score ``-score_samples`` in ``(0, 1)`` (higher is more anomalous).

    scikit-learn's trees compare in float32, so the ONNX graph casts the
    features to float32 before the trees, exactly as scikit-learn does.

    Args:
        n_estimators: number of trees.
        max_samples: rows drawn per tree (``min(max_samples, n)``).
        **base: see :class:`~pumpops.pipeline.detectors.Detector`.

    >>> rng = np.random.default_rng(0)
    >>> X = np.column_stack([2.0 + 0.1 * rng.standard_normal(500), 230 + rng.standard_normal(500)])
    >>> det = IsolationForestDetector(sensors=["motor_current", "motor_voltage"], window=5)
    >>> cal = det.fit([X[:400]]).calibrate(X[:400])
    >>> bad = X[400:].copy(); bad[50:, 0] += 1.0
    >>> scores = det.score(bad, cal)
    >>> bool(scores[:40].mean() < scores[60:].mean())
    True
    """

    kind = "isolation_forest"

    def __init__(self, *, n_estimators: int = 100, max_samples: int = 256, **base: Any) -> None:
        super().__init__(**base)
        if n_estimators < 1 or max_samples < 2:
            raise ConfigError("n_estimators must be >= 1 and max_samples >= 2")
        self.n_estimators = int(n_estimators)
        self.max_samples = int(max_samples)
        self._model: _SkIsolationForest | None = None

    def _core_params(self) -> dict[str, Any]:
        return {"n_estimators": self.n_estimators, "max_samples": self.max_samples}

    def _fit_core(self, features: np.ndarray) -> None:
        self._model = _SkIsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, features.shape[0]),
            random_state=self.seed,
        ).fit(features)

    def _sk(self) -> _SkIsolationForest:
        if self._model is None:
            raise ConfigError("isolation forest is not fitted")
        return self._model

    def _core_score(self, features: np.ndarray) -> np.ndarray:
        return -np.asarray(self._sk().score_samples(features), dtype=np.float64)

    def _core_onnx(self) -> OnnxCore:
        from skl2onnx import convert_sklearn  # noqa: PLC0415 - heavy import only when exporting
        from skl2onnx.common.data_types import FloatTensorType  # noqa: PLC0415

        converted = convert_sklearn(
            self._sk(),
            initial_types=[("features32", FloatTensorType([None, self.n_features]))],
            target_opset={"": ONNX_OPSET, "ai.onnx.ml": 3},
        )
        sub = onnx.compose.add_prefix(converted, _PREFIX, rename_inputs=False, rename_outputs=False)
        opsets = {o.domain: o.version for o in sub.opset_import}
        nodes = [
            helper.make_node("Cast", ["features"], ["features32"], name="if_cast_in", to=TensorProto.FLOAT)
        ]
        nodes += list(sub.graph.node)
        nodes += [
            helper.make_node("Cast", ["scores"], ["if_scores64"], name="if_cast_out", to=TensorProto.DOUBLE),
            helper.make_node("Reshape", ["if_scores64", "if_flat"], ["if_flat_scores"], name="if_flatten"),
            # scores = decision_function = score_samples - offset_
            helper.make_node("Add", ["if_flat_scores", "if_offset"], ["if_samples"], name="if_add_offset"),
            helper.make_node("Neg", ["if_samples"], ["core_score"], name="if_negate"),
        ]
        inits = [
            *sub.graph.initializer,
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "if_flat"),
            numpy_helper.from_array(np.array([float(self._sk().offset_)]), "if_offset"),
        ]
        return OnnxCore(nodes, inits, opsets)

    def _get_state(self) -> dict[str, np.ndarray]:
        buffer = io.BytesIO()
        pickle.dump(self._sk(), buffer, protocol=5)
        return {"sklearn_pickle": np.frombuffer(buffer.getvalue(), dtype=np.uint8)}

    def _set_state(self, state: Mapping[str, np.ndarray]) -> None:
        self._model = pickle.loads(np.asarray(state["sklearn_pickle"]).tobytes())  # noqa: S301 - hash-checked
