"""The health check: the pure decision as a table, the measurement on tiny hand-made ONNX models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_slots import DEVICE, ROWS, SENSORS, make_bundle, onnx_model

from pumpops.edge import HealthMeasurements, decide_health, measure_health

OK = HealthMeasurements(n_windows=3, n_outputs=3, latency_ms=0.5, provider="CPUExecutionProvider")

DECISIONS = [
    # name, measurements, budget ms, ok, reason fragment
    ("healthy", OK, 5.0, True, None),
    ("healthy_no_budget", OK, None, True, None),
    ("load_error", HealthMeasurements(load_error="InvalidProtobuf: x"), 5.0, False, "does not load"),
    ("run_error", HealthMeasurements(run_error="bad shape"), 5.0, False, "does not score"),
    (
        "nan",
        HealthMeasurements(n_windows=1, n_outputs=1, n_non_finite=1, latency_ms=0.1),
        5.0,
        False,
        "finite",
    ),
    ("no_window", HealthMeasurements(n_windows=0, n_outputs=1, latency_ms=0.1), 5.0, False, "no window"),
    ("no_output", HealthMeasurements(n_windows=1, n_outputs=0, latency_ms=0.1), 5.0, False, "no output"),
    ("too_slow", HealthMeasurements(n_windows=1, n_outputs=1, latency_ms=9.0), 5.0, False, "exceeds"),
    ("at_budget", HealthMeasurements(n_windows=1, n_outputs=1, latency_ms=5.0), 5.0, True, None),
    ("unmeasured", HealthMeasurements(n_windows=1, n_outputs=1), 5.0, False, "not measured"),
    (
        "nan_latency",
        HealthMeasurements(n_windows=1, n_outputs=1, latency_ms=float("nan")),
        5.0,
        False,
        "not measured",
    ),
]


@pytest.mark.parametrize(("name", "m", "budget", "ok", "fragment"), DECISIONS, ids=[d[0] for d in DECISIONS])
def test_health_decision_table(
    name: str, m: HealthMeasurements, budget: float | None, ok: bool, fragment: str | None
) -> None:
    decision = decide_health(m, budget)
    assert decision.ok is ok
    assert decision.measurements == m
    if fragment is None:
        assert decision.reasons == ()
    else:
        assert any(fragment in r for r in decision.reasons), decision.reasons


def test_health_decision_lists_every_failure() -> None:
    m = HealthMeasurements(n_windows=1, n_outputs=4, n_non_finite=2, latency_ms=50.0)
    assert len(decide_health(m, 1.0).reasons) == 2


def test_health_measure_good_model_on_recent_windows(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, 1)
    rng = np.random.default_rng(7)
    windows = np.array([2e5, 300.0]) + rng.normal(0, 1, (5, ROWS, SENSORS)) * np.array([1e4, 2.0])
    m = measure_health(bundle, DEVICE, windows)
    assert (m.load_error, m.run_error, m.n_windows, m.n_outputs, m.n_non_finite) == (None, None, 5, 5, 0)
    assert m.latency_ms is not None
    assert m.latency_ms > 0
    assert m.provider == "CPUExecutionProvider"


def test_health_measure_without_history_uses_the_calibration_centre(tmp_path: Path) -> None:
    m = measure_health(make_bundle(tmp_path, 1), DEVICE)
    assert (m.n_windows, m.n_outputs, m.n_non_finite) == (1, 1, 0)


def test_health_measure_one_window(tmp_path: Path) -> None:
    m = measure_health(make_bundle(tmp_path, 1), DEVICE, np.ones((ROWS, SENSORS)))
    assert m.n_windows == 1
    assert m.run_error is None


@pytest.mark.parametrize(
    ("kind", "field", "fragment"),
    [("nan", "n_non_finite", None), ("truncated", "load_error", "")],
)
def test_health_measure_broken_models(tmp_path: Path, kind: str, field: str, fragment: str | None) -> None:
    model = onnx_model("nan") if kind == "nan" else onnx_model()[:40]
    m = measure_health(make_bundle(tmp_path, 1, model), DEVICE)
    assert getattr(m, field)
    assert not decide_health(m, 100.0).ok


def test_health_measure_unknown_device(tmp_path: Path) -> None:
    m = measure_health(make_bundle(tmp_path, 1), "pump-999")
    assert m.run_error is not None
    assert "no calibration" in m.run_error


def test_health_measure_wrong_window_shape(tmp_path: Path) -> None:
    m = measure_health(make_bundle(tmp_path, 1), DEVICE, np.ones((2, ROWS + 1, SENSORS)))
    assert m.run_error is not None
    assert "shape" in m.run_error
