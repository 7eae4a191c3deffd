"""Change tests on the score stream: Page–Hinkley and a tabular CUSUM (the drift monitor's second test).

Pure numpy, no I/O; :class:`pumpops.edge.DriftMonitor` feeds them each score
divided by the alarm threshold. Split from ``_drift.py`` (file length).

May import: the standard library, numpy and ``pumpops.errors`` only.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from pumpops.errors import ConfigError

__all__ = ["Cusum", "PageHinkley"]


class PageHinkley:
    """Page–Hinkley test for a sustained shift in the mean of a stream.

    For each value ``x_t`` with running mean ``m_t``, the upward statistic is
    ``U_t = alpha * U_{t-1} + (x_t - m_t - delta)`` and the test fires when
    ``U_t - min(U) > threshold``; the downward one mirrors it. After firing it
    restarts from scratch. Parameters are in the units of the stream (the
    :class:`DriftMonitor` divides scores by the alarm threshold first).

    Args:
        delta: magnitude of change tolerated (allowance per step).
        threshold: detection threshold (``lambda``); larger means fewer false alarms, more delay.
        alpha: forgetting factor on the cumulative sums (1 = none).
        min_instances: values seen before the test may fire.
        mode: ``up`` (scores rising: the usual degradation), or ``both``.

    >>> rng = np.random.default_rng(7)
    >>> stream = np.concatenate([rng.normal(0.3, 0.05, 500), rng.normal(0.8, 0.05, 200)])
    >>> ph = PageHinkley(delta=0.05, threshold=5.0)
    >>> [i for i, x in enumerate(stream) if ph.update(float(x))]
    [511]
    """

    def __init__(
        self,
        delta: float = 0.05,
        threshold: float = 5.0,
        alpha: float = 1.0,
        min_instances: int = 30,
        mode: Literal["up", "both"] = "up",
    ) -> None:
        if delta < 0 or threshold <= 0 or not 0 < alpha <= 1 or min_instances < 1:
            raise ConfigError(
                "PageHinkley needs delta >= 0, threshold > 0, 0 < alpha <= 1, min_instances >= 1"
            )
        if mode not in ("up", "both"):
            raise ConfigError(f"mode must be 'up' or 'both', got {mode!r}")
        self.delta = delta
        self.threshold = threshold
        self.alpha = alpha
        self.min_instances = min_instances
        self.mode = mode
        self.detections = 0
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self._mean = 0.0
        self._up = 0.0
        self._up_min = 0.0
        self._down = 0.0
        self._down_max = 0.0

    @property
    def statistic(self) -> float:
        """The current test statistic (compare with ``threshold``)."""
        up = self._up - self._up_min
        return max(up, self._down_max - self._down) if self.mode == "both" else up

    def update(self, x: float) -> bool:
        """Feed one value; True if the test fires on it (then it restarts)."""
        if not np.isfinite(x):
            return False
        self.n += 1
        self._mean += (x - self._mean) / self.n
        dev = x - self._mean
        self._up = self.alpha * self._up + dev - self.delta
        self._up_min = min(self._up_min, self._up)
        self._down = self.alpha * self._down + dev + self.delta
        self._down_max = max(self._down_max, self._down)
        if self.n >= self.min_instances and self.statistic > self.threshold:
            self.detections += 1
            self._reset()
            return True
        return False


class Cusum:
    """Tabular CUSUM on a standardised stream, the reference mean and spread learnt from a warm-up.

    The first ``warmup`` values estimate the in-control mean ``mu`` and standard
    deviation ``sigma``; then with ``z_t = (x_t - mu) / sigma`` the upward sum
    is ``G_t = max(0, G_{t-1} + z_t - delta)`` (the downward one mirrors it) and
    the test fires when ``G_t > threshold``. After firing it restarts, warm-up
    included. Parameters are in standard deviations of the warm-up, so they do
    not depend on the score's units.

    Args:
        delta: allowance ``k`` (half the shift to detect, in sd; 0.5 detects a 1 sd shift).
        threshold: decision interval ``h`` in sd. The textbook 4-5 assumes a
            known reference; learnt from a warm-up it false-alarms every few
            hundred values, so the default is 12 (0 false alarms in 300 000
            stationary values, a 2 sd step found within 11 values).
        warmup: values used to learn the reference.
        mode: ``up`` or ``both``.

    >>> rng = np.random.default_rng(3)
    >>> stream = np.concatenate([rng.normal(0.3, 0.05, 300), rng.normal(0.4, 0.05, 100)])
    >>> cs = Cusum(delta=0.5, threshold=5.0, warmup=100)
    >>> [i for i, x in enumerate(stream) if cs.update(float(x))]
    [306]
    """

    def __init__(
        self,
        delta: float = 0.5,
        threshold: float = 12.0,
        warmup: int = 300,
        mode: Literal["up", "both"] = "up",
    ) -> None:
        if delta < 0 or threshold <= 0 or warmup < 2:
            raise ConfigError("Cusum needs delta >= 0, threshold > 0, warmup >= 2")
        if mode not in ("up", "both"):
            raise ConfigError(f"mode must be 'up' or 'both', got {mode!r}")
        self.delta = delta
        self.threshold = threshold
        self.warmup = warmup
        self.mode = mode
        self.detections = 0
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self._sum = 0.0
        self._sumsq = 0.0
        self._mu = 0.0
        self._sigma = 0.0
        self._up = 0.0
        self._down = 0.0

    @property
    def statistic(self) -> float:
        """The current CUSUM statistic in sd (compare with ``threshold``)."""
        return max(self._up, self._down) if self.mode == "both" else self._up

    def update(self, x: float) -> bool:
        """Feed one value; True if the test fires on it (then it restarts)."""
        if not np.isfinite(x):
            return False
        self.n += 1
        if self.n <= self.warmup:
            self._sum += x
            self._sumsq += x * x
            if self.n == self.warmup:
                self._mu = self._sum / self.n
                var = max(self._sumsq / self.n - self._mu**2, 0.0) * self.n / (self.n - 1)
                # A flat warm-up would make every later wiggle infinite: floor the spread.
                self._sigma = max(float(np.sqrt(var)), 1e-9 * max(1.0, abs(self._mu)))
            return False
        z = (x - self._mu) / self._sigma
        self._up = max(0.0, self._up + z - self.delta)
        self._down = max(0.0, self._down - z - self.delta)
        if self.statistic > self.threshold:
            self.detections += 1
            self._reset()
            return True
        return False
