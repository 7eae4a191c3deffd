"""A per-sensor shift test of a live window against normal reference rows, with a known false-alarm rate.

Owns :class:`ShiftTest` (mean and spread per sensor, autocorrelation taken into
account, Holm-corrected across sensors), :class:`SensorShift` (one sensor's
answer) and :class:`ShiftJudge` (what a run of reports means: a level shift that
stays is drift, a change that grows or makes a sensor noisier is fault-like).
Pure numpy and :mod:`math`, no I/O; :class:`pumpops.edge.DriftMonitor` drives
them once per drift report.

May import: the standard library, numpy and ``pumpops.errors`` only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pumpops.errors import ConfigError, InputError

__all__ = ["SensorShift", "ShiftJudge", "ShiftTest", "ShiftVerdict"]


# ---------------------------------------------------------------- shift test with a known false-alarm rate
#: Lags whose autocorrelation sets a sensor's persistence (the largest ``acf(k) ** (1 / k)``):
#: a slow process under fast sensor noise has a small lag-1 but a large lag-16 autocorrelation.
#: A long lag counts only when its autocorrelation is above 4x its noise under the lag-1 AR(1).
#: Longer lags (x4 up to an eighth of the reference) catch slower components, such as a motor
#: temperature's lag of tens of minutes behind its current.
_ACF_LAGS = (1, 4, 16, 64, 256, 1024, 4096)
_MIN_ROWS = 4 * 64 + 1  # the shortest reference: lags up to 64
_PHI_MAX = 0.9999  # persistence is capped: beyond it a window holds no evidence at all


def _ar1_factor(phi: float, n: int) -> float:
    """``n · Var(mean of n values) / σ²`` for an AR(1) process with coefficient ``phi``.

    >>> _ar1_factor(0.0, 100), round(_ar1_factor(0.9, 10_000), 1)
    (1.0, 19.0)
    """
    if phi <= 0.0:
        return 1.0
    return (1 + phi) / (1 - phi) - 2 * phi * (1 - phi**n) / (n * (1 - phi) ** 2)


def _t_to_p(t: float, dof: float) -> float:
    """Two-sided p-value of Student's t with ``dof`` degrees of freedom (Wallace's normal transform)."""
    z = math.sqrt(max(dof - 0.5, 0.5) * math.log1p(t * t / dof))
    return math.erfc(z / math.sqrt(2.0))


@dataclass(frozen=True)
class SensorShift:
    """One sensor's live window against its reference.

    Attributes:
        sensor: the sensor's name.
        shift_sd: window mean minus reference mean, in reference standard deviations.
        shift: the same in the sensor's units (SI on the device).
        spread_ratio: window spread over the spread a stationary window of that length has (1 = same).
        p_mean, p_spread: two-sided p-values of the mean and spread tests (None: too few values).
        fired: rejected by Holm's procedure over all sensors' tests at the test's ``alpha``.
        noise_ratio: the window's spread around its own straight-line trend over what a
            stationary window has (a level shift or a slow ramp leaves it near 1; a sensor
            that got noisier raises it).
        noisier: ``noise_ratio`` is at least the test's ``noisier_ratio`` and significant
            (one-sided, Bonferroni over sensors at ``alpha``): a fault sign, not a level shift.
        t: the mean test's statistic (shift over its standard error, autocorrelation included):
            the hub pools it across a group's pumps to find a shift too small for one pump's test.
    """

    sensor: str
    shift_sd: float
    shift: float
    spread_ratio: float
    p_mean: float | None
    p_spread: float | None
    fired: bool
    noise_ratio: float = math.nan
    noisier: bool = False
    t: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (4 significant digits; a figure that was not measured is None, never NaN)."""
        return {"shift_sd": _round(self.shift_sd), "shift": _round(self.shift),
                "spread_ratio": _round(self.spread_ratio), "p_mean": _round(self.p_mean),
                "p_spread": _round(self.p_spread), "fired": self.fired,
                "noise_ratio": _round(self.noise_ratio), "noisier": self.noisier,
                "t": _round(self.t)}  # fmt: skip


def _round(value: float | None) -> float | None:
    """4 significant digits; None for a missing or non-finite figure.

    >>> _round(123456.0), _round(float("nan")), _round(None)
    (123500.0, None, None)
    """
    return None if value is None or not math.isfinite(value) else float(f"{value:.4g}")


class ShiftTest:
    """Mean and spread of a live window per sensor against a normal reference, autocorrelation included.

    PSI of a short live window against hours of reference fires on every
    healthy pump: slow signals make the window's values anything but
    independent. This test models each sensor of the reference as AR(1)
    (persistence ``phi`` from the largest ``acf(k) ** (1/k)``, lag-bias corrected
    upwards), so the variance of a window mean is ``σ²·f(W)/W`` instead of
    ``σ²/W`` (``f`` = :func:`_ar1_factor`: about 200 for ``phi`` 0.99), and
    the reference's own uncertainty is added. The mean test is a t test with
    the reference's effective degrees of freedom; the spread test compares the
    window's variance with what a stationary window of ``W`` values has
    (smaller than ``σ²`` when the signal is slow), on a log scale. The ``2·S``
    p-values are corrected together with Holm's procedure, so on stationary
    normal data a window fires with probability about ``alpha`` or less
    (measured in ``tests/edge/test_drift.py``, ``benchmarks/drift.py``).

    Args:
        sensors: sensor names, in column order.
        reference: normal rows, shape ``(N, S)`` (N ≥ 4·64 + 1; NaN allowed).
        window_rows: rows in the live window the test will see.
        alpha: false-alarm probability per tested window (0 < alpha < 0.5).
        noisier_ratio: a sensor whose detrended spread is at least this many times a stationary
            window's (and significantly so) is ``noisier`` (a fault sign; > 1).

    Raises:
        InputError: a reference of the wrong shape, too short, or a sensor without values.
        ConfigError: ``window_rows`` < 10 or ``alpha`` out of range.

    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal([10.0, 300.0], [1.0, 2.0], (2000, 2))
    >>> test = ShiftTest(["p", "t"], ref, window_rows=200)
    >>> [s.sensor for s in test.test(rng.normal([10.0, 303.0], [1.0, 2.0], (200, 2))) if s.fired]
    ['t']
    """

    def __init__(
        self,
        sensors: list[str] | tuple[str, ...],
        reference: ArrayLike,
        *,
        window_rows: int,
        alpha: float = 0.01,
        noisier_ratio: float = 1.5,
    ) -> None:
        ref = np.asarray(reference, dtype=np.float64)
        self.sensors = tuple(sensors)
        if ref.ndim != 2 or ref.shape[1] != len(self.sensors):
            raise InputError(f"the reference needs shape (rows, {len(self.sensors)}), got {ref.shape}")
        if ref.shape[0] < _MIN_ROWS:
            raise InputError(f"the reference needs at least {_MIN_ROWS} rows, got {ref.shape[0]}")
        if window_rows < 10 or not 0.0 < alpha < 0.5:
            raise ConfigError(
                f"ShiftTest needs window_rows >= 10 and 0 < alpha < 0.5, got {window_rows}, {alpha}"
            )
        if not noisier_ratio > 1.0:
            raise ConfigError(f"ShiftTest needs noisier_ratio > 1, got {noisier_ratio}")
        self.window_rows = window_rows
        self.alpha = alpha
        self.noisier_ratio = noisier_ratio
        stats = [self._fit(ref[:, s], self.sensors[s]) for s in range(ref.shape[1])]
        self.mean = np.array([m for m, _, _, _ in stats])
        self.sd = np.array([sd for _, sd, _, _ in stats])
        self.phi = np.array([phi for _, _, phi, _ in stats])
        self.rows = np.array([n for _, _, _, n in stats])
        #: Sensors that sat still in the reference (their spread is the floor).
        self.still = [bool(np.nanvar(ref[:, s]) == 0.0) for s in range(ref.shape[1])]

    @staticmethod
    def _fit(x: NDArray[np.float64], name: str) -> tuple[float, float, float, int]:
        x = x[np.isfinite(x)]
        n = x.size
        if n < _MIN_ROWS:
            raise InputError(f"sensor {name!r} has only {n} finite reference values")
        mean = float(x.mean())
        d = x - mean
        var = float(d @ d) / n
        phi = 0.0
        if var > 0:
            noise = 0.0
            for k in (k for k in _ACF_LAGS if k == 1 or 8 * k <= n):
                acf = float(d[:-k] @ d[k:]) / (n * var)
                if k == 1:
                    # Bartlett: an AR(1)'s sample autocorrelations wander by about this much (x 4).
                    p1 = min(max(acf, 0.0), _PHI_MAX)
                    noise = 4.0 * math.sqrt((1 + p1 * p1) / ((1 - p1 * p1) * n))
                # A long lag counts only above its noise: its k-th root would amplify noise.
                if acf > (0.0 if k == 1 else noise):
                    phi = max(phi, acf ** (1.0 / k))
            phi = min(phi + (1 + 3 * phi) / n, _PHI_MAX)  # the estimate's downward bias, undone
        # The reference's variance is about the process mean; correct its sample bias for slow signals.
        sigma2 = var * n / max(n - _ar1_factor(phi, n), 1.0)
        # A sensor that sat still: any movement is a change (a floor keeps the statistics finite).
        sd = max(math.sqrt(sigma2), 1e-9 * max(1.0, abs(mean)))
        return mean, sd, phi, n

    def _dof(self, s: int, n: int) -> float:
        # Effective count of n autocorrelated values: the smaller of the mean's and the variance's.
        phi = float(self.phi[s])
        return max(min(n / _ar1_factor(phi, n), n * (1 - phi * phi) / (1 + phi * phi)) - 1.0, 1.0)

    def detectable_shift_sd(self, power_z: float = 1.64) -> NDArray[np.float64]:
        """Per sensor, the mean shift (in reference sd) one full window finds with about 95 % power.

        The shift at which the t statistic clears the first (strictest) Holm level, ``alpha / 2S``,
        by ``power_z`` standard errors; a shift this size is found by the first report whose
        window lies wholly after its onset.
        """
        w, z = self.window_rows, _z_quantile(self.alpha / (4 * len(self.sensors)))
        out = []
        for s in range(len(self.sensors)):
            n, phi = int(self.rows[s]), float(self.phi[s])
            se = math.sqrt(_ar1_factor(phi, w) / w + _ar1_factor(phi, n) / n)
            dof = self._dof(s, n)
            t_crit = math.sqrt(dof * math.expm1(z * z / max(dof - 0.5, 0.5)))  # _t_to_p inverted
            out.append((t_crit + power_z) * se)
        return np.array(out)

    def test(self, window: ArrayLike) -> list[SensorShift]:
        """Test one live window, shape ``(W, S)`` (NaN allowed; a sensor with < W/2 values is not tested)."""
        x = np.asarray(window, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.sensors):
            raise InputError(f"a window needs shape (rows, {len(self.sensors)}), got {x.shape}")
        parts = []
        for s in range(len(self.sensors)):
            v = x[:, s][np.isfinite(x[:, s])]
            parts.append(self._sensor(s, v))
        pvals = [p for part in parts for p in part[3:5]]
        rejected = _holm([p for p in pvals if p is not None], self.alpha)
        out, i = [], 0
        for s, (shift, ratio, noise, p_mean, p_spread, t) in enumerate(parts):
            fired = False
            for p in (p_mean, p_spread):
                if p is not None:
                    fired, i = fired or rejected[i], i + 1
            noisier = noise is not None and noise[1] < self.alpha / len(self.sensors)
            noisier = noisier and noise is not None and noise[0] >= self.noisier_ratio
            out.append(
                SensorShift(
                    self.sensors[s],
                    shift / float(self.sd[s]),
                    shift,
                    ratio,
                    p_mean,
                    p_spread,
                    fired,
                    math.nan if noise is None else noise[0],
                    noisier,
                    t,
                )
            )
        return out

    def _noise(self, s: int, v: NDArray[np.float64]) -> tuple[float, float] | None:
        """The spread around the window's straight-line trend over a stationary window's; one-sided p."""
        w = v.size
        t = np.arange(w, dtype=np.float64) - (w - 1) / 2.0
        slope = float(t @ (v - v.mean())) / float(t @ t)
        resid = v - v.mean() - slope * t
        var_d = float(resid @ resid) / (w - 2)
        sd, phi = float(self.sd[s]), float(self.phi[s])
        expected = sd * sd * max(w - _ar1_factor(phi, w), 1.0) / (w - 1)
        if var_d <= 0.0:
            return None
        log_ratio = math.log(var_d / expected)
        log_se = math.sqrt(2.0 / self._dof(s, w) + 2.0 / self._dof(s, int(self.rows[s])))
        return math.sqrt(var_d / expected), 0.5 * math.erfc(log_ratio / log_se / math.sqrt(2.0))

    def _sensor(
        self, s: int, v: NDArray[np.float64]
    ) -> tuple[float, float, tuple[float, float] | None, float | None, float | None, float]:
        w = v.size
        if w < max(self.window_rows // 2, 10):
            return (math.nan, math.nan, None, None, None, math.nan)
        phi, n, sd = float(self.phi[s]), int(self.rows[s]), float(self.sd[s])
        shift = float(v.mean()) - float(self.mean[s])
        se = sd * math.sqrt(_ar1_factor(phi, w) / w + _ar1_factor(phi, n) / n)
        p_mean = _t_to_p(shift / se, self._dof(s, n))
        # A stationary window of w values spreads about sigma²·(w - f(w))/(w - 1) around its own mean.
        expected = sd * sd * max(w - _ar1_factor(phi, w), 1.0) / (w - 1)
        var_w = float(v.var(ddof=1))
        if var_w == 0.0 and self.still[s]:
            return (shift, 1.0, None, p_mean, 1.0, shift / se)  # still then, still now
        ratio = math.sqrt(var_w / expected) if var_w > 0 else 0.0
        log_se = math.sqrt(2.0 / self._dof(s, w) + 2.0 / self._dof(s, n))
        p_spread = math.erfc(abs(math.log(max(var_w, 1e-300) / expected)) / log_se / math.sqrt(2.0))
        return (shift, ratio, self._noise(s, v), p_mean, p_spread, shift / se)


# ---------------------------------------------------------------- what a run of reports means
#: The device's words for a run of shift reports (the hub reads them; ``docs/protocol.md``).
HINTS = ("none", "new_shift", "sensor_shift", "operating_shift", "fault_like")


@dataclass(frozen=True)
class ShiftVerdict:
    """What the device makes of its latest shift report, given the ones before.

    Attributes:
        shifted: sensors the test fired on in this report.
        confirmed: shifted sensors that fired in at least ``confirm`` consecutive reports.
        hint: ``none`` (nothing shifted); ``new_shift`` (a shift not yet confirmed); ``sensor_shift``
            (at most ``few_sensors`` confirmed, a level shift that stays: recalibrate);
            ``operating_shift`` (more of them); ``fault_like`` (the change grew between reports or
            made a sensor noisier since it began: an alarm, not drift).
        since: per shifted sensor, the time of the first report in its current run.
        fault_signs: why the run is fault-like (``"<sensor>: noisier x2.3"``,
            ``"<sensor>: grew 10 -> 24 sd"``), kept until no sensor shifts any more.
    """

    shifted: tuple[str, ...]
    confirmed: tuple[str, ...]
    hint: str
    since: dict[str, int]
    fault_signs: tuple[str, ...]

    @property
    def drift(self) -> bool:
        """A confirmed shift without fault signs: the device calls this drift."""
        return self.hint in ("sensor_shift", "operating_shift")


class ShiftJudge:
    """Turns a sequence of :meth:`ShiftTest.test` answers into the device's drift word.

    A benign drift (a recalibrated sensor's offset, a new set-point, a replaced
    pump, a warmer season) is a level shift that *stays*: the same sensors, by
    about the same amount, report after report, with their noise unchanged. A
    developing fault grows from report to report and often makes a sensor
    noisier (a wearing bearing's vibration). So a shift counts as drift only once
    confirmed by ``confirm`` consecutive reports, and a run of shifted reports in
    which any sensor grew (``|shift_sd|`` up by more than ``growth_sd`` and
    ``growth_fraction`` of what it was, same direction) or got noisier is
    ``fault_like`` until nothing is shifted any more. A single false alarm of the
    test (rate ``alpha`` per report) is never confirmed unless the next report
    fires on the same sensor too.

    Args:
        few_sensors: at most this many confirmed sensors is a ``sensor_shift``.
        confirm: consecutive reports a sensor must fire in before it is drift (>= 1).
        growth_sd: least growth of a sensor's shift between reports, in reference sd, that is a fault sign.
        growth_fraction: least growth as a fraction of the previous shift.
        hold_alpha: a sensor that fired in the previous report stays shifted while its own mean
            test, alone and in the same direction, is below this (one pre-named hypothesis needs
            no correction across sensors): a real shift near the test's power is confirmed
            instead of flickering in and out.

    >>> j = ShiftJudge(few_sensors=1)
    >>> quiet = SensorShift("t", 0.0, 0.0, 1.0, 0.5, 0.5, False)
    >>> step = [SensorShift("p", 4.0, 4e4, 1.0, 1e-9, 0.5, True), quiet]
    >>> [j.judge(step, now).hint for now in (10, 20, 30)]
    ['new_shift', 'sensor_shift', 'sensor_shift']
    >>> ramp = [SensorShift("p", 12.0, 1e5, 1.0, 1e-9, 0.5, True), quiet]
    >>> v = j.judge(ramp, 40)
    >>> v.hint, v.fault_signs, v.since
    ('fault_like', ('p: grew 4 -> 12 sd',), {'p': 10})
    """

    def __init__(
        self,
        *,
        few_sensors: int = 1,
        confirm: int = 2,
        growth_sd: float = 3.0,
        growth_fraction: float = 0.25,
        hold_alpha: float = 0.05,
    ) -> None:
        if few_sensors < 1 or confirm < 1 or growth_sd <= 0 or growth_fraction < 0 or not 0 < hold_alpha < 1:
            raise ConfigError(
                "ShiftJudge needs few_sensors >= 1, confirm >= 1, growth_sd > 0, growth_fraction >= 0, "
                f"0 < hold_alpha < 1, got {few_sensors}, {confirm}, {growth_sd}, {growth_fraction}, "
                f"{hold_alpha}"
            )
        self.hold_alpha = hold_alpha
        self.few_sensors = few_sensors
        self.confirm = confirm
        self.growth_sd = growth_sd
        self.growth_fraction = growth_fraction
        self._runs: dict[str, int] = {}  # consecutive reports each sensor fired in
        self._since: dict[str, int] = {}
        self._last_sd: dict[str, float] = {}
        self._signs: list[str] = []

    def judge(self, shifts: Sequence[SensorShift], now: int) -> ShiftVerdict:
        """The verdict on one report's answers (``now``: its time, or a row count)."""
        fired = {s.sensor: s for s in shifts if s.fired or self._held(s)}
        if not fired:
            self._runs, self._since, self._last_sd, self._signs = {}, {}, {}, []
            return ShiftVerdict((), (), "none", {}, ())
        for name, s in fired.items():
            prev = self._last_sd.get(name)
            sd = s.shift_sd
            if s.noisier:
                self._sign(f"{name}: noisier x{s.noise_ratio:.2g}")
            if prev is not None and math.isfinite(sd) and math.isfinite(prev) and sd * prev > 0:
                grew = abs(sd) - abs(prev)
                if grew > max(self.growth_sd, self.growth_fraction * abs(prev)):
                    self._sign(f"{name}: grew {abs(prev):.3g} -> {abs(sd):.3g} sd")
        self._runs = {name: self._runs.get(name, 0) + 1 for name in fired}
        self._since = {name: self._since.get(name, now) for name in fired}
        self._last_sd = {name: s.shift_sd for name, s in fired.items()}
        shifted = tuple(sorted(fired))
        confirmed = tuple(name for name in shifted if self._runs[name] >= self.confirm)
        if self._signs:
            hint = "fault_like"
        elif not confirmed:
            hint = "new_shift"
        else:
            hint = "sensor_shift" if len(confirmed) <= self.few_sensors else "operating_shift"
        return ShiftVerdict(shifted, confirmed, hint, dict(self._since), tuple(self._signs))

    def _held(self, s: SensorShift) -> bool:
        """A sensor of the current run still shifted the same way, tested on its own."""
        prev = self._last_sd.get(s.sensor)
        return (
            prev is not None
            and s.p_mean is not None
            and s.p_mean < self.hold_alpha
            and math.isfinite(s.shift_sd)
            and s.shift_sd * prev > 0
        )

    def _sign(self, sign: str) -> None:
        sensor = sign.split(":", maxsplit=1)[0]
        if sensor not in {s.split(":", maxsplit=1)[0] for s in self._signs}:
            self._signs.append(sign)  # the first sign per sensor is kept


def _holm(pvals: list[float], alpha: float) -> list[bool]:
    """Holm's step-down rejections, in the order given.

    >>> _holm([0.001, 0.04, 0.03], 0.05)
    [True, False, False]
    """
    m = len(pvals)
    rejected = [False] * m
    for rank, i in enumerate(sorted(range(m), key=lambda j: pvals[j])):
        if pvals[i] > alpha / (m - rank):
            break
        rejected[i] = True
    return rejected


def _z_quantile(p: float) -> float:
    """Upper-tail standard normal quantile (bisection on erfc; p in (0, 0.5])."""
    lo, hi = 0.0, 40.0
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if 0.5 * math.erfc(mid / math.sqrt(2.0)) > p else (lo, mid)
    return (lo + hi) / 2
