"""How the engine cuts time: blocks of samples, their random streams, and the state carried between them.

A device's samples are cut into fixed blocks of :data:`BLOCK_SAMPLES`; block
``k`` starts from the :class:`_State` at the end of block ``k - 1``. The
active events reshape one block's physics through :class:`_Modifiers`;
random events of one family are drawn lazily by a :class:`_Renewal`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pumpops.sim._scenario import Event

__all__ = ["BLOCK_SAMPLES"]

#: Samples per block: long enough to amortise numpy's per-call cost, short
#: enough that a thousand devices' current blocks fit in memory.
BLOCK_SAMPLES = 1024
# Block states kept: the last few, and a checkpoint every so many blocks, so an
# endless stream keeps bounded memory and random access stays cheap.
_RECENT_STATES = 8
_CHECKPOINT = 64

# Purposes of the random streams (the last words of the SeedSequence key).
_DEVICE_CONSTANTS, _FAULTS, _DRIFTS, _PROCESS, _NOISE, _FAULT_NOISE, _SITE = range(7)

# Slow process fluctuations, as Ornstein-Uhlenbeck processes (time constants, s):
# system resistance (valve hunting), inlet pressure (tank level), grid voltage,
# and vibration amplitude at the two bearings.
_OU_TAU_S = (300.0, 600.0, 900.0, 30.0, 30.0)


@dataclass(slots=True)
class _State:
    """What carries over from one block to the next."""

    fluid_k: float | None = None
    motor_k: float | None = None
    bearing_k: float | None = None
    ou: tuple[float, ...] = ()


@dataclass(slots=True)
class _Modifiers:
    """How the active events change the physics of one block (1 / 0 = no change)."""

    ratio: np.ndarray  # speed over rated speed
    head_f: np.ndarray  # shut-off head multiplier
    k_f: np.ndarray  # system friction multiplier
    leak: np.ndarray  # share of the pumped flow lost before the meter
    recirc: np.ndarray  # share recirculated inside the pump
    eff_f: np.ndarray  # pump efficiency multiplier
    friction_w: np.ndarray  # extra mechanical loss, W
    suction_drop: np.ndarray  # inlet pressure lost, as a share of the absolute pressure
    vib_v: np.ndarray  # vibration velocity multiplier
    vib_a: np.ndarray  # vibration acceleration multiplier
    brg_add: np.ndarray  # extra bearing temperature rise, K
    amb_add: np.ndarray  # ambient temperature change (a season), K

    @classmethod
    def neutral(cls, m: int, ratio: float) -> _Modifiers:
        ones, zeros = np.ones(m), np.zeros(m)
        return cls(
            ratio=np.full(m, ratio),
            head_f=ones.copy(),
            k_f=ones.copy(),
            leak=zeros.copy(),
            recirc=zeros.copy(),
            eff_f=ones.copy(),
            friction_w=zeros.copy(),
            suction_drop=zeros.copy(),
            vib_v=ones.copy(),
            vib_a=ones.copy(),
            brg_add=zeros,
            amb_add=zeros.copy(),
        )


@dataclass(slots=True)
class _Renewal:
    """Random events of one family, one after another, drawn lazily up to a horizon."""

    rng: np.random.Generator
    rate_per_day: float
    duration_s: tuple[float, float]
    make: Callable[[np.random.Generator, int, int], Event]
    next_free_ms: int
    events: list[Event] = field(default_factory=list)

    def extend(self, until_ms: int) -> None:
        if self.rate_per_day <= 0:
            return
        while not self.events or self.events[-1].start_ms < until_ms:
            gap_s = float(self.rng.exponential(86_400.0 / self.rate_per_day))
            length_s = float(self.rng.uniform(*self.duration_s))
            start = self.next_free_ms + max(1, round(gap_s * 1000))
            end = start + max(1000, round(length_s * 1000))
            self.events.append(self.make(self.rng, start, end))
            self.next_free_ms = end
