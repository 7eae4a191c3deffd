"""Drift on the device: PSI per sensor, Page–Hinkley on scores, the monitor's reports."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pumpops.edge import Cusum, DriftMonitor, PageHinkley, PsiWindow, psi, reference_bins
from pumpops.errors import ConfigError, InputError

LEVELS = np.linspace(0.0, 1.0, 11)
SENSORS = ["pressure", "flow", "temperature", "vibration"]


def _reference(seed: int = 1, n: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mean = np.array([5.0e5, 0.02, 320.0, 1.5])
    sd = np.array([2.0e4, 0.002, 3.0, 0.3])
    normal = rng.normal(mean, sd, (n, len(mean)))
    return np.quantile(normal, LEVELS, axis=0).T, mean, sd


def _monitor(deciles: np.ndarray, **kw: object) -> DriftMonitor:
    return DriftMonitor(SENSORS, deciles, window_rows=500, report_every_rows=500, **kw)  # type: ignore[arg-type]


def test_reference_bins_merge_repeated_deciles() -> None:
    edges, expected = reference_bins([0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
    assert edges.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert expected.tolist() == pytest.approx([0.2, *([0.1] * 7), 0.1])
    with pytest.raises(InputError):
        reference_bins([3, 2, 1])


def test_psi_constant_sensor_stays_quiet_then_flags_movement() -> None:
    w = PsiWindow([[7.0] * 11], window_rows=50)
    for _ in range(50):
        w.update([7.0])
    assert w.psi()[0] == 0.0
    for _ in range(25):
        w.update([8.0])
    assert w.psi()[0] > 1.0


def test_psi_window_skips_missing_values() -> None:
    w = PsiWindow([[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]], window_rows=3)
    for row in ([0.5, np.nan], [1.5, 1.5], [2.5, np.nan], [3.5, 3.5]):
        w.update(row)
    assert w.counts() == [3, 2]


def test_drift_stationary_data_no_alarm() -> None:
    deciles, mean, sd = _reference()
    rng = np.random.default_rng(2)
    mon = _monitor(deciles)
    reports = [
        mon.update(row, float(s))
        for row, s in zip(rng.normal(mean, sd, (3000, 4)), rng.normal(0.4, 0.1, 3000), strict=True)
    ]
    due = [r for r in reports if r is not None]
    assert len(due) == 6
    assert all(r.reason == "schedule" and not r.alert for r in due)
    assert max(v for r in due for v in r.psi.values() if v is not None) < 0.1


def test_drift_mean_shift_flags_that_sensor_only() -> None:
    deciles, mean, sd = _reference()
    rng = np.random.default_rng(3)
    mon = _monitor(deciles)
    shifted = mean + np.array([0.0, 0.0, 1.0, 0.0]) * sd  # one standard deviation on temperature
    for row in rng.normal(shifted, sd, (500, 4)):
        report = mon.update(row)
    assert report is not None
    assert report.drifted == ("temperature",)
    assert report.psi["temperature"] is not None
    assert report.psi["temperature"] > 0.25


def test_page_hinkley_step_up_detected_within_bounded_delay() -> None:
    delays = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        stream = np.concatenate([rng.normal(0.4, 0.1, 1000), rng.normal(0.8, 0.1, 500)])
        ph = PageHinkley()
        fired = [i for i, x in enumerate(stream) if ph.update(float(x))]
        assert fired, seed
        assert fired[0] >= 1000, f"false alarm before the step (seed {seed})"
        delays.append(fired[0] - 1000)
    assert max(delays) <= 40


def test_page_hinkley_two_sided_detects_drop() -> None:
    rng = np.random.default_rng(5)
    stream = np.concatenate([rng.normal(0.8, 0.1, 800), rng.normal(0.3, 0.1, 300)])
    up, both = PageHinkley(), PageHinkley(mode="both")
    assert not any(up.update(float(x)) for x in stream)
    fired = [i for i, x in enumerate(stream) if both.update(float(x))]
    assert fired
    assert 800 <= fired[0] <= 840


def test_page_hinkley_bad_parameters() -> None:
    with pytest.raises(ConfigError):
        PageHinkley(alpha=0.0)
    with pytest.raises(ConfigError):
        PageHinkley(mode="down")  # type: ignore[arg-type]


def test_monitor_reports_at_once_when_change_test_fires() -> None:
    deciles, mean, sd = _reference()
    rng = np.random.default_rng(4)
    mon = DriftMonitor(SENSORS, deciles, window_rows=500, report_every_rows=10_000, score_unit=2.0)
    scores = np.concatenate([rng.normal(0.8, 0.2, 1000), rng.normal(1.6, 0.2, 200)])
    reports = [
        (i, mon.update(row, float(s)))
        for i, (row, s) in enumerate(zip(rng.normal(mean, sd, (1200, 4)), scores, strict=True))
    ]
    due = [(i, r) for i, r in reports if r is not None]
    assert due, "no report"
    i, first = due[0]
    assert 1000 <= i <= 1040
    assert first.reason == "change"
    assert first.change_fired
    assert first.drifted == ()
    doc = first.to_dict()
    assert json.loads(json.dumps(doc)) == doc
    assert set(doc) == {
        "rows",
        "scores",
        "window_counts",
        "psi",
        "psi_alert",
        "drifted",
        "change",
        "alert",
        "reason",
        "shift",
        "shifted",
        "since_ms",
        "hint",
        "score_ratio",
    }
    assert doc["hint"] == "" and doc["shift"] == {}  # no shift test: PSI and the change test only
    assert mon.report().change_fired is False  # the flag resets once reported


def test_monitor_deterministic() -> None:
    deciles, mean, sd = _reference()

    def run() -> list[dict[str, object]]:
        rng = np.random.default_rng(9)
        mon = DriftMonitor(SENSORS, deciles, window_rows=200, report_every_rows=250)
        rows = rng.normal(mean + sd * [0, 0.5, 0, 0], sd, (1000, 4))
        scores = rng.normal(0.5, 0.1, 1000)
        return [r.to_dict() for row, s in zip(rows, scores, strict=True) if (r := mon.update(row, s))]

    assert run() == run()
    assert len(run()) == 4


def test_monitor_psi_withheld_until_window_has_rows() -> None:
    deciles, mean, _ = _reference()
    mon = DriftMonitor(SENSORS, deciles, psi_min_rows=100)
    mon.update(mean)
    report = mon.report()
    assert report.psi == dict.fromkeys(SENSORS)
    assert not report.alert


def test_psi_identical_proportions_is_zero() -> None:
    assert psi([5, 5], [0.5, 0.5]) == 0.0
    assert psi([0, 0], [0.5, 0.5]) == 0.0


def test_cusum_step_up_detected_within_bounded_delay_and_quiet_before() -> None:
    delays = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        stream = np.concatenate([rng.normal(0.4, 0.1, 1000), rng.normal(0.6, 0.1, 300)])
        cs = Cusum()
        fired = [i for i, x in enumerate(stream) if cs.update(float(x))]
        assert fired, seed
        assert fired[0] >= 1000, f"false alarm before the step (seed {seed})"
        delays.append(fired[0] - 1000)
    assert max(delays) <= 40


def test_monitor_with_cusum_reports_change() -> None:
    deciles, mean, sd = _reference()
    rng = np.random.default_rng(6)
    mon = DriftMonitor(SENSORS, deciles, report_every_rows=10_000, change_test=Cusum(warmup=200))
    scores = np.concatenate([rng.normal(0.5, 0.1, 600), rng.normal(0.9, 0.1, 100)])
    due = [
        (i, r)
        for i, (row, s) in enumerate(zip(rng.normal(mean, sd, (700, 4)), scores, strict=True))
        if (r := mon.update(row, float(s))) is not None
    ]
    assert due
    assert 600 <= due[0][0] <= 620
    assert due[0][1].reason == "change"
