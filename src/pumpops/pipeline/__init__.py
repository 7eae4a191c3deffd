"""The reproducible training pipeline: snapshot, features, detectors, thresholds, evaluation, ONNX export.

Owns ``pumpops train``: a ``pipeline.toml`` (:func:`load_config`) is run by
:func:`run_pipeline` through snapshot → features → fit → calibrate →
evaluate → export → log, each step cached by the hash of its inputs, every
run logged to MLflow tracking. The detectors live in
:mod:`pumpops.pipeline.detectors`.

May import: schema, fleet, store, sources, sim, errors, numpy, scikit-learn,
skl2onnx, onnx, MLflow, and its own detectors.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pumpops.pipeline._config import PipelineConfig, load_config, parse_config
    from pumpops.pipeline._run import RunResult, run_pipeline

__all__ = ["PipelineConfig", "RunResult", "load_config", "parse_config", "run_pipeline"]

# Loaded on first use (PEP 562): scikit-learn and MLflow take about a second to
# import, which every `pumpops` command would otherwise pay at start-up.
_LAZY = {
    "PipelineConfig": "pumpops.pipeline._config",
    "load_config": "pumpops.pipeline._config",
    "parse_config": "pumpops.pipeline._config",
    "RunResult": "pumpops.pipeline._run",
    "run_pipeline": "pumpops.pipeline._run",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pumpops.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
