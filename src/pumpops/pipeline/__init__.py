"""The reproducible training pipeline: snapshot, features, detectors, thresholds, evaluation, ONNX export.

Owns ``pumpops train``: a ``pipeline.toml`` (:func:`load_config`) is run by
:func:`run_pipeline` through snapshot → features → fit → calibrate →
evaluate → export → log, each step cached by the hash of its inputs, every
run logged to MLflow tracking. The detectors live in
:mod:`pumpops.pipeline.detectors`.

May import: schema, fleet, store, sources, sim, errors, numpy, scikit-learn,
skl2onnx, onnx, MLflow, and its own detectors.
"""

from pumpops.pipeline._config import PipelineConfig, load_config, parse_config
from pumpops.pipeline._run import RunResult, run_pipeline

__all__ = ["PipelineConfig", "RunResult", "load_config", "parse_config", "run_pipeline"]
