"""Per-sensor-kind windows (``window_by_kind``): known feature values, the same in numpy and ONNX."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from pumpops.pipeline.detectors import INPUT_CENTER, INPUT_SCALE, INPUT_WINDOW, OUTPUT_SCORE, build_detector

SENSORS = ("motor_current", "flow_rate")


def _normal(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.column_stack([10.0 + 0.2 * rng.standard_normal(n), 0.02 + 0.0005 * rng.standard_normal(n)])


def test_each_sensor_kind_is_averaged_over_its_own_window() -> None:
    det = build_detector("pca_t2q", sensors=SENSORS, window=2, window_by_kind={"flow": 4}, detrend=())
    assert det.feature_span == 4
    assert det.input_length == 4
    z = np.zeros((8, 2))
    z[4:, :] = 1.0  # a step on both sensors at row 4
    feats = det._features(z, np.zeros(2), np.ones(2))
    # current: mean of the last 2 rows; flow: of the last 4
    assert feats[:, 0].tolist() == pytest.approx([0, 0, 0, 0, 0.5, 1, 1, 1])
    assert feats[:, 1].tolist() == pytest.approx([0, 0, 0, 0, 0.25, 0.5, 0.75, 1])


@pytest.mark.parametrize("score_window", [1, 3])
def test_per_sensor_windows_score_the_same_in_numpy_and_onnx(score_window: int) -> None:
    rng = np.random.default_rng(3)
    train, test = _normal(rng, 300), _normal(rng, 200)
    test[120:, 1] *= 0.97  # a 3 % flow drop
    det = build_detector(
        "pca_t2q",
        sensors=SENSORS,
        window=3,
        window_by_kind={"flow": 25},
        baseline_window=40,
        change_weight=0.5,
        score_window=score_window,
    )
    cal = det.fit([train]).calibrate(train)
    scores = det.score(test, cal)
    session = ort.InferenceSession(det.to_onnx(), providers=["CPUExecutionProvider"])
    feeds = {INPUT_WINDOW: det.windows(test), INPUT_CENTER: cal.center, INPUT_SCALE: cal.scale}
    onnx_scores = np.asarray(session.run([OUTPUT_SCORE], feeds)[0])
    assert np.abs(onnx_scores - scores).max() <= 1e-9 * max(1.0, np.abs(scores).max())
    assert det.score_windows(det.windows(test)[-4:], cal) == pytest.approx(scores[-4:], rel=1e-9)
    assert det.params()["window_by_kind"] == {"flow": 25}


def test_a_longer_flow_window_separates_a_small_flow_drop_better() -> None:
    rng = np.random.default_rng(5)
    train, test = _normal(rng, 400), _normal(rng, 400)
    test[200:, 1] -= 0.0004  # 0.8 sigma of one reading: hidden in a 3-row mean, plain in a 40-row one
    margins = {}
    for name, by_kind in [("short", {}), ("long", {"flow": 40})]:
        det = build_detector("pca_t2q", sensors=SENSORS, window=3, window_by_kind=by_kind, variance=0.99)
        cal = det.fit([train]).calibrate(train)
        s = det.score(test, cal)
        margins[name] = float(np.median(s[260:]) / np.quantile(s[50:200], 0.99))
    assert margins["long"] > 1.0 > margins["short"]
