"""Anomaly detectors behind one interface, each exporting its whole scoring path to ONNX.

Owns: the :class:`Detector` interface, :class:`Calibration`, the registry
(:func:`build_detector`, :data:`DETECTORS`) and the built-in kinds.

May import: ``pumpops.schema``, ``pumpops.errors``, numpy, scikit-learn,
skl2onnx, onnx, onnxruntime. Never the store or MLflow.
"""

from pumpops.pipeline.detectors._autoencoder import MlpAutoencoder
from pumpops.pipeline.detectors._base import (
    DETECTORS,
    INPUT_CENTER,
    INPUT_SCALE,
    INPUT_WINDOW,
    ONNX_OPSET,
    OUTPUT_SCORE,
    Calibration,
    Detector,
    OnnxCore,
    build_detector,
    k_of_n,
    register_detector,
    robust_center_scale,
    smooth_alarms,
)
from pumpops.pipeline.detectors._iforest import IsolationForestDetector
from pumpops.pipeline.detectors._pca import PcaT2Q

__all__ = [
    "DETECTORS",
    "INPUT_CENTER",
    "INPUT_SCALE",
    "INPUT_WINDOW",
    "ONNX_OPSET",
    "OUTPUT_SCORE",
    "Calibration",
    "Detector",
    "IsolationForestDetector",
    "MlpAutoencoder",
    "OnnxCore",
    "PcaT2Q",
    "build_detector",
    "k_of_n",
    "register_detector",
    "robust_center_scale",
    "smooth_alarms",
]
