"""Pins the public API of the detectors and the SKAB benchmark: a change here is a change users see."""

from __future__ import annotations

import importlib

import pytest

_PUBLIC = {
    "pumpops.pipeline.detectors": {
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
    },
    "pumpops.pipeline.skab": {
        "BENCHMARK_SETTINGS",
        "DEFAULT_DETECTOR",
        "LEADERBOARD_CHANGEPOINT",
        "LEADERBOARD_OUTLIER",
        "NAB_PROFILES",
        "TRAIN_ROWS",
        "BinaryCounts",
        "FileResult",
        "NabTally",
        "SkabRun",
        "alarm_changepoints",
        "binary_counts",
        "detection_windows",
        "leaderboard_table",
        "markdown_table",
        "nab_tally",
        "run_skab",
        "skab_canonical",
        "write_predictions",
    },
}


@pytest.mark.parametrize("module", sorted(_PUBLIC))
def test_exported_members_are_pinned(module: str) -> None:
    mod = importlib.import_module(module)
    assert set(mod.__all__) == _PUBLIC[module]
    for name in mod.__all__:
        assert hasattr(mod, name), name
