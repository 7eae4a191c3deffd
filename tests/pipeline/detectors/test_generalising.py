# ruff: noqa: N803, N806 - X is the (rows x sensors) matrix, as in the detectors
"""The pieces that make a detector hold on unseen pumps, on synthetic data with known answers.

Variance floors (per sensor in the graph, per component in PCA), the score
offset, multi-scale change features, and the backdated onsets of the SKAB
changepoint score; each checked against hand-computed values and against the
exported ONNX model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from pumpops.errors import ConfigError
from pumpops.pipeline.detectors import (
    INPUT_CENTER,
    INPUT_SCALE,
    INPUT_WINDOW,
    OUTPUT_SCORE,
    Calibration,
    Detector,
    build_detector,
)
from pumpops.pipeline.skab import alarm_changepoints, onset_changepoints

SENSORS = ("motor_current", "fluid_temperature", "flow_rate")
SMALL = {
    "isolation_forest": {"n_estimators": 15, "max_samples": 64},
    "mlp_autoencoder": {"hidden": [6, 2, 6], "max_iter": 60},
}
ALL_NEW = {
    "scale_floor": 0.01,
    "scale_floors": {"temperature": 0.001},
    "score_offset": 0.7,
    "change_weight": 0.5,
    "baseline_window": 20,
    "window": 5,
    "window_by_kind": {"flow": 12},
}


def _normal(rng: np.random.Generator, n: int, temp_noise: float = 0.001) -> np.ndarray:
    return np.column_stack(
        [
            10.0 + 0.2 * rng.standard_normal(n),
            300.0 + temp_noise * rng.standard_normal(n),  # a fluid temperature steady to 1 mK
            0.02 + 0.0005 * rng.standard_normal(n),
        ]
    )


def _onnx(det: Detector, X: np.ndarray, cal: Calibration) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(det.to_onnx(), options, providers=["CPUExecutionProvider"])
    feeds = {INPUT_WINDOW: det.windows(X), INPUT_CENTER: cal.center, INPUT_SCALE: cal.scale}
    return np.asarray(session.run([OUTPUT_SCORE], feeds)[0])


def test_scale_floor_is_a_fraction_of_each_sensors_magnitude() -> None:
    det = build_detector("pca_t2q", sensors=SENSORS, scale_floor=0.01)
    center = np.array([10.0, 300.0, -0.02])
    scale = np.array([0.2, 0.001, 0.0005])
    assert det._floored(center, scale).tolist() == pytest.approx([0.2, 3.0, 0.0005])
    assert build_detector("pca_t2q", sensors=SENSORS)._floored(center, scale) is scale


def test_scale_floors_per_sensor_kind_replace_the_common_floor() -> None:
    det = build_detector("pca_t2q", sensors=SENSORS, scale_floor=0.01, scale_floors={"temperature": 0.0001})
    center = np.array([10.0, 300.0, 0.02])
    scale = np.array([0.01, 0.001, 0.0001])
    assert det._floored(center, scale).tolist() == pytest.approx([0.1, 0.03, 0.0002])
    assert det.params()["scale_floors"] == {"temperature": 0.0001}
    with pytest.raises(ConfigError):
        build_detector("pca_t2q", sensors=SENSORS, scale_floors={"flow": 1.5})


def test_variance_floors_keep_a_quiet_training_sensor_from_alarming_on_ordinary_noise() -> None:
    rng = np.random.default_rng(3)
    train = _normal(rng, 400, temp_noise=0.001)
    later = _normal(rng, 400, temp_noise=0.05)  # the same temperature, now with 0.05 K of ordinary noise
    later[:, 1] += 0.1
    rates = {}
    for name, floors in {
        "none": {},
        "sensor floor only": {"scale_floor": 0.001},
        "component floor only": {"eig_floor": 0.3},
        "both": {"scale_floor": 0.001, "eig_floor": 0.3},
    }.items():
        det = build_detector("pca_t2q", sensors=SENSORS, window=5, threshold_factor=2.0, **floors)
        cal = det.fit([train]).calibrate(train)
        rates[name] = float(det.alarms(later, cal).mean())
    # 0.1 K is 100 training deviations; PCA re-standardises each component, so the sensor's
    # floor (0.3 K) needs the component floor too before the drift stops counting as extreme
    assert rates["none"] > 0.9
    assert rates["sensor floor only"] > 0.9
    assert rates["component floor only"] > 0.9
    assert rates["both"] < 0.02


def test_scale_floor_still_finds_a_real_fault() -> None:
    rng = np.random.default_rng(4)
    train, test = _normal(rng, 400), _normal(rng, 300)
    test[150:, 2] *= 0.5  # flow halves: far beyond 1 % of its magnitude
    det = build_detector(
        "pca_t2q", sensors=SENSORS, window=5, threshold_factor=2.0, scale_floor=0.01, eig_floor=0.3
    )
    cal = det.fit([train]).calibrate(train)
    alarm = det.alarms(test, cal)
    assert alarm[170:].all()
    assert not alarm[:140].any()


def test_eig_floor_bounds_the_weight_of_every_pca_component() -> None:
    rng = np.random.default_rng(5)
    X = _normal(rng, 400)
    plain = build_detector("pca_t2q", sensors=SENSORS, window=10, variance=1.0).fit([X])
    floored = build_detector("pca_t2q", sensors=SENSORS, window=10, variance=1.0, eig_floor=0.5).fit([X])
    k = plain._t2.shape[1]
    # T² weight of component i is 1 / sqrt(max(eigenvalue_i, floor) * k): at most 1 / sqrt(0.5 k)
    assert np.abs(plain._t2).max() > 1.0 / np.sqrt(
        0.5 * k
    )  # window means of unit-scaled noise: tiny variance
    assert np.linalg.norm(floored._t2, axis=0).max() == pytest.approx(1.0 / np.sqrt(0.5 * k))


def test_score_offset_shifts_scores_and_gives_the_threshold_an_absolute_part() -> None:
    rng = np.random.default_rng(6)
    X = _normal(rng, 400)
    a = build_detector("pca_t2q", sensors=SENSORS, window=5, threshold_factor=3.0).fit([X])
    b = build_detector("pca_t2q", sensors=SENSORS, window=5, threshold_factor=3.0, score_offset=2.0).fit([X])
    cal_a, cal_b = a.calibrate(X), b.calibrate(X)
    assert b.score(X, cal_b) - a.score(X, cal_a) == pytest.approx(np.full(400, 2.0))
    q = cal_a.extra["score_quantile"]
    assert cal_b.threshold == pytest.approx(3.0 * (q + 2.0))  # = 3 q + (3 - 1) * 2 above the core score


def test_change_features_are_fast_minus_slow_and_fade_after_a_step() -> None:
    det = build_detector(
        "pca_t2q", sensors=SENSORS, window=2, baseline_window=4, change_weight=2.0, detrend_weight=1.0
    )
    assert det.n_features == 6
    X = np.tile([10.0, 300.0, 0.02], (12, 1))
    X[6:, 0] = 11.0  # a step of +1 in current at row 6
    center, scale = np.array([10.0, 300.0, 0.02]), np.ones(3)
    feats = det._features(X, center, scale)
    change = feats[:, 3]
    # row 6: fast mean (last 2 rows) 0.5, slow (last 4) 0.25 -> 2 * 0.25; row 7: 1 - 0.5; row 9: 1 - 1
    assert change[[5, 6, 7, 8, 9, 11]].tolist() == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.0, 0.0])
    assert feats[:, 0][[6, 7, 11]].tolist() == pytest.approx([0.5, 1.0, 1.0])  # the level stays


@pytest.mark.parametrize("kind", ["pca_t2q", "isolation_forest", "mlp_autoencoder"])
def test_every_new_option_is_inside_the_exported_model(kind: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    train, test = _normal(rng, 300), _normal(rng, 200)
    test[100:, 2] *= 0.6
    extra = {"eig_floor": 0.1} if kind == "pca_t2q" else {}
    det = build_detector(kind, sensors=SENSORS, seed=1, **ALL_NEW, **extra, **SMALL.get(kind, {}))
    cal = det.fit([train]).calibrate(train)
    numpy_scores = det.score(test, cal)
    assert np.abs(_onnx(det, test, cal) - numpy_scores).max() <= 1e-4 * max(1.0, np.abs(numpy_scores).max())
    assert det.score_windows(det.windows(test)[-5:], cal) == pytest.approx(numpy_scores[-5:], rel=1e-9)
    det.save(tmp_path / kind)
    again = Detector.load(tmp_path / kind)
    assert again.params() == det.params()
    assert again.score(test, cal) == pytest.approx(numpy_scores, rel=1e-12)
    assert det.manifest()["params"]["scale_floor"] == 0.01
    assert "0.001" in det.manifest()["calibration"]["model_scale_floor"]  # the temperature's own floor


@pytest.mark.parametrize(
    "hyper",
    [
        {"scale_floor": -0.1},
        {"scale_floor": 1.0},
        {"score_offset": -1.0},
        {"change_weight": 1.0},  # no baseline to change from
        {"change_weight": -1.0, "baseline_window": 60},
        {"eig_floor": -1.0},
        {"window_by_kind": {"flow": 0}},
    ],
)
def test_bad_new_settings_are_config_errors(hyper: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        build_detector("pca_t2q", sensors=SENSORS, **hyper)


def test_onset_changepoints_backdate_rising_edges_only() -> None:
    state = np.array([0, 0, 0, 0, 0, 1, 1, 1, 0, 0])
    scores = np.array([0, 0, 5, 5, 5, 5, 5, 5, 5, 0.0])
    assert alarm_changepoints(state).tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 1, 0]
    assert onset_changepoints(state, scores, 1.0, 10).tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 1, 0]
    assert onset_changepoints(state, scores, 1.0, 2).tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 1, 0]  # lookback
    assert onset_changepoints(state, scores, 9.0, 10).tolist() == alarm_changepoints(state).tolist()


def test_onset_changepoints_never_cross_the_previous_edge() -> None:
    state = np.array([1, 1, 0, 1, 1, 0])
    scores = np.full(6, 5.0)
    out = onset_changepoints(state, scores, 1.0, 10)
    assert out.tolist() == [1, 0, 1, 1, 0, 1]  # the second onset stays after the falling edge at row 2
