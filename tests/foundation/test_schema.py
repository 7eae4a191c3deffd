from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pumpops.errors import NotFoundError, UnitError
from pumpops.schema import CANONICAL_SENSORS, affine_to, canonical_sensor, convert


@pytest.mark.parametrize(
    ("value", "unit", "target", "expected"),
    [
        (1.0, "psi", "Pa", 6894.757293168),
        (2.5, "bar", "Pa", 250_000.0),
        (100.0, "kPa", "Pa", 100_000.0),
        (212.0, "degF", "K", 373.15),
        (25.0, "degC", "K", 298.15),
        (100.0, "gallon/minute", "m**3/s", 0.00630901964),
        (36.0, "m**3/hour", "m**3/s", 0.01),
        (60.0, "L/min", "m**3/s", 0.001),
        (60.0, "rpm", "rad/s", 2 * np.pi),
        (1.0, "gn", "m/s**2", 9.80665),
        (1.0, "in/s", "m/s", 0.0254),
        (4.5, "mm/s", "m/s", 0.0045),
        (22.0, "kW", "W", 22_000.0),
    ],
)
def test_convert_known_units_to_si(value: float, unit: str, target: str, expected: float) -> None:
    assert convert(np.array([value]), unit, target)[0] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("unit", "target", "fragment"),
    [
        ("psia2", "Pa", "unknown unit"),
        ("degC", "Pa", "measures"),
        ("g", "m/s**2", "measures"),  # gram, not standard gravity
        ("1/0", "Pa", "unknown unit"),
        ("", "Pa", "measures"),
    ],
)
def test_affine_to_rejects_bad_units(unit: str, target: str, fragment: str) -> None:
    with pytest.raises(UnitError, match=fragment):
        affine_to(unit, target)


@given(st.floats(min_value=-1e6, max_value=1e6))
def test_convert_round_trip_degf(value: float) -> None:
    there = convert(np.array([value]), "degF", "K")
    back = convert(there, "K", "degF")
    assert back[0] == pytest.approx(value, abs=1e-6)


def test_canonical_sensors_have_si_units_and_sane_bounds() -> None:
    for sensor in CANONICAL_SENSORS.values():
        affine_to(sensor.unit, sensor.unit)
        assert sensor.minimum < sensor.maximum, sensor.name
    assert canonical_sensor("flow_rate").unit == "m**3/s"
    with pytest.raises(NotFoundError, match="flow_rat"):
        canonical_sensor("flow_rat")


@pytest.mark.parametrize("unit", ["Hz", "1/s", "1/min", "kHz"])
def test_affine_to_rotational_speed_without_angle_is_rejected(unit: str) -> None:
    # pint treats the radian as dimensionless, so "Hz" would convert to rad/s with
    # factor 1 instead of 2π: a silent 6.28x error on every shaft speed.
    with pytest.raises(UnitError, match="rpm"):
        affine_to(unit, "rad/s")


@pytest.mark.parametrize(
    ("unit", "factor"), [("rev/s", 2 * np.pi), ("rpm", 2 * np.pi / 60), ("deg/s", np.pi / 180)]
)
def test_affine_to_rotational_speed_with_angle_converts(unit: str, factor: float) -> None:
    assert affine_to(unit, "rad/s")[0] == pytest.approx(factor, rel=1e-12)


# ----------------------------------------------------------------- the detector manifest


def _detector_section() -> dict[str, object]:
    """A ``detector`` section shaped as ``Detector.manifest()`` and the pipeline's export write it."""
    return {
        "format": 1,
        "kind": "pca_t2q",
        "onnx_opset": 17,
        "group": "skab-testbed",
        "model_sha256": "ab" * 32,
        "inputs": {
            "sensors": [{"name": "flow_rate", "unit": "m**3/s"}, {"name": "motor_current", "unit": "A"}],
            "window_rows": 10,
            "padding": "repeat_first",
            "onnx": [{"name": "window", "dtype": "float64", "shape": ["batch", 10, 2]}],
        },
        "outputs": [{"name": "score", "dtype": "float64", "shape": ["batch"]}],
        "alarm": {
            "threshold": "calibration.threshold",
            "compare": "score > threshold",
            "smoothing": {
                "rule": "k_of_n_hysteresis",
                "k": 3,
                "n": 5,
                "release": 1.0,
                "hold_rows": 0,
                "meaning": "on when k of the last n scores exceed threshold",
            },
        },
        "calibration": {"center": "median", "scale": "IQR / 1.349", "threshold": "1.2 * quantile(0.99)"},
        "params": {"kind": "pca_t2q", "threshold_quantile": 0.99, "threshold_factor": 1.2, "trim_z": 0.0},
        "sampling": {"period_s": 1.0, "max_gap_fill_s": 5.0},
    }


def test_detector_manifest_reads_what_the_agent_needs_and_re_emits_the_same_dict() -> None:
    import json

    from pumpops.schema import DetectorManifest

    doc = _detector_section()
    m = DetectorManifest.from_dict(doc)
    assert (m.kind, m.format, m.group) == ("pca_t2q", 1, "skab-testbed")
    assert (m.sampling.period_s, m.sampling.max_gap_fill_s) == (1.0, 5.0)
    assert m.threshold.as_kwargs() == {"threshold_quantile": 0.99, "threshold_factor": 1.2, "trim_z": 0.0}
    assert m.inputs.sensors == (("flow_rate", "m**3/s"), ("motor_current", "A"))
    assert (m.inputs.window_rows, m.alarm.smoothing.k, m.alarm.smoothing.n) == (10, 3, 5)
    assert m.to_dict() == doc
    assert json.dumps(m.to_dict(), sort_keys=True) == json.dumps(doc, sort_keys=True)


def test_detector_manifest_defaults_are_the_agents_when_sections_are_missing() -> None:
    from pumpops.schema import DetectorManifest

    m = DetectorManifest.from_dict({})
    assert (m.sampling.period_s, m.sampling.max_gap_fill_s) == (None, None)
    assert m.threshold.as_kwargs() == {"threshold_quantile": 0.99, "threshold_factor": 1.0, "trim_z": 0.0}
    assert m.to_dict() == {}


@pytest.mark.parametrize(
    ("section", "bad_key"),
    [
        ({"sampling": {"period_s": "fast"}}, "sampling.period_s"),
        ({"params": {"threshold_quantile": True}}, "params.threshold_quantile"),
        ({"alarm": {"smoothing": {"k": 2.5}}}, "alarm.smoothing.k"),
        ({"inputs": {"window_rows": "ten"}}, "inputs.window_rows"),
        ({"sampling": [1, 5]}, "sampling"),
    ],
)
def test_detector_manifest_names_the_bad_key(section: dict[str, object], bad_key: str) -> None:
    from pumpops.errors import IncompatibleBundleError
    from pumpops.schema import DetectorManifest

    with pytest.raises(IncompatibleBundleError, match=bad_key.replace(".", r"\.")):
        DetectorManifest.from_dict(section)
