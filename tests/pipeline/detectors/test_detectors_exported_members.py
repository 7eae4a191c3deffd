"""Pins the public API of the detectors, the SKAB benchmark and its tuning: a change users see."""

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
        "BENCHMARK_CHANGEPOINTS",
        "BENCHMARK_SETTINGS",
        "DEFAULT_DETECTOR",
        "LEADERBOARD_CHANGEPOINT",
        "LEADERBOARD_OUTLIER",
        "NAB_PROFILES",
        "TRAIN_ROWS",
        "BinaryCounts",
        "Experiment",
        "FileResult",
        "NabTally",
        "SkabRun",
        "alarm_changepoints",
        "benchmark_settings",
        "binary_counts",
        "detection_windows",
        "experiment_paths",
        "group_of",
        "leaderboard_table",
        "load_experiment",
        "markdown_table",
        "nab_tally",
        "onset_changepoints",
        "run_skab",
        "score_experiment",
        "shift_changepoints",
        "skab_canonical",
        "write_predictions",
    },
    "pumpops.pipeline.tuning": {
        "CANDIDATE_SPACES",
        "DEFAULT_CANDIDATES",
        "DEFAULT_TRIALS",
        "FAR_MARGIN",
        "NORMAL_PIECE_ROWS",
        "SEARCH_SPACES",
        "HeldOutRun",
        "Loader",
        "Search",
        "Split",
        "folder_splits",
        "held_out",
        "held_out_table",
        "log_search",
        "run_trials",
        "normal_pieces",
        "objective",
        "parse_split",
        "search_split",
        "suggest",
    },
}


@pytest.mark.parametrize("module", sorted(_PUBLIC))
def test_exported_members_are_pinned(module: str) -> None:
    mod = importlib.import_module(module)
    assert set(mod.__all__) == _PUBLIC[module]
    for name in mod.__all__:
        assert hasattr(mod, name), name
