"""The simulation engine: one device at a time, a block of samples at a time, in numpy.

A device's samples are cut into fixed blocks of :data:`BLOCK_SAMPLES`. Block
``k`` draws its randomness from streams keyed by ``(seed, device id, purpose,
k)`` and its slow state (temperatures, process fluctuations) from the end of
block ``k - 1``; so the numbers never depend on how a caller slices time, on
which other devices exist, or on whether a fault happens elsewhere in the
block (fault-specific randomness has its own stream). Blocks and their
state are in ``_blocks.py``, the sites' weather in ``_climate.py``, the
result type in ``_trace.py``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pumpops.errors import ConfigError
from pumpops.fleet import Device, ManufacturerProfile
from pumpops.schema import CANONICAL_SENSORS, affine_to
from pumpops.sim._blocks import (
    _CHECKPOINT,
    _DEVICE_CONSTANTS,
    _DRIFTS,
    _FAULT_NOISE,
    _FAULTS,
    _NOISE,
    _OU_TAU_S,
    _PROCESS,
    _RECENT_STATES,
    BLOCK_SAMPLES,
    _Modifiers,
    _Renewal,
    _State,
)
from pumpops.sim._climate import site_climate
from pumpops.sim._faults import envelope
from pumpops.sim._physics import (
    ATM,
    CP_WATER,
    G_N,
    PROCESS_TUNING,
    ZERO_C,
    ProcessTuning,
    PumpModel,
    ar1,
    first_order_lag,
    ou_drive,
)
from pumpops.sim._scenario import DriftKind, Event, FaultKind, Onset, Scenario, rng_for
from pumpops.sim._trace import DeviceTrace

# Sensors a recalibration can bias, and how big a full-severity bias is:
# ("relative", share of the nominal value) or ("absolute", SI units).
_RECAL_SCALE: Mapping[str, tuple[str, float]] = {
    "suction_pressure": ("relative", 0.05),
    "discharge_pressure": ("relative", 0.05),
    "flow_rate": ("relative", 0.06),
    "motor_speed": ("relative", 0.01),
    "motor_current": ("relative", 0.05),
    "motor_voltage": ("relative", 0.02),
    "motor_power": ("relative", 0.05),
    "motor_temperature": ("absolute", 4.0),
    "bearing_temperature": ("absolute", 4.0),
    "fluid_temperature": ("absolute", 3.0),
    "vibration_velocity": ("relative", 0.25),
    "vibration_accel_de": ("relative", 0.25),
    "vibration_accel_nde": ("relative", 0.25),
}
_FAULT_KINDS = tuple(FaultKind)


class DeviceSimulator:
    """Generates one device's samples, block by block; see the module docstring.

    Args:
        scenario: the scenario the device belongs to.
        device_id: which device.

    Raises:
        ConfigError: the device is not in the scenario.
    """

    def __init__(self, scenario: Scenario, device_id: str) -> None:
        self.scenario = scenario
        self.device: Device = scenario.device(device_id)
        self.profile: ManufacturerProfile = scenario.profiles[self.device.profile_id]
        tuning = scenario.tuning.get(self.profile.id) or PROCESS_TUNING.get(self.profile.id, ProcessTuning())
        self.model = PumpModel.build(self.profile.pump, tuning)
        self.climate = site_climate(scenario, self.device.site)
        # Whole ms: timestamps stay exact integers for any length of run.
        self.period_ms = max(1, round(self.profile.sample_period_s * 1000))
        self._dt_s = self.period_ms / 1000.0
        seed = scenario.seed
        consts = rng_for(seed, device_id, _DEVICE_CONSTANTS)
        lo, hi = tuning.speed_range
        # Per-unit scatter: two pumps of one make never read exactly alike.
        u = consts.random(4)
        self.base_ratio = round(lo + (hi - lo) * float(u[0]), 4)
        self._vib_scatter = 0.8 + 0.4 * float(u[1])
        self._rise_scatter = 0.9 + 0.2 * float(u[2])
        self._ou0 = tuple(float(x) for x in consts.standard_normal(len(_OU_TAU_S)))
        self._canonical = tuple(s.canonical for s in self.profile.sensors)
        self._affine = tuple(
            affine_to(CANONICAL_SENSORS[s.canonical].unit, s.unit) for s in self.profile.sensors
        )
        self._noise_std = np.array([s.noise_std for s in self.profile.sensors])
        self._non_negative = np.array([CANONICAL_SENSORS[c].minimum >= 0.0 for c in self._canonical])
        self._nominal = self._nominal_truth()
        self._faults = _Renewal(
            rng_for(seed, device_id, _FAULTS),
            scenario.fault_rate_per_day,
            scenario.fault_duration_s,
            self._make_fault,
            scenario.start_ms,
        )
        self._drifts = _Renewal(
            rng_for(seed, device_id, _DRIFTS),
            scenario.drift_rate_per_day,
            scenario.drift_duration_s,
            self._make_drift,
            scenario.start_ms,
        )
        self._explicit = tuple(
            sorted((e for e in scenario.events if e.device_id == device_id), key=lambda e: e.start_ms)
        )
        # State before block k, for the recent blocks and every _CHECKPOINT-th
        # one: going back in time recomputes from the nearest checkpoint.
        self._states: dict[int, _State] = {0: _State()}
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # -- events -----------------------------------------------------------------

    def _make_fault(self, rng: np.random.Generator, start: int, end: int) -> Event:
        u = rng.random(3)  # always three draws, so the stream never shifts
        kind = _FAULT_KINDS[int(u[0] * len(_FAULT_KINDS))]
        if kind in (FaultKind.BEARING_WEAR, FaultKind.IMPELLER_WEAR):
            onset = Onset.GRADUAL  # wear is progressive by nature
        elif kind is FaultKind.CAVITATION:
            onset = Onset.GRADUAL if u[1] < 0.5 else Onset.SUDDEN
        else:
            onset = Onset.GRADUAL if u[1] < 0.25 else Onset.SUDDEN
        severity = round(0.3 + 0.7 * float(u[2]), 3)
        return Event(self.device.device_id, kind, start, end, onset, severity)

    def _make_drift(self, rng: np.random.Generator, start: int, end: int) -> Event:
        u = rng.random(4)
        device_id = self.device.device_id
        if u[0] < 0.6:
            factor = 0.8 + 0.32 * float(u[1])
            if abs(factor - 1.0) < 0.04:  # too small a change to be worth labelling
                factor = 1.04 if factor >= 1.0 else 0.96
            ratio = round(min(1.05, max(0.5, self.base_ratio * factor)), 4)
            severity = round(min(1.0, max(0.05, abs(ratio / self.base_ratio - 1.0) / 0.25)), 3)
            return Event(device_id, DriftKind.SETPOINT_CHANGE, start, end, Onset.SUDDEN, severity, ratio)
        sensor = self._canonical[int(u[2] * len(self._canonical))]
        severity = round(0.3 + 0.7 * float(u[3]), 3)
        sign = 1.0 if u[1] < 0.5 else -1.0
        offset = sign * severity * self.recalibration_scale(sensor)
        return Event(
            device_id,
            DriftKind.SENSOR_RECALIBRATION,
            start,
            end,
            Onset.SUDDEN,
            severity,
            sensor=sensor,
            offset=float(f"{offset:.6g}"),
        )

    def recalibration_scale(self, sensor: str) -> float:
        """Return the bias (SI units) of a full-severity recalibration of ``sensor``."""
        how, size = _RECAL_SCALE[sensor]
        if how == "absolute":
            return size
        nominal = abs(self._nominal[sensor])
        if sensor == "suction_pressure":
            nominal = max(nominal, 0.5e5)  # a near-zero gauge reading still gets a visible bias
        return size * nominal

    def events_until(self, until_ms: int) -> list[Event]:
        """Return every event of this device that starts before ``until_ms``, by start time."""
        self._faults.extend(until_ms)
        self._drifts.extend(until_ms)
        every = (*self._faults.events, *self._drifts.events, *self._explicit)
        found = [e for e in every if e.start_ms < until_ms]
        return sorted(found, key=lambda e: (e.start_ms, e.kind))

    def _events_between(self, first_ms: int, last_ms: int) -> list[Event]:
        return [e for e in self.events_until(last_ms + 1) if e.end_ms > first_ms]

    # -- blocks -----------------------------------------------------------------

    def _ts(self, k: int) -> np.ndarray:
        idx = np.arange(k * BLOCK_SAMPLES, (k + 1) * BLOCK_SAMPLES, dtype=np.int64)
        return self.scenario.start_ms + idx * self.period_ms

    def _state_before(self, k: int) -> _State:
        state = self._states.get(k)
        if state is not None:
            return state
        j = max(i for i in self._states if i < k)
        state = self._states[j]
        while j < k:  # the slow state comes from the blocks before
            _, _, _, state = self._compute(j, state)
            j += 1
            self._states[j] = state
        return state

    def _block(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        cached = self._cache.get(k)
        if cached is not None:
            return cached
        ts, native, _, state = self._compute(k, self._state_before(k))
        self._states[k + 1] = state
        for old in [j for j in self._states if j < k - _RECENT_STATES and j % _CHECKPOINT]:
            del self._states[old]
        # Keep two blocks: a caller's window may straddle a boundary.
        for old in [j for j in self._cache if j < k - 1]:
            del self._cache[old]
        # Callers get views of these arrays; read-only keeps one caller's
        # in-place edit from corrupting what the next caller sees.
        ts.flags.writeable = False
        native.flags.writeable = False
        self._cache[k] = (ts, native)
        return ts, native

    def _index_range(self, start_ms: int, end_ms: int) -> tuple[int, int]:
        start = self.scenario.start_ms
        period = self.period_ms
        i0 = max(0, -(-(start_ms - start) // period))
        i1 = max(i0, -(-(end_ms - start) // period))
        return i0, i1

    def window(self, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(ts_ms, native)`` for the samples with ``start_ms <= ts < end_ms``.

        Cheap when windows move forward in time (the usual streaming case).
        """
        i0, i1 = self._index_range(start_ms, end_ms)
        if i1 <= i0:
            return np.empty(0, dtype=np.int64), np.empty((0, len(self._canonical)))
        parts_ts, parts_val = [], []
        first = i0 // BLOCK_SAMPLES
        # Streaming moves forward: blocks behind this window are not needed again
        # (and a thousand devices' stale blocks would be most of the memory).
        for stale in [j for j in self._cache if j < first]:
            del self._cache[stale]
        for k in range(first, (i1 - 1) // BLOCK_SAMPLES + 1):
            ts, native = self._block(k)
            lo = max(i0 - k * BLOCK_SAMPLES, 0)
            hi = min(i1 - k * BLOCK_SAMPLES, BLOCK_SAMPLES)
            parts_ts.append(ts[lo:hi])
            parts_val.append(native[lo:hi])
        if len(parts_ts) == 1:
            return parts_ts[0], parts_val[0]
        return np.concatenate(parts_ts), np.concatenate(parts_val)

    def trace(self, start_ms: int | None = None, end_ms: int | None = None) -> DeviceTrace:
        """Return the samples in ``[start_ms, end_ms)`` with their truth and events.

        Args:
            start_ms: default the scenario start.
            end_ms: default the scenario end.

        Raises:
            ConfigError: no end was given for an endless scenario.
        """
        start_ms = self.scenario.start_ms if start_ms is None else start_ms
        end_ms = self.scenario.end_ms if end_ms is None else end_ms
        if end_ms is None:
            raise ConfigError("the scenario is endless: give trace() an end_ms")
        i0, i1 = self._index_range(start_ms, end_ms)
        ts_parts, native_parts, truth_parts = [], [], []
        for k in range(i0 // BLOCK_SAMPLES, max(i1 - 1, i0) // BLOCK_SAMPLES + 1):
            ts, native, truth, _ = self._compute(k, self._state_before(k))
            lo = max(i0 - k * BLOCK_SAMPLES, 0)
            hi = max(lo, min(i1 - k * BLOCK_SAMPLES, BLOCK_SAMPLES))
            ts_parts.append(ts[lo:hi])
            native_parts.append(native[lo:hi])
            truth_parts.append({name: values[lo:hi] for name, values in truth.items()})
        ts_all = np.concatenate(ts_parts)
        events = tuple(self._events_between(start_ms, end_ms - 1)) if ts_all.size else ()
        return DeviceTrace(
            device_id=self.device.device_id,
            profile=self.profile,
            ts_ms=ts_all,
            native=np.concatenate(native_parts),
            truth={name: np.concatenate([t[name] for t in truth_parts]) for name in truth_parts[0]},
            events=events,
        )

    # -- physics ----------------------------------------------------------------

    def _nominal_truth(self) -> dict[str, float]:
        """Noise-free values at the base set-point, no faults, mean ambient: scales for biases."""
        ts = np.array([self.scenario.start_ms], dtype=np.int64)
        truth, _ = self._physics(ts, [], _State(), None, ambient=False)
        return {name: float(values[0]) for name, values in truth.items()}

    def _compute(self, k: int, state: _State) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], _State]:
        """Return block ``k``: timestamps, reported values, SI truth, and the state after it."""
        ts = self._ts(k)
        seed, device_id = self.scenario.seed, self.device.device_id
        events = self._events_between(int(ts[0]), int(ts[-1]))
        process = rng_for(seed, device_id, _PROCESS, k)
        truth, new_state = self._physics(ts, events, state, process, ambient=True, block=k)
        measured = np.empty((ts.shape[0], len(self._canonical)))
        offsets = self._offsets(ts, events)
        for j, name in enumerate(self._canonical):
            scale, shift = self._affine[j]
            value = truth[name] if name not in offsets else truth[name] + offsets[name]
            measured[:, j] = value * scale + shift
        noise = rng_for(seed, device_id, _NOISE, k).standard_normal(measured.shape)
        measured += noise * self._noise_std
        # Magnitudes (RMS, speed, current, power) cannot read below zero; their
        # native units have no offset, so clipping in native units is exact.
        np.maximum(measured, 0.0, out=measured, where=self._non_negative)
        return ts, measured, truth, new_state

    def _offsets(self, ts: np.ndarray, events: list[Event]) -> dict[str, np.ndarray]:
        offsets: dict[str, np.ndarray] = {}
        for event in events:
            if event.kind is DriftKind.SENSOR_RECALIBRATION and event.sensor is not None:
                bias = envelope(ts, event) * float(event.offset or 0.0)
                offsets[event.sensor] = offsets.get(event.sensor, 0.0) + bias
        return offsets

    def _process_noise(
        self, m: int, state: _State, process: np.random.Generator | None
    ) -> tuple[list[np.ndarray], tuple[float, ...]]:
        """Slow process fluctuations (red noise), continuous across blocks."""
        if process is None:
            return [np.zeros(m) for _ in _OU_TAU_S], (0.0,) * len(_OU_TAU_S)
        white = process.standard_normal((len(_OU_TAU_S), m))
        series = []
        for i, tau in enumerate(_OU_TAU_S):
            drive, a = ou_drive(white[i], self._dt_s, tau)
            series.append(ar1(drive, a, state.ou[i] if state.ou else self._ou0[i]))
        return series, tuple(float(x[-1]) for x in series)

    def _modifiers(self, ts: np.ndarray, events: list[Event], block: int) -> _Modifiers:
        """Turn the events active in a block into multipliers and offsets of the physics."""
        m = ts.shape[0]
        mods = _Modifiers.neutral(m, self.base_ratio)
        cav_noise: np.ndarray | None = None
        rated_w = self.profile.pump.rated_power_kw * 1e3
        for event in events:
            env = envelope(ts, event)
            s = env * event.severity
            match event.kind:
                case DriftKind.SETPOINT_CHANGE:
                    target = float(event.speed_ratio or self.base_ratio)
                    mods.ratio = mods.ratio + env * (target - mods.ratio)
                case DriftKind.SEASONAL_AMBIENT:
                    mods.amb_add += env * float(event.offset or 0.0)
                case DriftKind.PUMP_REPLACEMENT:
                    # A new unit within the make's tolerance: a little more head and
                    # efficiency, new bearings that run smoother and cooler.
                    mods.head_f *= 1.0 + 0.04 * s
                    mods.eff_f *= 1.0 + 0.05 * s
                    mods.vib_v *= 1.0 - 0.3 * s
                    mods.vib_a *= 1.0 - 0.35 * s
                    mods.brg_add -= 4.0 * s
                case FaultKind.CAVITATION:
                    if cav_noise is None:
                        # Its own stream: a fault must not reshuffle the sensor noise.
                        fault_rng = rng_for(self.scenario.seed, self.device.device_id, _FAULT_NOISE, block)
                        cav_noise = np.abs(fault_rng.standard_normal((2, m)))
                    # Inlet pressure falls; collapsing bubbles make the head
                    # break down unsteadily and excite high-frequency vibration.
                    mods.suction_drop += 0.75 * s
                    mods.head_f *= 1.0 - 0.12 * s - 0.08 * s * cav_noise[0]
                    mods.vib_a *= 1.0 + 3.0 * s * (1.0 + 0.6 * cav_noise[1])
                    mods.vib_v *= 1.0 + 0.6 * s
                case FaultKind.BEARING_WEAR:
                    mods.vib_v *= 1.0 + 2.5 * s
                    mods.vib_a *= 1.0 + 4.0 * s
                    mods.brg_add += 30.0 * s
                    mods.friction_w += 0.04 * s * rated_w * mods.ratio
                case FaultKind.SEAL_LEAK:
                    mods.leak = 1.0 - (1.0 - mods.leak) * (1.0 - 0.25 * s)
                case FaultKind.IMPELLER_WEAR:
                    mods.head_f *= 1.0 - 0.2 * s
                    mods.recirc = 1.0 - (1.0 - mods.recirc) * (1.0 - 0.15 * s)
                    mods.eff_f *= 1.0 - 0.2 * s
                case FaultKind.VALVE_BLOCKAGE:
                    mods.k_f *= 1.0 + 6.0 * s
                case _:
                    pass  # a recalibration biases the reading, not the physics
        return mods

    def _physics(
        self,
        ts: np.ndarray,
        events: list[Event],
        state: _State,
        process: np.random.Generator | None,
        *,
        ambient: bool,
        block: int = 0,
    ) -> tuple[dict[str, np.ndarray], _State]:
        model, tuning = self.model, self.model.tuning
        rho = tuning.fluid_density_kg_m3
        (ou_k, ou_ps, ou_v, ou_vib1, ou_vib2), ou_end = self._process_noise(ts.shape[0], state, process)
        mods = self._modifiers(ts, events, block)
        ratio = mods.ratio

        # Hydraulics. Flow lost before the meter (leak) or recirculated inside
        # the pump (open wear rings) is a parallel path: the pump sees a flatter system.
        delivered = (1.0 - mods.leak) * (1.0 - mods.recirc)
        k_f = mods.k_f * np.exp(0.03 * ou_k) * delivered * delivered
        q_pump, head = model.operating_point(ratio, mods.head_f, k_f)
        p_static = tuning.suction_pressure_pa * (1.0 + 0.01 * ou_ps)
        suction = (
            p_static
            - rho * G_N * tuning.suction_loss_m * (q_pump / model.q_rated) ** 2
            - mods.suction_drop * (p_static + ATM)
        )
        suction = np.maximum(suction, -ATM + 3.0e3)  # cannot fall below the vapour pressure

        # Power and the motor.
        p_el = model.electrical_power(q_pump, head, ratio, mods.eff_f, mods.friction_w)
        voltage = model.motor_voltage(ratio) * (1.0 + 0.005 * ou_v)
        current = model.current(p_el, voltage)
        losses = np.maximum(p_el * tuning.motor_efficiency - rho * G_N * q_pump * head, 0.0)

        fluid, motor, bearing, thermal_state = self._thermal(
            ts,
            state,
            current=current,
            ratio=ratio,
            losses=losses,
            q_pump=q_pump,
            brg_add=mods.brg_add,
            amb_add=mods.amb_add,
            ambient=ambient,
            lagged=process is not None,
        )

        # Vibration: ∝ speed², and more away from the best efficiency point.
        beta = q_pump / (model.q_rated * np.maximum(ratio, 1e-3))
        base = self._vib_scatter * ratio * ratio * (1.0 + 0.5 * (beta - 1.0) ** 2)
        accel = tuning.vibration_accel_m_s2 * base * mods.vib_a
        truth = {
            "suction_pressure": suction,
            "discharge_pressure": suction + rho * G_N * head,
            "flow_rate": q_pump * delivered,
            "motor_speed": ratio * model.speed_rad_s,
            "motor_current": current,
            "motor_voltage": voltage,
            "motor_power": p_el,
            "motor_temperature": motor,
            "bearing_temperature": bearing,
            "fluid_temperature": fluid,
            "vibration_velocity": tuning.vibration_velocity_m_s * base * mods.vib_v * np.exp(0.05 * ou_vib1),
            "vibration_accel_de": accel * np.exp(0.05 * ou_vib1),
            "vibration_accel_nde": 0.8 * accel * np.exp(0.05 * ou_vib2),
        }
        thermal_state.ou = ou_end
        return truth, thermal_state

    def _thermal(
        self,
        ts: np.ndarray,
        state: _State,
        *,
        current: np.ndarray,
        ratio: np.ndarray,
        losses: np.ndarray,
        q_pump: np.ndarray,
        brg_add: np.ndarray,
        amb_add: np.ndarray,
        ambient: bool,
        lagged: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, _State]:
        """Fluid, motor and bearing temperatures (K): first-order lags towards their targets."""
        model, tuning = self.model, self.model.tuning
        amb_c = self.climate.ambient_c(ts) if ambient else np.full(ts.shape[0], self.climate.mean_c)
        amb_c = amb_c + amb_add
        amb_k = amb_c + ZERO_C
        # Hydraulic losses heat the fluid; that shows only at low flow (a closed valve).
        heating = losses / (tuning.fluid_density_kg_m3 * CP_WATER * np.maximum(q_pump, 0.05 * model.q_rated))
        fluid_target = (
            tuning.fluid_temperature_c
            + ZERO_C
            + tuning.fluid_ambient_coupling * (amb_c - self.climate.mean_c)
            + heating
        )
        fluid = self._lag(fluid_target, tuning.fluid_tau_s, state.fluid_k, enabled=lagged)
        coolant = fluid if tuning.motor_cooled_by_fluid else amb_k
        # Copper losses go with the square of the current.
        load = current / model.nominal_current_a
        motor_target = coolant + tuning.motor_rise_k * self._rise_scatter * load * load
        motor = self._lag(motor_target, tuning.motor_tau_s, state.motor_k, enabled=lagged)
        housing = coolant + 0.3 * (fluid - coolant)
        bearing_target = housing + tuning.bearing_rise_k * self._rise_scatter * ratio**1.5 + brg_add
        bearing = self._lag(bearing_target, tuning.bearing_tau_s, state.bearing_k, enabled=lagged)
        return fluid, motor, bearing, _State(float(fluid[-1]), float(motor[-1]), float(bearing[-1]))

    def _lag(self, target: np.ndarray, tau_s: float, y0: float | None, *, enabled: bool) -> np.ndarray:
        if not enabled:
            return target
        # The pump has been running before the simulation starts: begin settled.
        start = float(target[0]) if y0 is None else y0
        return first_order_lag(target, self._dt_s, tau_s, start)


class FleetSimulator:
    """All devices of a scenario; makes each device's simulator on first use.

    Args:
        scenario: what to simulate.

    >>> from pumpops.sim import Scenario, build_fleet
    >>> sim = FleetSimulator(Scenario(devices=build_fleet(2), start_ms=0, duration_s=60, seed=1))
    >>> trace = sim.device("p-0001").trace()
    >>> trace.native.shape  # acme-ansi: 1 Hz, 9 sensors
    (60, 9)
    """

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self._devices: dict[str, DeviceSimulator] = {}

    def device(self, device_id: str) -> DeviceSimulator:
        """Return the simulator of one device.

        Raises:
            ConfigError: the device is not in the scenario.
        """
        sim = self._devices.get(device_id)
        if sim is None:
            sim = self._devices[device_id] = DeviceSimulator(self.scenario, device_id)
        return sim

    def events(self, until_ms: int | None = None) -> list[Event]:
        """Return every fault and drift event of the fleet that starts before ``until_ms``.

        Raises:
            ConfigError: no ``until_ms`` for an endless scenario.
        """
        end = self.scenario.end_ms if until_ms is None else until_ms
        if end is None:
            raise ConfigError("the scenario is endless: give events() an until_ms")
        found = [e for d in self.scenario.devices for e in self.device(d.device_id).events_until(end)]
        return sorted(found, key=lambda e: (e.start_ms, e.device_id, e.kind))
