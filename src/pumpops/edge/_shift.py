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
        level_se: sd of the reference's window means about its straight-line trend (the weather
            rule's error of a move between reports; NaN: < 4 windows). Not sent to the hub.
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
    level_se: float = math.nan

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
        #: Per sensor, the sd of window means about the reference's trend (see ``SensorShift.level_se``).
        self.level_sd = np.array([_level_sd(ref[:, s], window_rows) for s in range(ref.shape[1])])

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
                    float(self.level_sd[s]),
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
        weather: temperature sensors whose shift (fired or not) the judge puts down to the weather
            (:class:`ShiftJudge`): never in ``shifted``, listed so the hub leaves them out too.
    """

    shifted: tuple[str, ...]
    confirmed: tuple[str, ...]
    hint: str
    since: dict[str, int]
    fault_signs: tuple[str, ...]
    weather: tuple[str, ...] = ()

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
        weather_rate_k_h: the fastest a temperature follows the weather, K/h (a daily half-swing of
            A K moves at most 2πA/24 K/h: 2.1 for the simulator's largest, 8 K); 0: no weather rule.
        weather_swing_k: a temperature shift beyond this many K is never the weather (2 x 8 K, and some).
        weather_z: standard errors a temperature's move between reports must clear beyond that rate.
        weather_horizon_s: how far back (s) reports are compared with the newest for a step.
        confirm_s: a shift is confirmed only once it also stood this long (s), and growth is measured
            over this span (from the newest report at least this old, else the previous one): 3600
            at a report every 10 minutes lets a developing fault show its growth before it would be
            confirmed. 0 (default): ``confirm`` reports only.
        settle_s: a temperature's growth counts only from reports this far (s) into its run: a sudden
            change (a new set-point) reaches temperatures through thermal lags of up to 20 minutes.
        sign_reports: a fault sign (noisier, grew) counts once seen in this many consecutive reports
            (1 or 2); meanwhile nothing is confirmed. A window across a sudden step looks noisier and
            grown once; a developing fault keeps showing it.

    The weather rule (issue 15): a temperature (its name holds ``temperature``) follows the site's
    daily ambient cycle, which a reference of a few hours does not span. Its shift is put down to
    the weather (``weather``: not drift, and the hub does not pool its ``z``) unless it is beyond
    ``weather_swing_k`` or it came as a *step*: between two reports at most ``weather_horizon_s``
    apart it moved more than ``weather_rate_k_h`` allows plus ``weather_z`` standard errors
    (``SensorShift.level_se``). A step stays a shift while it stands (a warmer season, +12 K in an
    hour; a fault heating a bearing). When only temperatures shifted, their growth is no fault sign
    (a season ramps them all up). A change that creeps like the weather is not found.

    >>> j = ShiftJudge(few_sensors=1)
    >>> quiet = SensorShift("t", 0.0, 0.0, 1.0, 0.5, 0.5, False)
    >>> step = [SensorShift("p", 4.0, 4e4, 1.0, 1e-9, 0.5, True), quiet]
    >>> [j.judge(step, now).hint for now in (10, 20, 30)]
    ['new_shift', 'sensor_shift', 'sensor_shift']
    >>> ramp = [SensorShift("p", 12.0, 1e5, 1.0, 1e-9, 0.5, True), quiet]
    >>> j.judge(ramp, 40).hint  # grown once: wait and see (a window across a step does that)
    'new_shift'
    >>> v = j.judge([SensorShift("p", 20.0, 2e5, 1.0, 1e-9, 0.5, True), quiet], 50)
    >>> v.hint, v.fault_signs, v.since
    ('fault_like', ('p: grew 12 -> 20 sd',), {'p': 10})
    """

    def __init__(
        self,
        *,
        few_sensors: int = 1,
        confirm: int = 2,
        growth_sd: float = 3.0,
        growth_fraction: float = 0.25,
        hold_alpha: float = 0.05,
        weather_rate_k_h: float = 3.0,
        weather_swing_k: float = 20.0,
        weather_z: float = 3.0,
        weather_horizon_s: float = 7200.0,
        confirm_s: float = 0.0,
        settle_s: float = 3600.0,
        sign_reports: int = 2,
    ) -> None:
        needs = {"few_sensors >= 1": few_sensors >= 1, "confirm >= 1": confirm >= 1,
                 "growth_sd > 0": growth_sd > 0, "growth_fraction >= 0": growth_fraction >= 0,
                 "0 < hold_alpha < 1": 0 < hold_alpha < 1, "weather_rate_k_h >= 0": weather_rate_k_h >= 0,
                 "weather_swing_k > 0": weather_swing_k > 0, "weather_z > 0": weather_z > 0,
                 "weather_horizon_s > 0": weather_horizon_s > 0, "confirm_s >= 0": confirm_s >= 0,
                 "settle_s >= 0": settle_s >= 0, "sign_reports 1 or 2": sign_reports in (1, 2)}  # fmt: skip
        if not all(needs.values()):
            raise ConfigError(f"ShiftJudge needs {', '.join(k for k, ok in needs.items() if not ok)}")
        self.sign_reports = sign_reports
        self.hold_alpha = hold_alpha
        self.few_sensors = few_sensors
        self.confirm = confirm
        self.growth_sd = growth_sd
        self.growth_fraction = growth_fraction
        self._runs: dict[str, int] = {}  # consecutive reports each sensor fired in
        self._since: dict[str, int] = {}
        self._history: dict[str, list[tuple[float, float]]] = {}  # per sensor of the run: (s, shift_sd)
        self._seen: dict[str, str] = {}  # fault signs of the latest report (counted once repeated)
        self._last_sd: dict[str, float] = {}
        self._signs: list[str] = []
        self.confirm_s, self.settle_s = confirm_s, settle_s
        self.weather_rate_k_h, self.weather_swing_k = weather_rate_k_h, weather_swing_k
        self.weather_z, self.weather_horizon_s = weather_z, weather_horizon_s
        self._levels: list[tuple[float, dict[str, tuple[float, float]]]] = []  # (s, {temp: (K, se)})
        self._stepped: dict[str, tuple[float, float, float, float]] = {}  # (sign, K before, its se, s)

    def judge(self, shifts: Sequence[SensorShift], now: int, *, now_s: float | None = None) -> ShiftVerdict:
        """One report's verdict (``now``: time or row count; ``now_s``: seconds, default ``now``)."""
        t_s = float(now if now_s is None else now_s)
        weather, steps = self._weather(shifts, t_s)
        fired = {s.sensor: s for s in shifts if s.fired or self._held(s) or s.sensor in steps}
        fired = {k: v for k, v in fired.items() if k not in weather}
        if not fired:
            self._runs, self._since, self._last_sd, self._signs = {}, {}, {}, []
            self._history, self._seen = {}, {}
            return ShiftVerdict((), (), "none", {}, (), weather)
        # A shift confined to temperatures is the ambient's pattern (a warmer season ramps them
        # all up for an hour): their growth is no fault sign then; with another sensor it is.
        ambient = all(_is_temperature(name) for name in fired) and self.weather_rate_k_h > 0
        seen, self._seen = self._seen, {}
        for name, s in fired.items():
            sd = s.shift_sd
            if s.noisier:
                self._sign(f"{name}: noisier x{s.noise_ratio:.2g}", seen)
            prev = None if ambient else self._growth_base(name, t_s)
            if prev is not None and math.isfinite(sd) and math.isfinite(prev) and sd * prev > 0:
                grew = abs(sd) - abs(prev)
                if grew > max(self.growth_sd, self.growth_fraction * abs(prev)):
                    self._sign(f"{name}: grew {abs(prev):.3g} -> {abs(sd):.3g} sd", seen)
        self._runs = {name: self._runs.get(name, 0) + 1 for name in fired}
        self._since = {name: self._since.get(name, now) for name in fired}
        self._history = {name: [*self._history.get(name, []), (t_s, s.shift_sd)] for name, s in fired.items()}
        self._last_sd = {name: s.shift_sd for name, s in fired.items()}
        shifted = tuple(sorted(fired))
        confirmed = tuple(
            name
            for name in shifted
            if self._runs[name] >= self.confirm and t_s - self._history[name][0][0] >= self.confirm_s
        )
        if self._signs:
            hint = "fault_like"
        elif not confirmed or self._seen:  # a fault sign seen once: wait for the next report
            confirmed = () if self._seen else confirmed
            hint = "new_shift"
        else:
            hint = "sensor_shift" if len(confirmed) <= self.few_sensors else "operating_shift"
        return ShiftVerdict(shifted, confirmed, hint, dict(self._since), tuple(self._signs), weather)

    def _weather(self, shifts: Sequence[SensorShift], now_s: float) -> tuple[tuple[str, ...], set[str]]:
        """Temperatures put down to the weather, and those whose step stands (class docstring)."""
        if self.weather_rate_k_h <= 0:
            return (), set()
        levels: dict[str, tuple[float, float]] = {}
        for s in shifts:
            if not _is_temperature(s.sensor) or not math.isfinite(s.shift):
                continue
            if math.isfinite(s.level_se):
                levels[s.sensor] = (s.shift, s.level_se)
            elif math.isfinite(s.t) and s.t != 0:
                levels[s.sensor] = (s.shift, abs(s.shift / s.t))  # the mean test's (larger) error
        rate_s = self.weather_rate_k_h / 3600.0
        self._levels = [(t, lv) for t, lv in self._levels if 0 < now_s - t <= self.weather_horizon_s]
        standing: set[str] = set()
        for name, (shift, se) in levels.items():
            step = self._stepped.get(name)
            if step is not None:  # still standing: beyond its pre-step level by more than the weather
                sign, base, base_se, base_s = step
                allowed = self.weather_z * math.hypot(se, base_se)
                allowed += rate_s * min(now_s - base_s, self.weather_horizon_s)
                if sign * (shift - base) > allowed:
                    standing.add(name)
                    continue
                del self._stepped[name]
            for t, before in self._levels:
                if name not in before:
                    continue
                moved = shift - before[name][0]
                allowed = rate_s * (now_s - t) + self.weather_z * math.hypot(se, before[name][1])
                if abs(moved) > allowed:
                    self._stepped[name] = (math.copysign(1.0, moved), before[name][0], before[name][1], t)
                    standing.add(name)
                    break
        self._levels.append((now_s, levels))
        weather = [
            n for n, (shift, _) in levels.items() if n not in standing and abs(shift) <= self.weather_swing_k
        ]
        return tuple(sorted(weather)), standing

    def _growth_base(self, name: str, now_s: float) -> float | None:
        """The shift (sd) this run's growth is measured from (``confirm_s``, ``settle_s``)."""
        hist = self._history.get(name, [])
        if _is_temperature(name):
            hist = [h for h in hist if h[0] - hist[0][0] >= self.settle_s]
        old = [sd for t, sd in hist if now_s - t >= self.confirm_s]
        return old[-1] if old else (hist[-1][1] if hist else None)

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

    def _sign(self, sign: str, seen: dict[str, str]) -> None:
        """Keep a fault sign once the previous report showed it too (``sign_reports``)."""
        key = sign.split(" ", maxsplit=2)[0] + sign.split(" ", maxsplit=2)[1]
        self._seen[key] = sign
        if key not in seen and self.sign_reports > 1:
            return
        sensor = sign.split(":", maxsplit=1)[0]
        if sensor not in {s.split(":", maxsplit=1)[0] for s in self._signs}:
            self._signs.append(sign)  # the first sign per sensor is kept


def _level_sd(x: NDArray[np.float64], w: int) -> float:
    """The sd of the means of ``x``'s whole ``w``-row windows about their straight-line trend.

    >>> round(_level_sd(np.arange(4000.0) % 2, 100), 6), _level_sd(np.zeros(300), 100)
    (0.0, nan)
    """
    k = x.size // w
    if k < 4:
        return math.nan
    parts = [x[i * w : (i + 1) * w] for i in range(k)]
    means = np.array([np.nanmean(p) if np.isfinite(p).any() else np.nan for p in parts])
    t = np.arange(k, dtype=np.float64)
    ok = np.isfinite(means)
    if ok.sum() < 4:
        return math.nan
    slope, icpt = np.polyfit(t[ok], means[ok], 1)
    resid = means[ok] - (slope * t[ok] + icpt)
    return float(math.sqrt(float(resid @ resid) / (ok.sum() - 2)))


def _is_temperature(sensor: str) -> bool:
    """A sensor that follows the weather: its name says it is a temperature."""
    return "temperature" in sensor


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
