"""The post-drift gate (issue 15): pure decisions table-driven, then measured on data with known answers.

Known answers: four pumps of one make, a constant offset on every pump's
discharge-pressure sensor at the onset. A model calibrated on post-drift rows
(the retrained candidate's situation) is as quiet on the later hold-out as the
champion was before the drift, while the champion with its pre-drift
calibration (the stale model) alarms; a second shift inside the hold-out that
training never saw makes the gate fail; a candidate that misses simulated
faults the champion catches fails on recall.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from _valhelpers import GROUP, START_MS, fast_config, sim_dataset

from pumpops.pipeline import parse_config, run_pipeline
from pumpops.pipeline._snapshot import Recording
from pumpops.sim import DriftKind, Event, FleetSimulator, Scenario, build_fleet
from pumpops.validation import (
    PostDriftData,
    PostDriftDevice,
    PostDriftMeasurement,
    check_post_drift,
    validate_model,
)

NAN = float("nan")


@pytest.mark.parametrize(
    ("cand_far", "pre_far", "tol", "cand_recall", "champ_recall", "rows", "passed", "words"),
    [
        (0.012, 0.005, 0.01, 1.0, 1.0, 100, True, "post-drift false alarms"),
        (0.015, 0.005, 0.01, 1.0, 1.0, 100, True, "post-drift false alarms"),  # exactly at the limit
        (0.016, 0.005, 0.01, 1.0, 1.0, 100, False, "pre-drift level 0.5 %"),
        (0.0, 0.0, 0.0, 1.0, 1.0, 100, True, "post-drift false alarms"),
        (0.001, 0.0, 0.0, 1.0, 1.0, 100, False, "of normal rows alarmed"),
        (0.0, 0.0, 0.01, 0.8, 1.0, 100, False, "fault recall 80 %"),
        (0.0, 0.0, 0.01, 1.0, 0.8, 100, True, "post-drift false alarms"),  # better than the champion
        (0.0, 0.0, 0.01, 0.5, NAN, 100, True, "post-drift false alarms"),  # no champion suite: no bar
        (NAN, 0.0, 0.01, 1.0, 1.0, 0, False, "no post-drift hold-out rows"),
        (0.0, NAN, 0.01, 1.0, 1.0, 100, False, "no pre-drift level"),
        (0.0, 0.0, 0.01, NAN, 1.0, 100, False, "no simulated fault was scored"),
    ],
)
def test_post_drift_gate_table(
    cand_far: float,
    pre_far: float,
    tol: float,
    cand_recall: float,
    champ_recall: float,
    rows: int,
    passed: bool,
    words: str,
) -> None:
    m = PostDriftMeasurement(cand_far, pre_far, 0.3, cand_recall, champ_recall, rows, 50, far_tolerance=tol)
    result = check_post_drift(m)
    assert result.name == "post_drift"
    assert result.passed is passed
    assert any(words in r for r in result.reasons), result.reasons
    assert result.measurements["far_tolerance"] == tol


def test_post_drift_gate_measurements_are_json_safe() -> None:
    result = check_post_drift(PostDriftMeasurement(NAN, NAN, NAN, NAN, NAN, 0, 0))
    assert result.measurements["candidate_far"] is None
    assert result.measurements["pre_drift_far"] is None
    assert not result.passed


# ------------------------------------------------------------------ measured, known answers

SENSOR = "discharge_pressure"
MIN = 60_000


def _traces(
    extra_shift_at_min: int | None = None,
) -> tuple[tuple[str, ...], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Four pumps, 150 min: an offset on every pump's discharge pressure from minute 60 (the onset)."""
    devices = build_fleet(4, seed=5, profiles=["acme-ansi"], id_prefix="pd")
    probe = FleetSimulator(
        Scenario(
            devices=devices,
            start_ms=START_MS,
            duration_s=60,
            seed=3,
            fault_rate_per_day=0.0,
            drift_rate_per_day=0.0,
        )
    )
    events = []
    for d in devices:
        step = float(probe.device(d.device_id).recalibration_scale(SENSOR))
        events.append(
            Event(
                d.device_id,
                DriftKind.SENSOR_RECALIBRATION,
                START_MS + 60 * MIN,
                START_MS + 150 * MIN,
                sensor=SENSOR,
                offset=step,
            )
        )
        if extra_shift_at_min is not None:  # a second shift, inside the hold-out only
            events.append(
                Event(
                    d.device_id,
                    DriftKind.SENSOR_RECALIBRATION,
                    START_MS + extra_shift_at_min * MIN,
                    START_MS + 150 * MIN,
                    sensor="suction_pressure",
                    offset=float(probe.device(d.device_id).recalibration_scale("suction_pressure")) * 3,
                )
            )
    sim = FleetSimulator(
        Scenario(
            devices=devices,
            start_ms=START_MS,
            duration_s=150 * 60,
            seed=3,
            fault_rate_per_day=0.0,
            drift_rate_per_day=0.0,
            events=tuple(events),
        )
    )
    out = {}
    sensors: tuple[str, ...] = ()
    for d in devices:
        trace = sim.device(d.device_id).trace()
        sensors = tuple(trace.sensors)
        out[d.device_id] = (
            trace.ts_ms.astype(np.int64) * 1000,
            np.column_stack([trace.si(s) for s in sensors]),
        )
    return sensors, out


def _data(sensors: tuple[str, ...], traces: dict[str, tuple[np.ndarray, np.ndarray]]) -> PostDriftData:
    cuts = [START_MS + m * MIN for m in (0, 30, 60, 120, 150)]
    devices = []
    for dev, (ts, values) in traces.items():
        parts = []
        for split, a, b in zip(("train", "test", "train", "test"), cuts[:-1], cuts[1:], strict=True):
            keep = (ts >= a * 1000) & (ts < b * 1000)
            parts.append(Recording(dev, split, ts[keep], values[keep]))  # type: ignore[arg-type]
        devices.append(PostDriftDevice(dev, *parts))
    return PostDriftData(sensors, tuple(devices), 0.01, {"kind": "test"})


def _train(ws: Path, factor: float) -> Path:
    config = parse_config(
        {
            "seed": 1,
            "data": {
                "source": "store",
                "group": GROUP,
                "since": "2025-06-01T00:00:00Z",
                "until": "2025-06-01T01:00:00Z",
            },
            "features": {"window_samples": 10, "min_segment_samples": 30, "baseline_window_samples": 300},
            "detector": {"kind": "pca_t2q"},
            "threshold": {"quantile": 0.999, "factor": factor},
            "smoothing": {"k": 5, "n": 10},
            "evaluation": {"enabled": False},
            "output": {"log": False, "model_dir": str(ws / "model")},
        }
    )
    dataset = sim_dataset(faulty=False, drift=False)
    return run_pipeline(config, workspace=ws, dataset=dataset, log=False).model_dir


@pytest.fixture(scope="module")
def level_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Clean data, temperatures detrended (their slow wander), pressures not: a stale model alarms."""
    return _train(tmp_path_factory.mktemp("level"), 2.0)


@pytest.fixture(scope="module")
def deaf_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same recipe with a threshold 100 times the normal scores: quiet, and blind to faults."""
    return _train(tmp_path_factory.mktemp("deaf"), 100.0)


@pytest.fixture(scope="module")
def recalibrated() -> PostDriftData:
    return _data(*_traces())


def test_known_offset_recovers_to_the_pre_drift_level(level_model: Path, recalibrated: PostDriftData) -> None:
    report = validate_model(
        level_model, champion_dir=level_model, config=fast_config(), post_drift=recalibrated
    )
    gate = report.gate("post_drift")
    m = gate.measurements
    assert m["holdout_rows"] > 0
    assert m["pre_rows"] > 0
    # the stale model (pre-drift calibration) alarms on the shifted sensor; the recalibrated one does not
    assert m["stale_far"] > 0.5, m
    assert m["candidate_far"] <= m["pre_drift_far"] + 0.01, m
    assert m["candidate_recall"] == m["champion_recall"]
    assert gate.passed, gate.reasons
    assert report.to_dict()["context"]["post_drift"] == {"kind": "test"}


def test_a_shift_training_never_saw_fails_the_gate(level_model: Path) -> None:
    data = _data(*_traces(extra_shift_at_min=125))
    report = validate_model(level_model, champion_dir=level_model, config=fast_config(), post_drift=data)
    gate = report.gate("post_drift")
    assert not gate.passed
    assert not report.passed
    assert any("of normal rows alarmed" in r for r in gate.reasons), gate.reasons
    assert gate.measurements["candidate_far"] > gate.measurements["pre_drift_far"] + 0.01


def test_lower_fault_recall_than_the_champion_fails(
    deaf_model: Path, level_model: Path, recalibrated: PostDriftData
) -> None:
    report = validate_model(
        deaf_model, champion_dir=level_model, config=fast_config(), post_drift=recalibrated
    )
    gate = report.gate("post_drift")
    m = gate.measurements
    assert m["candidate_recall"] < m["champion_recall"], m
    assert not gate.passed
    assert any("fault recall" in r for r in gate.reasons), gate.reasons
    assert any(not cand and champ for cand, champ in m["faults"].values()), m["faults"]


def test_missing_sensor_names_the_sensor(good_model: Path, recalibrated: PostDriftData) -> None:
    data = PostDriftData(recalibrated.sensors[1:], recalibrated.devices, 0.01)
    from pumpops.errors import ConfigError

    with pytest.raises(ConfigError, match="lacks the model's sensor"):
        validate_model(good_model, champion_dir=good_model, config=fast_config(), post_drift=data)


def test_device_too_short_to_calibrate_is_skipped_with_a_reason(
    good_model: Path, recalibrated: PostDriftData
) -> None:
    first = recalibrated.devices[0]
    short = PostDriftDevice(
        first.device_id,
        first.pre_calibration,
        first.pre_test,
        None
        if first.post_train is None
        else Recording(first.device_id, "train", first.post_train.ts_us[:3], first.post_train.values[:3]),
        first.post_holdout,
    )
    data = PostDriftData(recalibrated.sensors, (short, *recalibrated.devices[1:]), 0.01)
    report = validate_model(good_model, champion_dir=good_model, config=fast_config(), post_drift=data)
    m = report.gate("post_drift").measurements
    assert f"{first.device_id}:candidate" in m["skipped"]
    assert m["per_device"][first.device_id]["candidate_far"] is None
    assert math.isfinite(m["candidate_far"])
