"""Drift on the device: PSI per sensor against the bundle's decile bins, and a change test on scores.

Owns the drift decisions the agent makes locally, as pure numpy code with no
I/O: :func:`psi` and the sliding-window :class:`PsiWindow` compare live
sensor values with the reference quantiles of the device's calibration
(``BundleCalibration.quantiles``: per sensor, the deciles of its normal period,
11 values from minimum to maximum); :class:`PageHinkley` watches the score
stream for a sustained shift (:class:`Cusum` is the alternative; both in ``_change.py``, re-exported
here); :class:`DriftMonitor` combines both and says
when to publish a compact :class:`DriftReport` (no raw data).

May import: the standard library, numpy and ``pumpops.errors`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pumpops.edge._change import Cusum, PageHinkley
from pumpops.edge._shift import _MIN_ROWS as _MIN_REFERENCE_ROWS
from pumpops.edge._shift import SensorShift, ShiftJudge, ShiftTest
from pumpops.errors import ConfigError, InputError

__all__ = [
    "Cusum",
    "DriftMonitor",
    "DriftReport",
    "PageHinkley",
    "PsiWindow",
    "psi",
    "reference_bins",
]

#: Floor on bin proportions so an empty bin gives a large but finite PSI term.
PSI_EPS = 1e-4


def reference_bins(quantiles: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Bin edges and expected proportions of one sensor from its reference quantiles.

    The quantiles are ``m`` values at evenly spaced levels from 0 to 1 (the
    bundle stores deciles, ``m = 11``). The inner values are the bin edges;
    the outer bins are open-ended, so a live value beyond the reference range
    still lands in a bin. Repeated values (a sensor that sat still) are merged,
    and the merged bin expects the mass of all the levels it covers.

    Args:
        quantiles: the ``m >= 3`` reference quantiles, non-decreasing.

    Returns:
        ``(edges, expected)``: ``k`` inner edges, ``k + 1`` expected proportions summing to 1.
        A value ``x`` falls in bin ``searchsorted(edges, x, side="left")``, i.e. bins are
        ``(-inf, e1], (e1, e2], ..., (ek, inf)``.

    Raises:
        InputError: fewer than 3 quantiles, non-finite or decreasing values.

    >>> edges, expected = reference_bins([0, 1, 2, 3, 4])
    >>> edges.tolist(), expected.tolist()
    ([1.0, 2.0, 3.0], [0.25, 0.25, 0.25, 0.25])
    >>> reference_bins([5, 5, 5])[1].tolist()
    [1.0, 0.0]
    """
    q = np.asarray(quantiles, dtype=np.float64)
    if q.ndim != 1 or q.size < 3 or not np.all(np.isfinite(q)) or np.any(np.diff(q) < 0):
        raise InputError("reference quantiles must be >= 3 finite, non-decreasing values")
    levels = np.linspace(0.0, 1.0, q.size)
    edges = np.unique(q[1:-1])
    # Cumulative mass at each edge: the highest level whose quantile equals it.
    cdf = np.array([levels[q == e].max() for e in edges])
    expected = np.diff(np.concatenate([[0.0], cdf, [1.0]]))
    return edges, expected


def psi(actual_counts: ArrayLike, expected: ArrayLike, eps: float = PSI_EPS) -> float:
    """Population stability index of observed bin counts against expected proportions.

    ``PSI = sum((a - e) * ln(a / e))`` over bins, with both proportions floored
    at ``eps``. Rules of thumb: below 0.1 stable, 0.1-0.25 moderate, above 0.25
    a significant shift. With ``n`` live values in ``k`` bins, sampling noise
    alone gives about ``(k - 1) / n`` (0.02 for 10 bins and 500 values).

    Args:
        actual_counts: live counts per bin.
        expected: reference proportions per bin (summing to 1).
        eps: floor on proportions.

    Returns:
        The PSI (0 when there are no live values).

    >>> psi([10, 10, 10, 10], [0.25, 0.25, 0.25, 0.25])
    0.0
    >>> round(psi([40, 0, 0, 0], [0.25, 0.25, 0.25, 0.25]), 2)
    6.91
    """
    counts = np.asarray(actual_counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return 0.0
    a = np.maximum(counts / total, eps)
    e = np.maximum(np.asarray(expected, dtype=np.float64), eps)
    return float(np.sum((a - e) * np.log(a / e)))


class PsiWindow:
    """Per-sensor PSI over the last ``window_rows`` live rows, updated in O(sensors) per row.

    Keeps only bin indices (not values) in a ring buffer, and the bin counts.
    Missing values (NaN) are skipped for that sensor.

    Args:
        quantiles: per sensor, its reference quantiles (shape ``(S, m)``).
        window_rows: rows in the sliding window.

    >>> w = PsiWindow([[0, 1, 2, 3, 4]], window_rows=4)
    >>> for x in (0.5, 1.5, 2.5, 3.5):
    ...     w.update([x])
    >>> w.psi().tolist(), w.counts()
    ([0.0], [4])
    """

    def __init__(self, quantiles: ArrayLike, window_rows: int) -> None:
        if window_rows < 1:
            raise ConfigError(f"window_rows must be >= 1, got {window_rows}")
        q = np.asarray(quantiles, dtype=np.float64)
        if q.ndim != 2 or q.shape[0] < 1:
            raise InputError(f"reference quantiles must have shape (sensors, m), got {q.shape}")
        bins = [reference_bins(row) for row in q]
        self.n_sensors = q.shape[0]
        self.window_rows = window_rows
        self._edges = [b[0] for b in bins]
        self._expected = [b[1] for b in bins]
        self._counts = [np.zeros(b[1].size, dtype=np.int64) for b in bins]
        self._ring = np.full((window_rows, self.n_sensors), -1, dtype=np.int16)  # -1: no value
        self._pos = 0

    def update(self, row: ArrayLike) -> None:
        """Add one live row (one value per sensor, NaN for missing), evicting the oldest."""
        x = np.asarray(row, dtype=np.float64)
        if x.shape != (self.n_sensors,):
            raise InputError(f"a row needs {self.n_sensors} values, got shape {x.shape}")
        old = self._ring[self._pos]
        for s in range(self.n_sensors):
            if old[s] >= 0:
                self._counts[s][old[s]] -= 1
            if np.isnan(x[s]):
                new = -1
            else:
                new = int(np.searchsorted(self._edges[s], x[s], side="left"))
                self._counts[s][new] += 1
            self._ring[self._pos, s] = new
        self._pos = (self._pos + 1) % self.window_rows

    def counts(self) -> list[int]:
        """Live values in the window, per sensor."""
        return [int(c.sum()) for c in self._counts]

    def psi(self) -> NDArray[np.float64]:
        """PSI per sensor over the current window."""
        return np.array([psi(c, e) for c, e in zip(self._counts, self._expected, strict=True)])


@dataclass(frozen=True)
class DriftReport:
    """A compact drift summary for the hub: statistics only, never raw data.

    Attributes:
        rows: rows seen since the monitor started.
        scores: scores seen since the monitor started.
        window_counts: live values per sensor in the PSI window.
        psi: PSI per sensor name (None while the window holds fewer than ``psi_min_rows``).
        psi_alert: the PSI threshold.
        drifted: sensors whose PSI exceeds ``psi_alert``.
        change_fired: the score change test fired since the previous report.
        change_detections: times the change test fired since the monitor started.
        change_statistic: the change test's current statistic.
        reason: ``schedule`` or ``change``.
        shift: per sensor, the :class:`ShiftTest` answer on the last window (empty without a shift test).
        shifted: sensors the shift test fired on (or held: see :class:`ShiftJudge`).
        since_ms: per shifted sensor, the time (or row count without times) of the first report
            in the current run of reports that fired on it.
        hint: the :class:`ShiftJudge`'s word: ``none``; ``new_shift`` (not yet confirmed);
            ``sensor_shift`` (a few sensors stayed shifted: recalibrate the device);
            ``operating_shift`` (many sensors stayed shifted); ``fault_like`` (the change grew
            between reports or made a sensor noisier: an alarm, not drift); ``""`` without a shift test.
        score_ratio: median of the window's scores over the score unit (None: no scores).
        confirmed: shifted sensors confirmed by consecutive reports.
        fault_signs: why the run is fault-like.
        weather: temperature sensors the shift test fired on that the judge put down to the
            daily weather (not in ``shifted``; the hub leaves their ``z`` out of its pooling).
    """

    rows: int
    scores: int
    window_counts: dict[str, int]
    psi: dict[str, float | None]
    psi_alert: float
    drifted: tuple[str, ...]
    change_fired: bool
    change_detections: int
    change_statistic: float
    reason: Literal["schedule", "change"]
    shift: dict[str, SensorShift] = field(default_factory=dict)
    shifted: tuple[str, ...] = ()
    since_ms: dict[str, int] = field(default_factory=dict)
    hint: str = ""
    score_ratio: float | None = None
    confirmed: tuple[str, ...] = ()
    fault_signs: tuple[str, ...] = ()
    weather: tuple[str, ...] = ()

    @property
    def alert(self) -> bool:
        """Drift: with a shift test, a confirmed shift that is not fault-like; else PSI or the change test."""
        if self.hint:
            return self.hint in ("sensor_shift", "operating_shift")
        return bool(self.drifted) or self.change_fired

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (PSI rounded to 4 decimals).

        Compact: the shift test's full answer (``shift``) only for the shifted sensors;
        every tested sensor's shift in reference sd in ``shift_sd`` and its test statistic in ``z``
        (None: not tested; the hub pools ``z`` across a group).
        """
        return {
            "rows": self.rows,
            "scores": self.scores,
            "window_counts": dict(self.window_counts),
            "psi": {k: (None if v is None else round(v, 4)) for k, v in self.psi.items()},
            "psi_alert": self.psi_alert,
            "drifted": list(self.drifted),
            "change": {
                "fired": self.change_fired,
                "detections": self.change_detections,
                "statistic": round(self.change_statistic, 4),
            },
            "alert": self.alert,
            "reason": self.reason,
            "shift": {k: v.to_dict() for k, v in self.shift.items() if k in self.shifted},
            "shift_sd": {k: v.to_dict()["shift_sd"] for k, v in self.shift.items()},
            "z": {k: v.to_dict()["t"] for k, v in self.shift.items()},
            "shifted": list(self.shifted),
            "confirmed": list(self.confirmed),
            "since_ms": dict(self.since_ms),
            "hint": self.hint,
            "fault_signs": list(self.fault_signs),
            "weather": list(self.weather),
            "score_ratio": None if self.score_ratio is None else round(self.score_ratio, 4),
        }


class DriftMonitor:
    """PSI per sensor plus a change test on scores; says when a drift report is due.

    Args:
        sensors: sensor names, in row order.
        quantiles: per sensor, its reference quantiles (the calibration's deciles).
        window_rows: rows in the PSI sliding window.
        report_every_rows: a scheduled report every this many rows.
        psi_alert: PSI above which a sensor counts as drifted (0.25: a significant shift).
        psi_min_rows: PSI is reported only once the window holds this many values.
        score_unit: scores are divided by this before the change test (pass the
            alarm threshold so the test's parameters are in units of it).
        change_test: the sequential test on scores (default ``PageHinkley()``; or a :class:`Cusum`).
        shift_test: the per-sensor :class:`ShiftTest` run on the last ``shift_test.window_rows``
            rows at every report (None: PSI and the change test only, as before).
        few_sensors: at most this many shifted sensors is a ``sensor_shift`` (default ``max(1, S // 4)``).
        shift_judge: what a run of shift reports means (default ``ShiftJudge(few_sensors=few_sensors,
            confirm_s=shift_confirm_s)``).
        shift_confirm_s: the default judge's ``confirm_s`` (seconds a shift must stand before it is drift).
        gather_reference: without a ``shift_test``, gather this many complete rows (no NaN) first and
            build ``ShiftTest(sensors, rows, window_rows=shift_window_rows, alpha=shift_alpha)`` on
            them (a device calibrated from a bundle has no normal rows of its own to start from);
            0: no gathering.
        on_reference: called once with the gathered rows (the agent keeps them across restarts).

    >>> rng = np.random.default_rng(0)
    >>> deciles = np.quantile(rng.normal(0, 1, (2000, 2)), np.linspace(0, 1, 11), axis=0).T
    >>> mon = DriftMonitor(["p", "t"], deciles, window_rows=300, report_every_rows=300)
    >>> reports = [mon.update(row + [0.0, 2.0], 0.3) for row in rng.normal(0, 1, (300, 2))]
    >>> reports[-1].drifted, reports[-1].change_fired
    (('t',), False)
    """

    def __init__(
        self,
        sensors: list[str] | tuple[str, ...],
        quantiles: ArrayLike,
        *,
        window_rows: int = 500,
        report_every_rows: int = 3600,
        psi_alert: float = 0.25,
        psi_min_rows: int = 100,
        score_unit: float = 1.0,
        change_test: PageHinkley | Cusum | None = None,
        shift_test: ShiftTest | None = None,
        few_sensors: int | None = None,
        shift_judge: ShiftJudge | None = None,
        gather_reference: int = 0,
        shift_window_rows: int = 500,
        shift_alpha: float = 0.01,
        on_reference: Callable[[NDArray[np.float64]], None] | None = None,
        shift_confirm_s: float = 0.0,
    ) -> None:
        self.sensors = tuple(sensors)
        self._window = PsiWindow(quantiles, window_rows)
        if self._window.n_sensors != len(self.sensors):
            raise InputError(f"{len(self.sensors)} sensors but {self._window.n_sensors} rows of quantiles")
        if report_every_rows < 1 or psi_alert <= 0 or score_unit <= 0 or psi_min_rows < 1:
            raise ConfigError("need report_every_rows >= 1, psi_alert > 0, score_unit > 0, psi_min_rows >= 1")
        self.report_every_rows = report_every_rows
        self.psi_alert = psi_alert
        self.psi_min_rows = psi_min_rows
        self.score_unit = score_unit
        self.change_test: PageHinkley | Cusum = change_test if change_test is not None else PageHinkley()
        self.rows = 0
        self.scores = 0
        self._fired = False
        if shift_test is not None and shift_test.sensors != self.sensors:
            raise InputError(f"the shift test's sensors {shift_test.sensors} are not {self.sensors}")
        self.shift_test = shift_test
        self.few_sensors = few_sensors if few_sensors is not None else max(1, len(self.sensors) // 4)
        if self.few_sensors < 1:
            raise ConfigError(f"few_sensors must be >= 1, got {few_sensors}")
        self.shift_judge = (
            shift_judge
            if shift_judge is not None
            else ShiftJudge(few_sensors=self.few_sensors, confirm_s=shift_confirm_s)
        )
        self._since: dict[str, int] = {}
        self._ts_ms: int | None = None
        self._gather: NDArray[np.float64] | None = None
        self._gathered = 0
        self._gather_args = (shift_window_rows, shift_alpha)
        self._on_reference = on_reference
        if shift_test is None and gather_reference > 0:
            still = np.zeros((_MIN_REFERENCE_ROWS, len(self.sensors)))  # the settings are checked now
            ShiftTest(self.sensors, still, window_rows=shift_window_rows, alpha=shift_alpha)
            self._gather = np.empty((max(gather_reference, _MIN_REFERENCE_ROWS), len(self.sensors)))
        self._start_shift_window()

    def _start_shift_window(self) -> None:
        n = self.shift_test.window_rows if self.shift_test is not None else 1
        self._raw = np.full((n, len(self.sensors)), np.nan)
        self._raw_scores = np.full(n, np.nan)
        self._raw_rows = 0

    @property
    def reference_progress(self) -> tuple[int, int] | None:
        """``(rows gathered, rows needed)`` while the shift test's reference is being gathered, else None."""
        return None if self._gather is None else (self._gathered, self._gather.shape[0])

    def _gather_row(self, row: ArrayLike) -> None:
        assert self._gather is not None
        x = np.asarray(row, dtype=np.float64)
        if x.shape != (len(self.sensors),) or not np.all(np.isfinite(x)):
            return  # a reference row is complete
        self._gather[self._gathered] = x
        self._gathered += 1
        if self._gathered < self._gather.shape[0]:
            return
        rows, self._gather = self._gather, None
        window_rows, alpha = self._gather_args
        try:
            self.shift_test = ShiftTest(self.sensors, rows, window_rows=window_rows, alpha=alpha)
        except InputError:
            self._gather, self._gathered = np.empty_like(rows), 0  # e.g. a sensor never moved: start again
            return
        self._start_shift_window()
        if self._on_reference is not None:
            self._on_reference(rows)

    def update(
        self, row: ArrayLike, score: float | None = None, ts_ms: int | None = None
    ) -> DriftReport | None:
        """Feed one row of sensor values (and its score, if the model scored it; its time, if known).

        Returns:
            A report when one is due (every ``report_every_rows`` rows, or at once
            when the change test fires), else None.
        """
        self._window.update(row)
        if self._gather is not None:
            self._gather_row(row)
        elif self.shift_test is not None:
            i = self._raw_rows % self._raw.shape[0]
            self._raw[i] = np.asarray(row, dtype=np.float64)
            self._raw_scores[i] = np.nan if score is None else float(score) / self.score_unit
            self._raw_rows += 1
        self._ts_ms = ts_ms
        self.rows += 1
        fired_now = False
        if score is not None:
            self.scores += 1
            fired_now = self.change_test.update(float(score) / self.score_unit)
            self._fired = self._fired or fired_now
        if fired_now:
            return self.report("change")
        if self.rows % self.report_every_rows == 0:
            return self.report("schedule")
        return None

    def report(self, reason: Literal["schedule", "change"] = "schedule") -> DriftReport:
        """The current report (resets the "fired since last report" flag)."""
        counts = self._window.counts()
        values = self._window.psi()
        psi_by: dict[str, float | None] = {
            name: (float(v) if n >= self.psi_min_rows else None)
            for name, v, n in zip(self.sensors, values, counts, strict=True)
        }
        drifted = tuple(name for name, v in psi_by.items() if v is not None and v > self.psi_alert)
        fired, self._fired = self._fired, False
        now = self._ts_ms if self._ts_ms is not None else self.rows
        shift, hint, ratio = self._shift()
        shifted: tuple[str, ...] = ()
        confirmed: tuple[str, ...] = ()
        signs: tuple[str, ...] = ()
        weather: tuple[str, ...] = ()
        if hint and shift:
            # The weather rule needs seconds: the report's time, or a row a second (the agent's grid).
            now_s = self._ts_ms / 1000.0 if self._ts_ms is not None else float(self.rows)
            verdict = self.shift_judge.judge(list(shift.values()), now, now_s=now_s)
            shifted, confirmed, hint, signs, weather = (
                verdict.shifted,
                verdict.confirmed,
                verdict.hint,
                verdict.fault_signs,
                verdict.weather,
            )
            self._since = dict(verdict.since)
        return DriftReport(
            rows=self.rows,
            scores=self.scores,
            window_counts=dict(zip(self.sensors, counts, strict=True)),
            psi=psi_by,
            psi_alert=self.psi_alert,
            drifted=drifted,
            change_fired=fired,
            change_detections=self.change_test.detections,
            change_statistic=float(self.change_test.statistic),
            reason=reason,
            shift=shift,
            shifted=shifted,
            since_ms={k: v for k, v in self._since.items() if k in shifted},
            hint=hint,
            score_ratio=ratio,
            confirmed=confirmed,
            fault_signs=signs,
            weather=weather,
        )

    def _shift(self) -> tuple[dict[str, SensorShift], str, float | None]:
        """The shift test on the last window (empty until it is full), ``none``, the median score ratio.

        The model's score is evidence the hub weighs (a change of one pump's own that its
        model alarms on); the device's word comes from the pattern of the shift alone
        (:class:`ShiftJudge`), because a stale model alarms on benign drift too.
        """
        if self.shift_test is None:
            return {}, "", None  # no shift test, or its reference is still being gathered
        scores = self._raw_scores[np.isfinite(self._raw_scores)]
        ratio = float(np.median(scores)) if scores.size else None
        if self._raw_rows < self._raw.shape[0]:
            return {}, "none", ratio  # the first window is not full yet
        return {s.sensor: s for s in self.shift_test.test(self._raw)}, "none", ratio
