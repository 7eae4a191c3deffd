"""SKAB scoring rules, checked against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pumpops.pipeline.skab import (
    BinaryCounts,
    NabTally,
    alarm_changepoints,
    binary_counts,
    detection_windows,
    nab_tally,
)

S = 1000  # ms


def test_binary_counts_hand_computed() -> None:
    true = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 0])
    pred = np.array([0, 1, 0, 0, 0, 1, 1, 1, 1, 1])
    c = binary_counts(true, pred)
    assert (c.tp, c.tn, c.fp, c.fn) == (4, 3, 2, 1)
    assert c.f1 == pytest.approx(4 / (4 + 3 / 2))
    assert c.far == pytest.approx(100 * 2 / 5)
    assert c.mar == pytest.approx(100 * 1 / 5)


def test_binary_counts_pool_by_adding_counts_not_averaging_f1() -> None:
    a = binary_counts(np.array([1, 1, 0]), np.array([1, 0, 0]))
    b = binary_counts(np.array([1, 0, 0, 0]), np.array([1, 1, 1, 0]))
    pooled = a + b
    assert (pooled.tp, pooled.tn, pooled.fp, pooled.fn) == (2, 2, 2, 1)
    assert pooled.f1 == pytest.approx(2 / (2 + 3 / 2))


def test_binary_counts_always_on_alarm() -> None:
    c = binary_counts(np.array([0, 1, 1, 0]), np.ones(4, dtype=int))
    assert c.far == 100.0
    assert c.mar == 0.0
    assert c.f1 == pytest.approx(2 / 3)


def test_binary_metrics_empty_are_zero() -> None:
    assert BinaryCounts().f1 == 0.0
    assert BinaryCounts().far == 0.0


def test_alarm_changepoints_are_both_edges_and_first_row() -> None:
    assert alarm_changepoints(np.array([0, 0, 1, 1, 1, 0, 0])).tolist() == [0, 0, 1, 0, 0, 1, 0]
    assert alarm_changepoints(np.array([1, 0, 0])).tolist() == [1, 1, 0]
    assert alarm_changepoints(np.array([], dtype=int)).tolist() == []


def test_detection_windows_right_of_changepoints_and_cut_on_overlap() -> None:
    ts = np.arange(0, 300) * S
    cp = np.zeros(300, dtype=int)
    cp[[10, 40, 200]] = 1
    # 10 s + 60 s = 70 s overlaps the window starting at 40 s: the later one starts at 70 s.
    assert detection_windows(ts, cp) == [[10 * S, 70 * S], [70 * S, 100 * S], [200 * S, 260 * S]]


def test_nab_detection_at_changepoint_is_perfect() -> None:
    ts = np.arange(0, 200) * S
    true = np.zeros(200, dtype=int)
    true[50] = 1
    tally = nab_tally(ts, true, true.copy())
    assert tally.scores["Standard"] == pytest.approx([1.0, -1.0, 1.0])
    for profile in ("Standard", "LowFP", "LowFN"):
        assert tally.nab(profile) == pytest.approx(100.0)
    assert (tally.n_true, tally.missed, tally.false_positives, tally.delays_ms) == (1, 0, 0, [0])


def test_nab_no_prediction_scores_zero() -> None:
    ts = np.arange(0, 200) * S
    true = np.zeros(200, dtype=int)
    true[[50, 150]] = 1
    tally = nab_tally(ts, true, np.zeros(200, dtype=int))
    assert tally.nab("Standard") == 0.0
    assert tally.missed == 2
    assert math.isnan(tally.mean_delay_s)


def test_nab_half_way_detection_and_false_positives_hand_computed() -> None:
    ts = np.arange(0, 300) * S
    true = np.zeros(300, dtype=int)
    true[100] = 1
    pred = np.zeros(300, dtype=int)
    pred[[20, 130, 140, 250]] = 1  # FP before, first hit at 30 s of 60 s, second hit ignored, FP after
    tally = nab_tally(ts, true, pred)
    assert (tally.missed, tally.false_positives, tally.delays_ms) == (0, 2, [30 * S])
    # Scaled tanh at event int(0.5 * 1000) = 500 of 1000 points on [-pi/2, pi/2]:
    # x = 0.0015723, y = 0.555 * -tanh(x) / tanh(pi/2) + 0.445 = 0.444049 (Standard)
    standard_tp = 0.444049
    assert tally.scores["Standard"][0] == pytest.approx(standard_tp - 2 * 0.11, abs=1e-5)
    assert tally.nab("Standard") == pytest.approx(100 * (standard_tp - 0.22 + 1) / 2, abs=1e-3)
    # LowFP: y = 0.61 * -tanh(x)/tanh(pi/2) + 0.39; two FPs cost 0.22 each.
    assert tally.scores["LowFP"][0] == pytest.approx(0.389 - 0.44, abs=1e-3)


def test_nab_detection_at_window_end_is_worth_a_false_positive() -> None:
    ts = np.arange(0, 200) * S
    true = np.zeros(200, dtype=int)
    true[50] = 1
    pred = np.zeros(200, dtype=int)
    pred[110] = 1  # exactly at the window's right edge: inside, scored A_fp
    tally = nab_tally(ts, true, pred)
    assert tally.false_positives == 0
    assert tally.scores["Standard"][0] == pytest.approx(-0.11, abs=1e-3)


def test_nab_uses_time_not_row_positions() -> None:
    # A gap in the recording: rows 0..9 every second, then a jump of 100 s.
    ts = np.concatenate([np.arange(10), 110 + np.arange(10)]) * S
    true = np.zeros(20, dtype=int)
    true[5] = 1
    pred = np.zeros(20, dtype=int)
    pred[10] = 1  # 105 s after the changepoint: outside the 60 s window
    tally = nab_tally(ts, true, pred)
    assert (tally.missed, tally.false_positives) == (1, 1)


def test_nab_tallies_add_before_normalising() -> None:
    ts = np.arange(0, 200) * S
    true = np.zeros(200, dtype=int)
    true[50] = 1
    hit = nab_tally(ts, true, true.copy())
    miss = nab_tally(ts, true, np.zeros(200, dtype=int))
    total = hit + miss + NabTally()
    assert total.nab("Standard") == pytest.approx(50.0)
    assert total.n_true == 2
