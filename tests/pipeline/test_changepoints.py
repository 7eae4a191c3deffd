"""Score level-shift changepoints (the NAB output of `pumpops benchmark skab`): known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pumpops.pipeline.skab import (
    BENCHMARK_SETTINGS,
    TRAIN_ROWS,
    alarm_changepoints,
    load_experiment,
    score_experiment,
    shift_changepoints,
)


def _trapezoid() -> np.ndarray:
    """Normal at 1, a ramp up over rows 100-120 to 20, steady to 200, a ramp down over 200-220, normal."""
    s = np.ones(300)
    s[100:120] = np.linspace(1.0, 20.0, 20)
    s[120:200] = 20.0
    s[200:220] = np.linspace(20.0, 1.0, 20)
    return s


def test_a_step_gives_the_start_and_the_end_of_the_shift() -> None:
    s = np.array([1.0] * 20 + [10.0] * 20)
    cp = shift_changepoints(s, 3, 2.0, 0.5)
    # Rows 20-23: the 3-row mean (4, 7, 10, 10) is over 2x the 3 rows before (1, 1, 1, 4); row 24's
    # (10 against 7) is not. Edges: the first shifting row and the first one after.
    assert np.flatnonzero(cp).tolist() == [20, 24]


def test_a_fault_shaped_score_marks_each_transition_start_and_end() -> None:
    cp = shift_changepoints(_trapezoid(), 5, 1.5, 2.0)
    edges = np.flatnonzero(cp).tolist()
    assert len(edges) == 4
    rise_start, rise_end, fall_start, fall_end = edges
    assert 100 <= rise_start <= 110  # within the ramp up, causal delay only
    assert 115 <= rise_end <= 130  # after the ramp, once both means sit on the plateau
    assert 200 <= fall_start <= 215  # a linear fall: the ratio grows as the level drops
    assert 215 <= fall_end <= 235


def test_noise_below_the_floor_is_never_a_shift() -> None:
    rng = np.random.default_rng(0)
    s = np.abs(rng.standard_normal(5000)) * 0.3  # ratios of tiny scores swing wildly
    assert shift_changepoints(s, 5, 1.5, 2.0).sum() == 0
    assert shift_changepoints(s, 5, 1.5, 0.0).sum() > 0  # without the floor they would count


def test_steady_level_and_short_inputs_give_nothing() -> None:
    assert shift_changepoints(np.full(100, 50.0), 5, 1.2, 1.0).sum() == 0
    assert shift_changepoints(np.ones(9) * np.arange(9), 5, 1.2, 0.0).sum() == 0  # fewer than 2w+1 rows
    assert shift_changepoints(_trapezoid(), 0, 1.5, 2.0).sum() == 0  # window 0: off
    assert shift_changepoints(np.array([]), 3, 2.0, 1.0).tolist() == []


def test_shift_changepoints_are_causal() -> None:
    s = _trapezoid()
    full = shift_changepoints(s, 5, 1.5, 2.0)
    for cut in (110, 150, 205, 260):
        changed = s.copy()
        changed[cut:] = 99.0
        assert shift_changepoints(changed, 5, 1.5, 2.0)[:cut].tolist() == full[:cut].tolist()


def test_negative_and_zero_scores_count_as_the_floor() -> None:
    s = np.array([-5.0] * 20 + [0.0] * 20)
    assert shift_changepoints(s, 3, 1.5, 1.0).sum() == 0


def _experiment(path: Path) -> None:
    rng = np.random.default_rng(7)
    rows = 900
    header = (
        "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;Thermocouple;"
        "Voltage;Volume Flow RateRMS;anomaly;changepoint"
    )
    flow = 32.0 + 0.5 * rng.standard_normal(rows)
    flow[600:700] -= np.concatenate([np.linspace(0, 20, 30), np.full(40, 20.0), np.linspace(20, 0, 30)])
    lines = [header]
    for i in range(rows):
        stamp = f"2020-03-09 {10 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}"
        cells = [
            stamp,
            f"{0.027 + 0.001 * rng.standard_normal():.6f}",
            f"{0.040 + 0.001 * rng.standard_normal():.6f}",
            f"{1.3 + 0.05 * rng.standard_normal():.5f}",
            f"{0.4 + 0.05 * rng.standard_normal():.5f}",
            f"{79.0 + 0.1 * rng.standard_normal():.4f}",
            f"{26.0 + 0.05 * rng.standard_normal():.4f}",
            f"{233.0 + 2.0 * rng.standard_normal():.3f}",
            f"{flow[i]:.3f}",
            "1.0" if 600 <= i < 700 else "0.0",
            "1.0" if i in (600, 630, 670, 700) else "0.0",
        ]
        lines.append(";".join(cells))
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def test_score_experiment_adds_shift_changepoints_to_the_state_edges(tmp_path: Path) -> None:
    _experiment(tmp_path / "valve9" / "0.csv")
    exp = load_experiment(tmp_path, tmp_path / "valve9" / "0.csv")
    base = {**BENCHMARK_SETTINGS["pca_t2q"], "alarm_hold": 0, "cp_window": 0}
    plain = score_experiment(exp, settings=base, engine="numpy")
    assert plain.changepoint.tolist() == alarm_changepoints(plain.alarm).tolist()
    out = tmp_path / "out"
    shifted = score_experiment(exp, settings={**base, "cp_window": 10, "cp_ratio": 2.0}, out=out)
    assert shifted.alarm.tolist() == plain.alarm.tolist()  # NAB output only: the alarm is untouched
    assert np.all(shifted.changepoint >= plain.changepoint)
    assert shifted.changepoint.sum() > plain.changepoint.sum()
    assert shifted.onnx_parity <= 1e-6
    # The file written carries the changepoints scored (the alarm's edges alone would not).
    rows = [r.split(";") for r in (out / "valve9" / "0.csv").read_text().splitlines()]
    assert rows[0] == ["datetime", "anomaly", "changepoint"]
    assert [int(r[2]) for r in rows[1:]] == shifted.changepoint.tolist()
    assert len(rows) - 1 == 900 - TRAIN_ROWS


@pytest.mark.parametrize("bad", [{"cp_window": -1}, {"cp_ratio": 0.5}])
def test_bad_shift_settings_are_refused(tmp_path: Path, bad: dict[str, float]) -> None:
    _experiment(tmp_path / "valve9" / "0.csv")
    exp = load_experiment(tmp_path, tmp_path / "valve9" / "0.csv")
    from pumpops.errors import ConfigError

    with pytest.raises(ConfigError, match="cp_"):
        score_experiment(exp, settings={**BENCHMARK_SETTINGS["pca_t2q"], "cp_window": 10, **bad})


def test_the_default_search_space_only_proposes_valid_changepoint_settings(tmp_path: Path) -> None:
    import optuna

    from pumpops.pipeline.tuning import SEARCH_SPACES, suggest

    space = {k: v for k, v in SEARCH_SPACES["pca_t2q"].items() if k.startswith("cp_")}
    assert set(space) == {"cp_window", "cp_ratio", "cp_floor"}
    _experiment(tmp_path / "valve9" / "0.csv")
    exp = load_experiment(tmp_path, tmp_path / "valve9" / "0.csv")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(5):
        setting = suggest(study.ask(), space)
        assert setting["cp_ratio"] > 1.0
        assert setting["cp_window"] >= 0
        assert setting["cp_floor"] >= 0
        result = score_experiment(exp, settings={**BENCHMARK_SETTINGS["pca_t2q"], **setting}, engine="numpy")
        assert result.changepoint.shape == result.alarm.shape
