"""Pump physics in numpy: operating point, affinity laws, power, current, thermal lag.

Everything here is a pure function of arrays (no randomness, no I/O), so the
engine can vectorise one device over a block of samples and tests can check
the physics directly.

The hydraulic model, all in SI units (m, m³/s, Pa, W, K):

* pump curve at speed ratio ``r = n / n_rated`` (affinity laws):
  ``H_pump(Q) = H0·r² − a·Q²``, with shut-off head ``H0`` and ``a`` chosen so
  the curve passes through the nameplate BEP ``(Q_r, H_r)`` at ``r = 1``;
* system curve ``H_sys(Q) = H_static + k·Q²`` through the same BEP;
* the operating point is where they cross:
  ``Q = sqrt((H0·r² − H_static) / (a + k))``.

With ``H_static = 0`` the operating point moves along the affinity parabola,
so ``Q ∝ r``, ``H ∝ r²`` and (efficiency being constant along that parabola)
shaft power ``∝ r³``. Real systems have some static head, which bends this a
little; the default static head is small so the affinity laws hold to a few
per cent, as they do on a real pump loop.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from pumpops.fleet import PumpRating

#: Standard gravity, m/s².
G_N = 9.80665
#: Specific heat of water, J/(kg·K); good enough for the crude/water mixes too.
CP_WATER = 4186.0
#: Absolute zero offset: degrees Celsius to kelvin.
ZERO_C = 273.15
#: Standard atmosphere, Pa: gauge ↔ absolute pressure.
ATM = 101_325.0
#: Shaft power at shut-off (zero flow) over shaft power at the BEP.
_SHUTOFF_POWER_SHARE = 0.35


@dataclass(frozen=True, slots=True)
class ProcessTuning:
    """The process a pump sits in: what a profile's nameplate does not say.

    Profiles describe how a make *reports* (names, units, rate) and its
    nameplate; the loop it pumps into, the fluid and the cooling are site
    facts. The simulator keeps plausible defaults per shipped profile in
    :data:`PROCESS_TUNING` and these defaults for any other profile.

    Attributes:
        fluid_density_kg_m3: density of the pumped fluid.
        fluid_temperature_c: process fluid temperature at mean ambient.
        fluid_ambient_coupling: share of an ambient swing that reaches the fluid
            (0 for a downhole pump, about 0.5 for a surface tank).
        suction_pressure_pa: static gauge pressure at the inlet at zero flow.
        suction_loss_m: inlet friction loss at rated flow, in metres of fluid.
        static_head_fraction: static part of the system curve, as a fraction
            of rated head.
        shutoff_head_ratio: shut-off head over rated head (typical 1.1-1.3).
        motor_efficiency: electrical-to-shaft efficiency of the motor.
        motor_rise_k: winding temperature rise over the coolant at nominal current.
        motor_tau_s: thermal time constant of the motor.
        bearing_rise_k: bearing temperature rise over the coolant at rated speed.
        bearing_tau_s: thermal time constant of the bearing housing.
        fluid_tau_s: time constant of the fluid temperature.
        motor_cooled_by_fluid: the motor sits in the fluid (submersible pumps).
        vibration_velocity_m_s: casing vibration velocity RMS at rated speed.
        vibration_accel_m_s2: vibration acceleration RMS at rated speed.
        speed_range: the base set-point is drawn uniformly in this range of
            rated speed (a variable-speed drive holds it).
    """

    fluid_density_kg_m3: float = 998.0
    fluid_temperature_c: float = 20.0
    fluid_ambient_coupling: float = 0.5
    suction_pressure_pa: float = 1.5e5
    suction_loss_m: float = 1.0
    static_head_fraction: float = 0.1
    shutoff_head_ratio: float = 1.25
    motor_efficiency: float = 0.93
    motor_rise_k: float = 45.0
    motor_tau_s: float = 1200.0
    bearing_rise_k: float = 22.0
    bearing_tau_s: float = 900.0
    fluid_tau_s: float = 600.0
    motor_cooled_by_fluid: bool = False
    vibration_velocity_m_s: float = 2.0e-3
    vibration_accel_m_s2: float = 2.5
    speed_range: tuple[float, float] = (0.85, 1.0)


#: Process defaults for the shipped profiles (keyed by profile id).
PROCESS_TUNING: dict[str, ProcessTuning] = {
    # Surface end-suction pump fed from a tank: fluid follows the weather.
    "acme-ansi": ProcessTuning(
        fluid_temperature_c=25.0,
        fluid_ambient_coupling=0.5,
        suction_pressure_pa=1.5e5,
        vibration_velocity_m_s=2.0e-3,
        speed_range=(0.9, 1.0),
    ),
    # Offshore injection/booster duty: warm process fluid, boosted inlet.
    "nordhav-multistage": ProcessTuning(
        fluid_temperature_c=40.0,
        fluid_ambient_coupling=0.2,
        suction_pressure_pa=3.0e5,
        suction_loss_m=2.0,
        vibration_velocity_m_s=2.5e-3,
        motor_rise_k=50.0,
    ),
    # Downhole ESP: oil/water mix at reservoir temperature, motor cooled by
    # the well fluid flowing past it, intake pressure from the reservoir.
    "sakura-esp": ProcessTuning(
        fluid_density_kg_m3=850.0,
        fluid_temperature_c=85.0,
        fluid_ambient_coupling=0.02,
        suction_pressure_pa=6.0e6,
        suction_loss_m=5.0,
        static_head_fraction=0.15,
        motor_cooled_by_fluid=True,
        motor_rise_k=35.0,
        bearing_rise_k=15.0,
        vibration_accel_m_s2=1.5,
        speed_range=(0.8, 1.0),
    ),
    # The SKAB water loop: a small pump circulating water at room temperature.
    "skab-testbed": ProcessTuning(
        fluid_temperature_c=26.0,
        fluid_ambient_coupling=0.3,
        suction_pressure_pa=0.2e5,
        static_head_fraction=0.05,
        motor_rise_k=55.0,
        vibration_accel_m_s2=2.0,
    ),
}


@dataclass(frozen=True, slots=True)
class PumpModel:
    """Curve coefficients derived from a nameplate and a process.

    Attributes:
        rating: the nameplate.
        tuning: the process.
        speed_rad_s: rated shaft speed.
        q_rated: rated flow, m³/s.
        h_rated: rated head, m.
        h0: shut-off head at rated speed, m.
        a: pump curve coefficient, m/(m³/s)².
        h_static: static head of the system, m.
        k: system friction coefficient, m/(m³/s)².
        nominal_current_a: motor current at rated speed without faults.
        nominal_power_w: electrical power at rated speed without faults.
    """

    rating: PumpRating
    tuning: ProcessTuning
    speed_rad_s: float
    q_rated: float
    h_rated: float
    h0: float
    a: float
    h_static: float
    k: float
    nominal_current_a: float
    nominal_power_w: float

    @classmethod
    def build(cls, rating: PumpRating, tuning: ProcessTuning) -> PumpModel:
        """Derive curve coefficients so the pump runs at its BEP at rated speed.

        >>> from pumpops.fleet import get_profile
        >>> m = PumpModel.build(get_profile("acme-ansi").pump, ProcessTuning())
        >>> round(m.q_rated * 3600, 1), round(m.h0, 2)
        (68.0, 93.75)
        """
        q_r = rating.rated_flow_m3h / 3600.0
        h_r = rating.rated_head_m
        h0 = tuning.shutoff_head_ratio * h_r
        h_static = tuning.static_head_fraction * h_r
        model = cls(
            rating=rating,
            tuning=tuning,
            speed_rad_s=rating.rated_speed_rpm * 2.0 * math.pi / 60.0,
            q_rated=q_r,
            h_rated=h_r,
            h0=h0,
            a=(h0 - h_r) / q_r**2,
            h_static=h_static,
            k=(h_r - h_static) / q_r**2,
            nominal_current_a=1.0,
            nominal_power_w=1.0,
        )
        one = np.ones(1)
        q, h = model.operating_point(one, one, one)
        p_el = model.electrical_power(q, h, one, one, np.zeros(1))
        current = model.current(p_el, model.motor_voltage(one))
        return dataclasses.replace(model, nominal_current_a=float(current[0]), nominal_power_w=float(p_el[0]))

    def operating_point(
        self, ratio: np.ndarray, head_factor: np.ndarray, k_factor: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return pump flow (m³/s) and head (m) where pump and system curves cross.

        Args:
            ratio: speed over rated speed.
            head_factor: shut-off head multiplier (worn impeller, cavitation < 1).
            k_factor: system friction multiplier (a closing valve > 1, a leak
                path in parallel < 1).

        >>> from pumpops.fleet import get_profile
        >>> m = PumpModel.build(get_profile("acme-ansi").pump, ProcessTuning(static_head_fraction=0.0))
        >>> q, h = m.operating_point(np.array([1.0, 0.8]), np.ones(2), np.ones(2))
        >>> (q[1] / q[0]).round(6), (h[1] / h[0]).round(6)  # affinity: r and r²
        (np.float64(0.8), np.float64(0.64))
        """
        h_shut = self.h0 * head_factor * ratio * ratio
        q = np.sqrt(np.maximum(h_shut - self.h_static, 0.0) / (self.a + self.k * k_factor))
        return q, h_shut - self.a * q * q

    def pump_efficiency(self, q: np.ndarray, ratio: np.ndarray) -> np.ndarray:
        """Return pump efficiency: the nameplate value at the BEP, falling off either side.

        The BEP flow scales with speed (affinity), so along the affinity
        parabola the efficiency stays constant.

        >>> from pumpops.fleet import get_profile
        >>> m = PumpModel.build(get_profile("acme-ansi").pump, ProcessTuning())
        >>> m.pump_efficiency(np.array([m.q_rated, 0.5 * m.q_rated]), np.array([1.0, 0.5])).tolist()
        [0.68, 0.68]
        """
        beta = q / (self.q_rated * np.maximum(ratio, 1e-3))
        eta: np.ndarray = self.rating.efficiency * np.maximum(0.15, 1.0 - 0.6 * (beta - 1.0) ** 2)
        return eta

    def electrical_power(
        self,
        q: np.ndarray,
        h: np.ndarray,
        ratio: np.ndarray,
        efficiency_factor: np.ndarray,
        friction_w: np.ndarray,
    ) -> np.ndarray:
        """Return electrical power (W): hydraulic ρ·g·Q·H over pump and motor efficiency.

        Args:
            q: flow through the impeller, m³/s.
            h: head, m.
            ratio: speed ratio (sets where the BEP is).
            efficiency_factor: pump efficiency multiplier (< 1 for a worn impeller).
            friction_w: extra mechanical loss (a worn bearing), W.

        >>> from pumpops.fleet import get_profile
        >>> m = PumpModel.build(get_profile("nordhav-multistage").pump, ProcessTuning())
        >>> one, none = np.ones(1), np.zeros(1)
        >>> bep = m.electrical_power(np.array([m.q_rated]), np.array([m.h_rated]), one, one, none)
        >>> shut = m.electrical_power(none, np.array([m.h0]), one, one, none)
        >>> round(float(bep[0]) / 1e3, 1), round(float(shut[0] / bep[0]), 2)
        (113.8, 0.35)
        """
        rho_g = self.tuning.fluid_density_kg_m3 * G_N
        hydraulic = rho_g * q * h
        # Even at zero flow the impeller churns the fluid: a centrifugal pump
        # draws about a third of its BEP power at shut-off (and ∝ speed³).
        churn = _SHUTOFF_POWER_SHARE * rho_g * self.q_rated * self.h_rated / self.rating.efficiency * ratio**3
        shaft = (
            np.maximum(hydraulic / (self.pump_efficiency(q, ratio) * efficiency_factor), churn) + friction_w
        )
        electrical: np.ndarray = shaft / self.tuning.motor_efficiency
        return electrical

    def motor_voltage(self, ratio: np.ndarray) -> np.ndarray:
        """Return the motor voltage (V): a VSD keeps V/f constant, so V ∝ speed."""
        volts: np.ndarray = self.rating.supply_voltage_v * np.clip(ratio, 0.05, 1.05)
        return volts

    def current(self, power_w: np.ndarray, voltage_v: np.ndarray) -> np.ndarray:
        """Return the motor phase current from ``P = √3·V·I·pf`` (or ``V·I·pf`` single-phase).

        The power factor of an induction motor drops at part load, which
        makes the current rise less than proportionally with power.

        >>> from pumpops.fleet import get_profile
        >>> m = PumpModel.build(get_profile("acme-ansi").pump, ProcessTuning())
        >>> round(float(m.current(np.array([22e3 / 0.93]), np.array([460.0]))[0]), 1)
        34.1
        """
        load = np.minimum(power_w * self.tuning.motor_efficiency / (self.rating.rated_power_kw * 1e3), 1.2)
        pf = self.rating.power_factor * (1.0 - 0.3 * np.maximum(1.0 - load, 0.0) ** 2)
        phases = math.sqrt(3.0) if self.rating.phases == 3 else 1.0
        return power_w / (phases * voltage_v * pf)


def ar1(drive: np.ndarray, a: float, y0: float) -> np.ndarray:
    """Return ``y`` with ``y[n] = a·y[n-1] + drive[n]`` and ``y[-1] = y0``, vectorised.

    A first-order IIR filter without a Python loop per sample: within a
    segment ``y[n] = aⁿ⁺¹·(y0 + Σ a⁻ᵏ⁻¹·drive[k])``. The factor ``a⁻ⁿ`` grows, so
    segments are cut where it would reach 1e6 (losing at most 6 of 16 digits).

    Args:
        drive: the input sequence.
        a: the pole, ``0 <= a < 1``.
        y0: the state before the first sample.

    >>> x = np.array([1.0, 0.0, 0.0, 2.0])
    >>> ar1(x, 0.5, 4.0).tolist()
    [3.0, 1.5, 0.75, 2.375]
    """
    n = drive.shape[0]
    out = np.empty(n)
    if a <= 0.0:
        out[:] = drive
        return out
    seg = n if a >= 1.0 else max(1, int(math.log(1e6) / -math.log(a)))
    state = y0
    for lo in range(0, n, seg):
        part = drive[lo : lo + seg]
        powers = a ** np.arange(1, part.shape[0] + 1)
        out[lo : lo + part.shape[0]] = powers * (state + np.cumsum(part / powers))
        state = float(out[lo + part.shape[0] - 1])
    return out


def first_order_lag(target: np.ndarray, dt_s: float, tau_s: float, y0: float) -> np.ndarray:
    """Return a first-order lag of ``target`` (exact for a piecewise-constant input).

    Temperatures follow their heat sources with a time constant: the motor
    winding takes tens of minutes to settle after a load change.

    >>> y = first_order_lag(np.full(600, 10.0), dt_s=1.0, tau_s=60.0, y0=0.0)
    >>> round(float(y[59]), 2), round(float(y[-1]), 2)  # 1 - 1/e after one tau, then settled
    (6.32, 10.0)
    """
    a = math.exp(-dt_s / tau_s)
    return ar1((1.0 - a) * target, a, y0)


def ou_drive(white: np.ndarray, dt_s: float, tau_s: float) -> tuple[np.ndarray, float]:
    """Return ``(drive, a)`` making :func:`ar1` an Ornstein-Uhlenbeck process of unit variance.

    Slow process fluctuations (valve hunting, supply voltage, inlet level) are
    red noise, not white: their spectrum falls off above ``1/tau``.
    """
    a = math.exp(-dt_s / tau_s)
    return white * math.sqrt(1.0 - a * a), a
