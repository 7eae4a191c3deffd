"""Server-side downsampling of a time series to a point budget: min and max per time bucket (pure).

A chart of 86,400 readings on a 1,000-pixel axis shows at most ~2,000 distinct
points; sending the rest costs bandwidth and browser time and shows nothing.
:func:`minmax` splits the time range into ``budget // 2`` equal buckets and keeps,
in time order, each bucket's lowest and highest reading: spikes (what an
operator looks for) survive, unlike with averaging. Fewer readings than the
budget are returned as they are.
May import: numpy.
"""

from __future__ import annotations

import numpy as np

__all__ = ["minmax"]


def minmax(ts_us: np.ndarray, values: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most ``budget`` points: each time bucket's minimum and maximum, in time order.

    Args:
        ts_us: sorted timestamps (int64 µs), shape ``(M,)``.
        values: readings, shape ``(M,)``; NaN readings are dropped first.
        budget: the most points returned (at least 2).

    Returns:
        ``(ts_us, values)`` of the kept points, sorted by time.

    >>> ts = np.arange(10, dtype=np.int64)
    >>> v = np.array([0, 5, 1, 1, 9, 1, 1, -3, 1, 1], dtype=float)
    >>> t2, v2 = minmax(ts, v, 4)
    >>> t2.tolist(), v2.tolist()
    ([0, 4, 5, 7], [0.0, 9.0, 1.0, -3.0])
    >>> minmax(ts[:3], v[:3], 4)[1].tolist()
    [0.0, 5.0, 1.0]
    """
    if budget < 2:
        raise ValueError("a point budget is at least 2")
    keep = ~np.isnan(values)
    ts_us, values = ts_us[keep], values[keep]
    if len(ts_us) <= budget:
        return ts_us, values
    buckets = budget // 2
    start, end = int(ts_us[0]), int(ts_us[-1]) + 1
    # Integer arithmetic, the same formula as the store's SQL (``query_minmax``).
    bucket = (ts_us.astype(np.int64) - start) * buckets // (end - start)
    bounds = np.flatnonzero(np.diff(bucket)) + 1
    starts = np.concatenate(([0], bounds))
    stops = np.concatenate((bounds, [len(ts_us)]))
    picks: list[int] = []
    for lo, hi in zip(starts.tolist(), stops.tolist(), strict=True):
        chunk = values[lo:hi]
        first, second = sorted((lo + int(np.argmin(chunk)), lo + int(np.argmax(chunk))))
        picks.append(first)
        if second != first:
            picks.append(second)
    index = np.asarray(picks, dtype=np.int64)
    return ts_us[index], values[index]
