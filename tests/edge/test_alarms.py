"""Streaming alarm logic: equal to the pipeline's batch rule, row for row."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pumpops.edge import AlarmLogic, AlarmStep
from pumpops.errors import IncompatibleBundleError, InputError
from pumpops.pipeline.detectors import smooth_alarms


def _stream(logic: AlarmLogic, scores: np.ndarray) -> list[AlarmStep]:
    return [logic.update(float(s)) for s in scores]


@st.composite
def _cases(draw: st.DrawFn) -> tuple[np.ndarray, float, int, int, float, int]:
    n = draw(st.integers(1, 6))
    k = draw(st.integers(1, n))
    release = draw(st.sampled_from([1.0, 0.999, 0.8, 0.5, 0.1]))
    hold = draw(st.integers(0, 4))
    threshold = draw(st.sampled_from([1.0, 0.0, -0.5, 2.5]))
    # Scores on a coarse grid so ties with threshold and release * threshold happen often.
    grid = st.sampled_from([-1.0, -0.5, 0.0, 0.05, 0.5, 0.8, 1.0, 1.25, 2.0, 2.5, 3.0, math.nan])
    scores = draw(st.lists(grid | st.floats(-5, 5), min_size=0, max_size=60))
    return np.array(scores, dtype=np.float64), threshold, k, n, release, hold


@settings(max_examples=400, deadline=None)
@given(_cases())
def test_alarms_stream_equals_smooth_alarms(case: tuple[np.ndarray, float, int, int, float, int]) -> None:
    scores, threshold, k, n, release, hold = case
    expected = smooth_alarms(scores, threshold, k, n, release=release, hold=hold)
    steps = _stream(AlarmLogic(threshold, k, n, release=release, hold_rows=hold), scores)
    on = [s.on for s in steps]
    assert on == expected.tolist()
    prev = [False, *on][: len(on)]
    assert [s.raised for s in steps] == [o and not p for o, p in zip(on, prev, strict=True)]
    assert [s.cleared for s in steps] == [p and not o for o, p in zip(on, prev, strict=True)]


def test_alarms_doc_example_with_hold() -> None:
    logic = AlarmLogic(1.0, 2, 2, hold_rows=2)
    steps = _stream(logic, np.array([0.0, 2.0, 2.0, 0.8, 0.8, 0.3, 2.0]))
    assert [int(s.on) for s in steps] == [0, 0, 1, 1, 1, 0, 0]
    assert [i for i, s in enumerate(steps) if s.raised] == [2]
    assert [i for i, s in enumerate(steps) if s.cleared] == [5]


def test_alarms_nan_score_does_not_exceed() -> None:
    logic = AlarmLogic(1.0, 1, 1)
    assert logic.update(math.nan) == AlarmStep(on=False, raised=False, cleared=False)
    assert logic.update(2.0).raised
    assert logic.update(math.nan).cleared


def test_alarms_reset_turns_off() -> None:
    logic = AlarmLogic(1.0, 1, 1, hold_rows=5)
    assert logic.update(2.0).on
    logic.reset()
    assert not logic.on
    assert logic.update(0.0) == AlarmStep(on=False, raised=False, cleared=False)


def test_alarms_from_manifest_reads_smoothing() -> None:
    smoothing = {
        "rule": "k_of_n_hysteresis",
        "k": 2,
        "n": 4,
        "release": 0.6,
        "hold_rows": 3,
        "meaning": "on when k of the last n scores exceed threshold; ...",
    }
    logic = AlarmLogic.from_manifest(smoothing, 1.5)
    assert (logic.threshold, logic.k, logic.n, logic.release, logic.hold_rows) == (1.5, 2, 4, 0.6, 3)


@pytest.mark.parametrize("smoothing", [{}, {"rule": "k_of_n_hysteresis"}])
def test_alarms_from_manifest_defaults_to_plain_threshold(smoothing: dict[str, object]) -> None:
    logic = AlarmLogic.from_manifest(smoothing, 1.0)
    assert (logic.k, logic.n, logic.release, logic.hold_rows) == (1, 1, 1.0, 0)
    assert [s.on for s in _stream(logic, np.array([0.5, 1.5, 0.5]))] == [False, True, False]


def test_alarms_from_manifest_unknown_rule() -> None:
    with pytest.raises(IncompatibleBundleError, match=r"'ewma' is not supported.*update the agent"):
        AlarmLogic.from_manifest({"rule": "ewma", "k": 1, "n": 1}, 1.0)


@pytest.mark.parametrize(
    "smoothing",
    [
        {"k": 3, "n": 2},
        {"k": 0, "n": 2},
        {"k": 1.5, "n": 2},
        {"k": True, "n": 2},
        {"k": "2", "n": 3},
        {"release": 0.0},
        {"release": 1.5},
        {"release": "0.5"},
        {"hold_rows": -1},
        {"hold_rows": math.inf},
    ],
)
def test_alarms_from_manifest_bad_parameters(smoothing: dict[str, object]) -> None:
    with pytest.raises(IncompatibleBundleError, match="alarm smoothing"):
        AlarmLogic.from_manifest(smoothing, 1.0)


@pytest.mark.parametrize("threshold", [math.nan, math.inf])
def test_alarms_reject_non_finite_threshold(threshold: float) -> None:
    with pytest.raises(InputError, match="threshold must be finite"):
        AlarmLogic(threshold, 1, 1)
