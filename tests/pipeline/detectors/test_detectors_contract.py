# ruff: noqa: N803 - X is the (rows x sensors) matrix, as in the detectors
"""One contract suite, run against every registered detector kind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from pumpops.errors import ConfigError, InputError, IntegrityError
from pumpops.pipeline.detectors import (
    DETECTORS,
    INPUT_CENTER,
    INPUT_SCALE,
    INPUT_WINDOW,
    ONNX_OPSET,
    OUTPUT_SCORE,
    Calibration,
    Detector,
    build_detector,
    k_of_n,
    smooth_alarms,
)

SENSORS = ("motor_current", "motor_voltage", "motor_temperature", "flow_rate", "vibration_accel_de")
# Small models so the whole suite stays fast; the benchmark uses the real sizes.
SMALL = {
    "isolation_forest": {"n_estimators": 15, "max_samples": 64},
    "mlp_autoencoder": {"hidden": [6, 2, 6], "max_iter": 60},
}
COMMON = {
    "window": 5,
    "baseline_window": 20,
    "detrend_weight": 0.5,
    "score_window": 3,
    "alarm_k": 2,
    "alarm_n": 4,
    "alarm_release": 0.6,
    "alarm_hold": 2,
}
KINDS = sorted(DETECTORS)


def _normal(rng: np.random.Generator, n: int, offset: float = 0.0) -> np.ndarray:
    t = np.arange(n)
    return np.column_stack(
        [
            10.0 + offset + 0.2 * rng.standard_normal(n),
            400.0 + 2.0 * rng.standard_normal(n),
            330.0 + 0.002 * t + 0.1 * rng.standard_normal(n),  # slow temperature drift, K
            0.02 + 0.0005 * rng.standard_normal(n),
            1.5 + 0.1 * rng.standard_normal(n),
        ]
    )


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(42)
    train = [_normal(rng, 300), _normal(rng, 250, offset=1.0)]
    normal = _normal(rng, 200)
    valid = _normal(rng, 240)
    valid[120:, 3] *= 0.6  # a valve closing: flow drops
    return {"train0": train[0], "train1": train[1], "normal": normal, "valid": valid}


def _build(kind: str, seed: int = 0) -> Detector:
    return build_detector(kind, sensors=SENSORS, seed=seed, **COMMON, **SMALL.get(kind, {}))


def _fitted(kind: str, data: dict[str, np.ndarray], seed: int = 0) -> tuple[Detector, Calibration]:
    detector = _build(kind, seed).fit([data["train0"], data["train1"]])
    return detector, detector.calibrate(data["normal"])


def _onnx_scores(model: bytes, detector: Detector, X: np.ndarray, cal: Calibration) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    feeds = {INPUT_WINDOW: detector.windows(X), INPUT_CENTER: cal.center, INPUT_SCALE: cal.scale}
    return np.asarray(session.run([OUTPUT_SCORE], feeds)[0])


@pytest.fixture(scope="module", params=KINDS)
def fitted(request: pytest.FixtureRequest, data: dict[str, np.ndarray]) -> tuple[Detector, Calibration]:
    return _fitted(request.param, data)


def test_detector_registry_has_required_kinds() -> None:
    assert {"pca_t2q", "isolation_forest", "mlp_autoencoder"} <= set(DETECTORS)


@pytest.mark.parametrize("kind", KINDS)
def test_detector_deterministic_under_seed(kind: str, data: dict[str, np.ndarray]) -> None:
    a, cal_a = _fitted(kind, data, seed=7)
    b, cal_b = _fitted(kind, data, seed=7)
    np.testing.assert_array_equal(a.score(data["valid"], cal_a), b.score(data["valid"], cal_b))
    assert cal_a.to_dict() == cal_b.to_dict()
    assert a.to_onnx() == b.to_onnx()


def test_detector_onnx_matches_score(
    fitted: tuple[Detector, Calibration], data: dict[str, np.ndarray]
) -> None:
    detector, cal = fitted
    expected = detector.score(data["valid"], cal)
    got = _onnx_scores(detector.to_onnx(), detector, data["valid"], cal)
    assert got.shape == expected.shape
    assert float(np.max(np.abs(got - expected))) <= 1e-4


def test_detector_score_windows_matches_score(
    fitted: tuple[Detector, Calibration], data: dict[str, np.ndarray]
) -> None:
    detector, cal = fitted
    got = detector.score_windows(detector.windows(data["valid"]), cal)
    np.testing.assert_allclose(got, detector.score(data["valid"], cal), rtol=0, atol=1e-9)
    with pytest.raises(InputError, match=r"windows must have shape"):
        detector.score_windows(data["valid"], cal)


def test_detector_onnx_is_self_contained(fitted: tuple[Detector, Calibration]) -> None:
    detector, _ = fitted
    model = onnx.load_from_string(detector.to_onnx())
    onnx.checker.check_model(model)
    assert {o.domain: o.version for o in model.opset_import}[""] == ONNX_OPSET
    manifest = detector.manifest()
    json.dumps(manifest)
    assert [i.name for i in model.graph.input] == [x["name"] for x in manifest["inputs"]["onnx"]]
    assert [o.name for o in model.graph.output] == [x["name"] for x in manifest["outputs"]]
    assert manifest["inputs"]["window_rows"] == detector.input_length
    assert [s["name"] for s in manifest["inputs"]["sensors"]] == list(SENSORS)


def test_detector_score_is_causal(fitted: tuple[Detector, Calibration], data: dict[str, np.ndarray]) -> None:
    detector, cal = fitted
    full = detector.score(data["valid"], cal)
    prefix = detector.score(data["valid"][:150], cal)
    np.testing.assert_allclose(prefix, full[:150], rtol=0, atol=1e-9)


def test_detector_detects_the_fault(
    fitted: tuple[Detector, Calibration], data: dict[str, np.ndarray]
) -> None:
    detector, cal = fitted
    scores = detector.score(data["valid"], cal)
    assert scores[160:].mean() > scores[:100].mean()


def test_detector_save_load_round_trip(
    fitted: tuple[Detector, Calibration], data: dict[str, np.ndarray], tmp_path: Path
) -> None:
    detector, cal = fitted
    detector.save(tmp_path / "m")
    loaded = Detector.load(tmp_path / "m")
    assert type(loaded) is type(detector)
    assert loaded.params() == detector.params()
    np.testing.assert_array_equal(loaded.score(data["valid"], cal), detector.score(data["valid"], cal))
    assert loaded.to_onnx() == detector.to_onnx()
    assert (tmp_path / "m" / "model.onnx").read_bytes() == detector.to_onnx()
    cal2 = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_array_equal(loaded.score(data["valid"], cal2), detector.score(data["valid"], cal))


def test_detector_load_rejects_tampered_state(fitted: tuple[Detector, Calibration], tmp_path: Path) -> None:
    detector, _ = fitted
    detector.save(tmp_path / "m")
    state = tmp_path / "m" / "state.npz"
    state.write_bytes(state.read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match=r"SHA-256"):
        Detector.load(tmp_path / "m")


def test_detector_alarms_use_stored_smoothing(
    fitted: tuple[Detector, Calibration], data: dict[str, np.ndarray]
) -> None:
    detector, cal = fitted
    scores = detector.score(data["valid"], cal)
    expected = smooth_alarms(scores, cal.threshold, 2, 4, release=0.6, hold=2)
    np.testing.assert_array_equal(detector.alarms(data["valid"], cal), expected)
    smoothing = detector.manifest()["alarm"]["smoothing"]
    assert smoothing["rule"] == "k_of_n_hysteresis"
    assert (smoothing["k"], smoothing["n"], smoothing["release"], smoothing["hold_rows"]) == (2, 4, 0.6, 2)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        pytest.param(lambda X: X[:, :3], r"shape \(rows, 5\)", id="too-few-columns"),
        pytest.param(lambda X: X[0], r"shape", id="one-dimensional"),
        pytest.param(
            lambda X: np.where(np.arange(X.shape[0])[:, None] == 3, np.nan, X), r"non-finite", id="nan"
        ),
        pytest.param(lambda X: X - np.array([0, 0, 273.15, 0, 0]), r"canonical SI units \(K\)", id="celsius"),
        pytest.param(lambda X: X * np.array([1, 1, 1, 60000, 1]), r"flow_rate", id="litres-per-minute"),
    ],
)
def test_detector_rejects_bad_input(
    fitted: tuple[Detector, Calibration], data: dict[str, np.ndarray], mutate: object, match: str
) -> None:
    detector, cal = fitted
    with pytest.raises(InputError, match=match):
        detector.score(mutate(data["valid"]), cal)  # type: ignore[operator]


def test_detector_rejects_wrong_sensor_names_and_units(
    fitted: tuple[Detector, Calibration], data: dict[str, np.ndarray]
) -> None:
    detector, cal = fitted
    with pytest.raises(InputError, match=r"do not match"):
        detector.score(data["valid"], cal, sensors=list(reversed(SENSORS)))
    with pytest.raises(InputError, match=r"canonical units"):
        detector.score(data["valid"], cal, units=["A", "V", "degC", "m**3/s", "m/s**2"])
    other = Calibration.from_dict({**cal.to_dict(), "sensors": list(reversed(SENSORS))})
    with pytest.raises(InputError, match=r"calibration is for sensors"):
        detector.score(data["valid"], other)
    ok = detector.score(data["valid"], cal, sensors=SENSORS, units=["A", "V", "K", "m**3/s", "m/s**2"])
    assert ok.shape == (data["valid"].shape[0],)


@pytest.mark.parametrize("kind", KINDS)
def test_detector_unknown_hyper_parameter_is_config_error(kind: str) -> None:
    with pytest.raises(ConfigError, match=r"unknown hyper-parameter.*known: .*window"):
        build_detector(kind, sensors=SENSORS, windw=5)


def test_build_detector_unknown_kind_lists_known() -> None:
    with pytest.raises(ConfigError, match=r"known: .*pca_t2q"):
        build_detector("lstm", sensors=SENSORS)


@pytest.mark.parametrize(
    "hyper",
    [
        {"window": 0},
        {"baseline_window": 3, "window": 5},
        {"alarm_k": 5, "alarm_n": 3},
        {"threshold_quantile": 1.5},
    ],
)
def test_build_detector_invalid_values_are_config_errors(hyper: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        build_detector("pca_t2q", sensors=SENSORS, **hyper)


def test_build_detector_rejects_unknown_sensor() -> None:
    with pytest.raises(ConfigError, match=r"canonical sensors"):
        build_detector("pca_t2q", sensors=["Current"])


def test_detector_score_before_fit_is_config_error(data: dict[str, np.ndarray]) -> None:
    detector = _build("pca_t2q")
    with pytest.raises(ConfigError, match=r"not fitted"):
        detector.to_onnx()


def test_calibration_from_dict_rejects_bad_shapes(fitted: tuple[Detector, Calibration]) -> None:
    _, cal = fitted
    with pytest.raises(InputError, match=r"invalid calibration"):
        Calibration.from_dict({**cal.to_dict(), "center": [1.0]})
    with pytest.raises(InputError, match=r"invalid calibration"):
        Calibration.from_dict({"sensors": []})


def test_k_of_n_hand_computed() -> None:
    exceed = np.array([0, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1], dtype=bool)
    assert k_of_n(exceed, 2, 3).astype(int).tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1]
    assert k_of_n(exceed, 1, 1).tolist() == exceed.tolist()


def test_smooth_alarms_hysteresis_hand_computed() -> None:
    scores = np.array([0.0, 1.5, 1.5, 1.5, 0.9, 0.7, 0.4, 1.5, 0.2])
    assert smooth_alarms(scores, 1.0, 3, 3).astype(int).tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0]
    assert smooth_alarms(scores, 1.0, 3, 3, release=0.5).astype(int).tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0]
    assert smooth_alarms(scores, 1.0, 3, 3, hold=2).astype(int).tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0]
    held = smooth_alarms(scores, 1.0, 3, 3, release=0.5, hold=1).astype(int).tolist()
    assert held == [0, 0, 0, 1, 1, 1, 1, 0, 0]


def test_detector_trim_z_leaves_a_transient_out_of_fit_and_threshold(data: dict[str, np.ndarray]) -> None:
    normal = data["normal"].copy()
    normal[:30, 3] *= 0.5  # the tail of an earlier event in the "normal" period
    for trim_z, flagged in ((0.0, 0.0), (4.0, 1.0)):
        detector = build_detector("pca_t2q", sensors=SENSORS, trim_z=trim_z, **COMMON).fit([normal])
        cal = detector.calibrate(normal)
        scores = detector.score(normal, cal)
        assert (scores[5:30] > cal.threshold).mean() == flagged  # learnt as normal only without trimming
        assert (scores[60:] > cal.threshold).mean() == 0.0
        assert detector.params()["trim_z"] == trim_z
