"""Drift on the device: PSI per sensor, Page–Hinkley on scores, the monitor's reports."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from pumpops.edge import Cusum, DriftMonitor, PageHinkley, PsiWindow, psi, reference_bins
from pumpops.edge._shift import ShiftJudge, ShiftTest, _ar1_factor
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
        "shift_sd",
        "z",
        "shifted",
        "confirmed",
        "since_ms",
        "hint",
        "fault_signs",
        "weather",
        "score_ratio",
    }
    assert doc["hint"] == ""  # no shift test: PSI and the change test only
    assert doc["shift"] == {}
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


# ---------------------------------------------------------------- ShiftTest: a known false-alarm rate

EIGHT = ["suction_pressure", "discharge_pressure", "flow_rate", "motor_current", "power", "speed",
         "bearing_temperature", "vibration"]  # fmt: skip
ALPHA = 0.01
WINDOW = 500


def _ar1(phi: float, rows: int, sensors: int, rng: np.random.Generator) -> np.ndarray:
    """A stationary AR(1) stream with unit marginal variance (started in its stationary state).

    Blocks of 64 rows at once: inside a block ``x = T @ e`` with ``T[i, j] = phi ** (i - j)``,
    and the block's first value carries the previous block's last one.
    """
    block = 64
    n_blocks = -(-rows // block)
    noise = rng.normal(0.0, np.sqrt(1.0 - phi * phi), (n_blocks, block, sensors))
    noise[0, 0] = rng.normal(0.0, 1.0, sensors)
    lags = np.subtract.outer(np.arange(block), np.arange(block))
    power = np.where(lags >= 0, phi ** np.maximum(lags, 0), 0.0)
    inner = np.einsum("ij,bjs->bis", power, noise)
    carry = phi ** np.arange(1, block + 1)[:, None]
    for b in range(1, n_blocks):
        inner[b] += carry * inner[b - 1, -1]
    out: np.ndarray = inner.reshape(-1, sensors)[:rows]
    return out


def _binomial_bound(alpha: float, n: int) -> float:
    """The stated bound on a measured rate over n windows: 2·alpha plus 3 binomial sd."""
    return 2 * alpha + 3 * math.sqrt(alpha * (1 - alpha) / n)


@pytest.mark.parametrize(
    ("phi", "reference_rows"),
    [(0.0, 1800), (0.9, 1800), (0.95, 1800), (0.98, 1800), (0.99, 1800), (0.99, 7200)],
)
def test_shift_test_stationary_autocorrelated_signal_fires_at_most_the_stated_rate(
    phi: float, reference_rows: int
) -> None:
    """400 windows of 8 stationary AR(1) sensors, each window 1000 rows from the next."""
    windows, per_seed, fired = 400, 20, 0
    for seed in range(windows // per_seed):
        rng = np.random.default_rng(1000 + seed)
        x = _ar1(phi, reference_rows + per_seed * 1000, len(EIGHT), rng)
        test = ShiftTest(EIGHT, x[:reference_rows], window_rows=WINDOW, alpha=ALPHA)
        for k in range(per_seed):
            end = reference_rows + (k + 1) * 1000
            fired += any(s.fired for s in test.test(x[end - WINDOW : end]))
    assert fired / windows <= _binomial_bound(ALPHA, windows), f"{fired} of {windows} windows fired"


def test_shift_test_pvalues_are_uniform_enough_on_white_noise() -> None:
    """With phi 0 the tests are ordinary t and variance tests: about 10 % of p-values under 0.1."""
    rng = np.random.default_rng(5)
    test = ShiftTest(EIGHT, rng.normal(0, 1, (4000, 8)), window_rows=WINDOW)
    p = [s.p_mean for _ in range(50) for s in test.test(rng.normal(0, 1, (WINDOW, 8)))]
    assert 0.05 <= np.mean(np.asarray(p) < 0.1) <= 0.15


@pytest.mark.parametrize(
    ("phi", "shift_sd", "sensor"),
    [(0.0, 0.5, 0), (0.9, 2.0, 3), (0.95, 2.5, 7), (0.98, 4.0, 1), (0.99, 6.0, 5)],
)
def test_shift_test_level_shift_on_one_of_eight_names_that_sensor_within_one_report(
    phi: float, shift_sd: float, sensor: int
) -> None:
    """A shift of k reference sd from row 2000 on is named within ``window_rows + report_every_rows``,
    and called drift (confirmed) by the next report.

    The stated delay holds when the shift is at least ``detectable_shift_sd()`` (about 95 % power
    per window; the table's shifts are above it for every seed). Ten seeds each. A false alarm
    before the onset is the other test's business (its rate is alpha per report).
    """
    report_every = 500
    for seed in range(10):
        rng = np.random.default_rng(seed)
        ref = _ar1(phi, 3600, 8, rng)
        test = ShiftTest(EIGHT, ref, window_rows=WINDOW, alpha=ALPHA)
        assert test.detectable_shift_sd()[sensor] <= shift_sd
        live = _ar1(phi, 2000 + WINDOW + report_every, 8, rng)
        live[2000:, sensor] += shift_sd
        mon = DriftMonitor(EIGHT, np.quantile(ref, LEVELS, axis=0).T, window_rows=WINDOW,
                           report_every_rows=report_every, shift_test=test)  # fmt: skip
        first = None
        for i, row in enumerate(live):
            report = mon.update(row, 0.2, ts_ms=1_000 * i)
            if report is not None and i >= 2000 and EIGHT[sensor] in report.shifted:
                first = (i, report)
                break
        assert first is not None, f"seed {seed}: never fired"
        i, report = first
        assert 2000 <= i < 2000 + WINDOW + report_every, f"seed {seed}: fired at row {i}"
        assert report.shifted == (EIGHT[sensor],)
        assert report.hint == "new_shift"  # one report is not drift yet
        assert not report.alert
        confirmed = [
            r for k, row in enumerate(live[i + 1 :], i + 1) if (r := mon.update(row, 0.2, 1_000 * k))
        ]
        assert confirmed, f"seed {seed}: no second report"
        assert confirmed[0].hint == "sensor_shift", f"seed {seed}: {confirmed[0].hint}"
        assert confirmed[0].confirmed == (EIGHT[sensor],)
        assert confirmed[0].alert
        assert confirmed[0].since_ms[EIGHT[sensor]] == 1_000 * i
        se = np.sqrt(
            _ar1_factor(test.phi[sensor], WINDOW) / WINDOW + _ar1_factor(test.phi[sensor], 3600) / 3600
        )
        assert report.shift[EIGHT[sensor]].shift_sd == pytest.approx(shift_sd, abs=4 * se)
        assert report.since_ms == {EIGHT[sensor]: 1_000 * i}


def test_shift_test_variance_change_fires_on_the_spread() -> None:
    rng = np.random.default_rng(11)
    test = ShiftTest(EIGHT, _ar1(0.9, 3600, 8, rng), window_rows=WINDOW)
    window = _ar1(0.9, WINDOW, 8, rng)
    window[:, 2] = window[:, 2].mean() + 3.0 * (window[:, 2] - window[:, 2].mean())
    out = {s.sensor: s for s in test.test(window)}
    assert [name for name, s in out.items() if s.fired] == ["flow_rate"]
    assert out["flow_rate"].spread_ratio > 2.0
    assert out["flow_rate"].p_spread is not None
    assert out["flow_rate"].p_spread < 1e-4


def test_shift_test_reports_the_shift_in_reference_sd_and_in_si() -> None:
    rng = np.random.default_rng(2)
    mean, sd = np.array([5.0e5, 320.0]), np.array([2.0e4, 3.0])
    test = ShiftTest(["discharge_pressure", "temperature"], rng.normal(mean, sd, (4000, 2)), window_rows=400)
    out = test.test(rng.normal(mean + np.array([8.0e4, 0.0]), sd, (400, 2)))
    assert out[0].fired
    assert not out[1].fired
    assert out[0].shift_sd == pytest.approx(4.0, abs=0.3)
    assert out[0].shift == pytest.approx(8.0e4, rel=0.1)
    assert json.loads(json.dumps(out[0].to_dict())) == out[0].to_dict()


def test_shift_test_since_stays_at_the_first_report_then_clears() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(0, 1, (2000, 8))
    mon = DriftMonitor(EIGHT, np.quantile(ref, LEVELS, axis=0).T, window_rows=100, report_every_rows=100,
                       shift_test=ShiftTest(EIGHT, ref, window_rows=100))  # fmt: skip
    live = rng.normal(0, 1, (1000, 8))
    live[300:600, 0] += 5.0
    reports = [r for i, row in enumerate(live) if (r := mon.update(row, 0.1, ts_ms=10 * i)) is not None]
    since = [r.since_ms.get(EIGHT[0]) for r in reports]
    assert since[:3] == [None, None, None]
    assert since[3:6] == [3990, 3990, 3990]  # the report at row 400 first saw it
    assert since[7:] == [None, None, None]


_ONE, _TWO, _FIVE = np.eye(8)[0], np.eye(8)[:2].sum(axis=0), np.eye(8)[:5].sum(axis=0)
_STAYS = ["new_shift", "sensor_shift", "sensor_shift"]
_F = "fault_like"


@pytest.mark.parametrize(
    ("name", "change", "hints"),
    [
        ("stationary", lambda t, x: x, ["none"] * 3),
        ("one sensor steps and stays", lambda t, x: x + 6.0 * _ONE, _STAYS),
        ("two sensors step", lambda t, x: x + 6.0 * _TWO, _STAYS),
        (
            "five sensors step",
            lambda t, x: x + 6.0 * _FIVE,
            ["new_shift", "operating_shift", "operating_shift"],
        ),
        # A fault sign counts once the next report shows it too (a window across a step shows one once).
        (
            "one sensor ramps up",
            lambda t, x: x + (6.0 + 12.0 * t) * _ONE,
            ["new_shift", "new_shift", "fault_like"],
        ),
        (
            "one sensor gets noisy",
            lambda t, x: x * (1 + 2.0 * _ONE),
            ["new_shift", "fault_like", "fault_like"],
        ),
    ],
)
def test_shift_monitor_hint_tells_a_level_shift_that_stays_from_a_fault(
    name: str, change: Any, hints: list[str]
) -> None:
    """Three reports after a change from row 0: a step that stays is drift from the second on."""
    rng = np.random.default_rng(9)
    ref = rng.normal(0, 1, (2000, 8))
    mon = DriftMonitor(EIGHT, np.quantile(ref, LEVELS, axis=0).T, window_rows=200, report_every_rows=200,
                       score_unit=0.5, shift_test=ShiftTest(EIGHT, ref, window_rows=200))  # fmt: skip
    live = rng.normal(0, 1, (600, 8))
    rows = [change(i // 200, row) for i, row in enumerate(live)]
    reports = [r for row in rows if (r := mon.update(row, 0.75)) is not None]
    assert [r.hint for r in reports] == hints, name
    assert [r.alert for r in reports] == [h in ("sensor_shift", "operating_shift") for h in hints]
    assert all(r.score_ratio == pytest.approx(1.5) for r in reports)  # evidence for the hub, not the word
    if hints[-1] == "fault_like":
        assert reports[-1].fault_signs
        assert reports[-1].fault_signs[0].startswith(EIGHT[0])
        assert json.loads(json.dumps(reports[-1].to_dict()))["fault_signs"] == list(reports[-1].fault_signs)


def test_shift_test_constant_and_missing_sensors() -> None:
    rng = np.random.default_rng(4)
    ref = rng.normal(0, 1, (1000, 3))
    ref[:, 1] = 7.0  # sat still in the reference
    test = ShiftTest(["a", "b", "c"], ref, window_rows=100)
    window = rng.normal(0, 1, (100, 3))
    window[:, 1] = 7.0
    window[40:, 2] = np.nan  # 40 values: fewer than half the window
    out = test.test(window)
    assert [s.fired for s in out] == [False, False, False]
    assert out[2].p_mean is None
    assert out[2].p_spread is None
    assert json.loads(json.dumps(out[2].to_dict(), allow_nan=False))["shift_sd"] is None
    window[:, 1] = 7.001
    assert [s.sensor for s in test.test(window) if s.fired] == ["b"]


@pytest.mark.parametrize(
    ("reference", "kwargs", "error"),
    [
        (np.zeros((1000, 2)), {"window_rows": 100}, InputError),  # 2 columns for 3 sensors
        (np.zeros(1000), {"window_rows": 100}, InputError),
        (np.zeros((100, 3)), {"window_rows": 100}, InputError),  # too short
        (np.full((1000, 3), np.nan), {"window_rows": 100}, InputError),
        (np.zeros((1000, 3)), {"window_rows": 5}, ConfigError),
        (np.zeros((1000, 3)), {"window_rows": 100, "alpha": 0.0}, ConfigError),
        (np.zeros((1000, 3)), {"window_rows": 100, "alpha": 0.7}, ConfigError),
    ],
)
def test_shift_test_refuses_bad_configuration(
    reference: np.ndarray, kwargs: dict[str, float], error: type[Exception]
) -> None:
    with pytest.raises(error):
        ShiftTest(["a", "b", "c"], reference, **kwargs)  # type: ignore[arg-type]


def test_shift_test_refuses_a_window_of_the_wrong_shape_and_the_monitor_other_sensors() -> None:
    test = ShiftTest(["a", "b"], np.random.default_rng(0).normal(0, 1, (500, 2)), window_rows=50)
    with pytest.raises(InputError, match="shape"):
        test.test(np.zeros((50, 3)))
    with pytest.raises(InputError, match="sensors"):
        DriftMonitor(["a", "c"], np.zeros((2, 11)) + LEVELS, shift_test=test)
    with pytest.raises(ConfigError, match="few_sensors"):
        DriftMonitor(["a", "b"], np.zeros((2, 11)) + LEVELS, shift_test=test, few_sensors=0)


def test_shift_monitor_report_with_a_dead_sensor_is_strict_json() -> None:
    """A sensor that stops reporting (NaN rows) is left untested; the report stays valid JSON."""
    rng = np.random.default_rng(12)
    ref = rng.normal(0, 1, (1000, 8))
    mon = DriftMonitor(EIGHT, np.quantile(ref, LEVELS, axis=0).T, window_rows=100, report_every_rows=100,
                       shift_test=ShiftTest(EIGHT, ref, window_rows=100))  # fmt: skip
    live = rng.normal(0, 1, (100, 8))
    live[:, 4] = np.nan
    live[10, 2] = np.inf  # one non-finite value among 100 of another sensor
    report = [mon.update(row, 0.1, ts_ms=i) for i, row in enumerate(live)][-1]
    assert report is not None
    doc = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert doc["shift_sd"]["power"] is None  # not tested: no values
    assert doc["shift_sd"]["flow_rate"] is not None
    assert doc["shift"] == {}  # the full answer only for shifted sensors
    assert doc["shifted"] == []


def test_shift_monitor_gathers_its_reference_then_tests_against_it() -> None:
    """A bundle-calibrated device: the first complete rows are the reference, NaN rows are not."""
    rng = np.random.default_rng(21)
    kept: list[np.ndarray] = []
    mon = DriftMonitor(EIGHT, np.zeros((8, 11)) + LEVELS, window_rows=100, report_every_rows=100,
                       gather_reference=400, shift_window_rows=100, on_reference=kept.append)  # fmt: skip
    rows = rng.normal(0, 1, (1000, 8))
    rows[50, 3] = np.nan  # not a reference row
    reports = [r for i, row in enumerate(rows) if (r := mon.update(row, 0.1, ts_ms=i)) is not None]
    assert mon.reference_progress is None
    assert len(kept) == 1
    assert kept[0].shape == (400, 8)
    assert np.all(np.isfinite(kept[0]))
    assert [r.hint for r in reports[:4]] == ["", "", "", ""]  # rows 0-400: gathering, no shift word
    assert reports[4].hint == "none"  # rows 401-500 fill the first window: stationary
    assert mon.shift_test is not None
    shifted = rng.normal(0, 1, (200, 8)) + 5.0 * np.eye(8)[2]
    later = [r for i, row in enumerate(shifted) if (r := mon.update(row, 0.1, ts_ms=2000 + i)) is not None]
    assert [r.hint for r in later] == ["new_shift", "sensor_shift"]
    assert later[-1].confirmed == (EIGHT[2],)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"few_sensors": 0},
        {"confirm": 0},
        {"growth_sd": 0.0},
        {"growth_fraction": -0.1},
        {"hold_alpha": 1.0},
        {"weather_rate_k_h": -1.0},
        {"weather_swing_k": 0.0},
        {"weather_z": 0.0},
        {"weather_horizon_s": 0.0},
        {"confirm_s": -1.0},
        {"settle_s": -1.0},
        {"sign_reports": 3},
    ],
)
def test_shift_judge_refuses_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="ShiftJudge"):
        ShiftJudge(**kwargs)  # type: ignore[arg-type]
