"""The reproducible training pipeline: snapshot, features, detectors, thresholds, evaluation, ONNX export.

Owns ``pumpops train``: a ``pipeline.toml`` (:func:`load_config`) is run by
:func:`run_pipeline` through snapshot → features → fit → calibrate →
evaluate → export → log, each step cached by the hash of its inputs, every
run logged to MLflow tracking. The detectors live in
:mod:`pumpops.pipeline.detectors`. Other parts read a trained model folder
back (:func:`load_model_folder`), calibrate held-out devices as training does
(:func:`calibrated_holdout`) and open scoring sessions (:func:`open_session`)
through this package, never its underscore modules.

Many groups train at once as tasks on Dask (:func:`train_groups`).

May import: schema, fleet, store, sources, sim, errors, numpy, scikit-learn,
skl2onnx, onnx, MLflow, Dask (distributed), and its own detectors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pumpops._lazy import lazy_exports

if TYPE_CHECKING:
    from pumpops.pipeline._calibrate import calibrate_new_device
    from pumpops.pipeline._config import PipelineConfig, load_config, parse_config
    from pumpops.pipeline._fanout import FanoutReport, GroupOutcome, check_scheduler, train_groups
    from pumpops.pipeline._holdout import (
        CalibratedHoldout,
        ModelFolder,
        calibrated_holdout,
        load_labelled_files,
        load_model_folder,
    )
    from pumpops.pipeline._interrupt import InterruptGuard
    from pumpops.pipeline._metrics import event_delays, summarise
    from pumpops.pipeline._onnx import open_session
    from pumpops.pipeline._run import RunResult, check_detector, run_pipeline
    from pumpops.pipeline._snapshot import Recording
    from pumpops.pipeline._template import pipeline_template
    from pumpops.pipeline._tracking import mlflow_quiet, quiet_mlflow_env, resolve_tracking_uri

__all__ = [
    "CalibratedHoldout",
    "FanoutReport",
    "GroupOutcome",
    "InterruptGuard",
    "ModelFolder",
    "PipelineConfig",
    "Recording",
    "RunResult",
    "calibrate_new_device",
    "calibrated_holdout",
    "check_detector",
    "check_scheduler",
    "event_delays",
    "load_config",
    "load_labelled_files",
    "load_model_folder",
    "mlflow_quiet",
    "open_session",
    "parse_config",
    "pipeline_template",
    "quiet_mlflow_env",
    "resolve_tracking_uri",
    "run_pipeline",
    "summarise",
    "train_groups",
]

# Loaded on first use (PEP 562): scikit-learn and MLflow take about a second to
# import, which every `pumpops` command would otherwise pay at start-up.
_LAZY = {
    "calibrate_new_device": "pumpops.pipeline._calibrate",
    "PipelineConfig": "pumpops.pipeline._config",
    "load_config": "pumpops.pipeline._config",
    "parse_config": "pumpops.pipeline._config",
    "FanoutReport": "pumpops.pipeline._fanout",
    "GroupOutcome": "pumpops.pipeline._fanout",
    "check_scheduler": "pumpops.pipeline._fanout",
    "train_groups": "pumpops.pipeline._fanout",
    "CalibratedHoldout": "pumpops.pipeline._holdout",
    "ModelFolder": "pumpops.pipeline._holdout",
    "calibrated_holdout": "pumpops.pipeline._holdout",
    "load_labelled_files": "pumpops.pipeline._holdout",
    "load_model_folder": "pumpops.pipeline._holdout",
    "InterruptGuard": "pumpops.pipeline._interrupt",
    "event_delays": "pumpops.pipeline._metrics",
    "summarise": "pumpops.pipeline._metrics",
    "open_session": "pumpops.pipeline._onnx",
    "RunResult": "pumpops.pipeline._run",
    "check_detector": "pumpops.pipeline._run",
    "run_pipeline": "pumpops.pipeline._run",
    "Recording": "pumpops.pipeline._snapshot",
    "pipeline_template": "pumpops.pipeline._template",
    "mlflow_quiet": "pumpops.pipeline._tracking",
    "quiet_mlflow_env": "pumpops.pipeline._tracking",
    "resolve_tracking_uri": "pumpops.pipeline._tracking",
}


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
