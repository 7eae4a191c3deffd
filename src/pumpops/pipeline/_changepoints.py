"""Predicted changepoints for SKAB's NAB score: alarm edges, backdated onsets and score level shifts.

A changepoint says *when the state changed*, which the point-wise alarm
answers only at its edges. Besides the alarm's edges (:func:`alarm_changepoints`)
and onsets moved back to where the score left normal
(:func:`onset_changepoints`), :func:`shift_changepoints` marks where the
score's level starts and stops moving: a fault's transition into its steady
state and the recovery out of it show as a run of rows whose recent mean
score differs from the mean just before by more than a ratio; the edges of
that run are the changepoints. Pure functions of an alarm and its scores;
nothing here is part of the exported model.

May import: numpy.
"""

from __future__ import annotations

import numpy as np

__all__ = ["alarm_changepoints", "onset_changepoints", "shift_changepoints"]


def alarm_changepoints(alarm: np.ndarray) -> np.ndarray:
    """Predicted changepoints from an alarm: its edges, the first row counting as its own value.

    >>> alarm_changepoints(np.array([1, 1, 0, 0, 1, 1])).tolist()
    [1, 0, 1, 0, 1, 0]
    """
    a = np.asarray(alarm).astype(np.int8)
    if a.size == 0:
        return a
    cp = np.abs(np.diff(a, prepend=a[:1]))
    cp[0] = a[0]
    return cp.astype(np.int8)


def onset_changepoints(state: np.ndarray, scores: np.ndarray, level: float, lookback: int) -> np.ndarray:
    """Changepoints of an abnormal state, each rising edge moved back to where its score left normal.

    A rising edge at ``i`` moves to the start of the run of scores above
    ``level`` (the normal score quantile) ending at ``i``: at most ``lookback``
    rows back, never onto the previous edge. An onset *location* estimated
    when the alarm rises, not an earlier alarm; falling edges stay.

    >>> state, scores = np.array([0, 0, 0, 0, 1, 1, 0]), np.array([0, 0, 2, 3, 4, 4, 0.0])
    >>> onset_changepoints(state, scores, 1.0, 5).tolist()
    [0, 0, 1, 0, 0, 0, 1]
    """
    cp = alarm_changepoints(state)
    edges = np.flatnonzero(cp)
    a = np.asarray(state).astype(np.int8)
    out = cp.copy()
    previous = -1
    for i in edges:
        if a[i] == 1 and i > 0:
            j = i
            while j - 1 > previous and i - (j - 1) <= lookback and scores[j - 1] > level:
                j -= 1
            out[i] = 0
            out[j] = 1
        previous = int(i)
    return out


def shift_changepoints(scores: np.ndarray, window: int, ratio: float, floor: float) -> np.ndarray:
    """Edges of the runs where the score's level is shifting: starts and ends of transitions.

    Row ``i`` is *shifting* when the mean score of rows ``(i - window, i]``
    and that of the ``window`` rows before differ by more than ``ratio``
    times (either way) and the larger of the two is above ``floor`` (below
    it, ratios of small noisy scores mean nothing). Each row depends on
    earlier rows only. The rising and falling edges of *shifting* are the
    changepoints; rows before ``2 * window`` are never shifting.

    Args:
        scores: one file's scores, oldest first (any offset already added: they must be positive
            where they matter, a mean ``<= 0`` counts as ``floor``).
        window: rows per mean (``>= 1``).
        ratio: the level change that counts (``> 1``).
        floor: the level (e.g. a fraction of the alarm threshold) below which nothing is a shift.

    >>> s = np.array([1.0] * 6 + [10.0] * 8)
    >>> shift_changepoints(s, 2, 3.0, 2.0).tolist()
    [0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
    """
    s = np.asarray(scores, dtype=np.float64)
    n = s.size
    out = np.zeros(n, dtype=np.int8)
    if window < 1 or n < 2 * window + 1:
        return out
    csum = np.concatenate([[0.0], np.cumsum(s)])
    i = np.arange(2 * window - 1, n)
    recent = (csum[i + 1] - csum[i + 1 - window]) / window
    before = (csum[i + 1 - window] - csum[i + 1 - 2 * window]) / window
    hi = np.maximum(np.maximum(recent, before), floor)
    lo = np.maximum(np.minimum(recent, before), floor)
    shifting = np.zeros(n, dtype=np.int8)
    shifting[i] = ((hi > floor) & (hi > ratio * lo)).astype(np.int8)
    out[1:] = np.abs(np.diff(shifting)).astype(np.int8)
    return out
