"""Jittered exponential backoff: the delay before the next try after a failure (pure, no I/O)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff", "backoff_delay"]


def backoff_delay(attempt: int, min_s: float, max_s: float, u: float) -> float:
    """The delay before retry number ``attempt`` (0-based): jittered exponential backoff.

    The ceiling doubles from ``min_s`` up to ``max_s``; the delay is drawn in
    the upper half of the ceiling (``u`` in ``[0, 1)`` picks where), so
    workers that failed together do not retry together, yet no delay is
    shorter than ``min_s``.

    >>> [backoff_delay(a, 0.5, 30.0, 1.0) for a in range(8)]  # the ceilings
    [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    >>> [backoff_delay(a, 0.5, 30.0, 0.0) for a in range(8)]  # the shortest draws
    [0.5, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]
    """
    ceiling = min(max_s, min_s * 2.0 ** min(attempt, 62))
    floor = max(min_s, ceiling / 2.0)
    return floor + (ceiling - floor) * u


@dataclass(slots=True)
class Backoff:
    """Stateful :func:`backoff_delay`: :meth:`next_delay` per failure, :meth:`reset` on success.

    Attributes:
        min_s: the first delay, seconds.
        max_s: the largest delay, seconds.
        rng: the jitter source (seed it in tests).
        attempt: failures since the last success.

    >>> b = Backoff(1.0, 8.0, random.Random(0))
    >>> [round(b.next_delay(), 2) for _ in range(5)]
    [1.0, 1.76, 2.84, 5.04, 6.05]
    """

    min_s: float
    max_s: float
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """Return the delay before the next try, and count the failure."""
        delay = backoff_delay(self.attempt, self.min_s, self.max_s, self.rng.random())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Forget past failures."""
        self.attempt = 0
