"""Desired vs reported state per device, rollout waves, health gates and automatic rollback.

The decisions (issue 7) are pure, without I/O: ``_plan.py`` assigns a
group's devices to cumulative waves (:func:`plan_waves`), ``_gate.py`` judges
a wave from device reports (:func:`judge_wave`: pass, wait or fail), and
``_machine.py`` is the state machine (:func:`step`: state + event → new state +
actions to carry out). ``_service.py`` is the thin service that carries the
actions out (retained ``desired`` MQTT messages, the stored state, audit
entries, events) and builds reports from the agent messages in the store;
``_cli.py`` is ``pumpops rollout``. Both are imported from their modules, not
from here, so that importing this package loads no broker or database library.
See ``docs/rollout.md`` and ADR 0009.
May import: errors and the standard library (the pure modules); ``_service``
and ``_cli`` also store, fleet, telemetry, registry (the event sink), settings.
"""

from pumpops.rollout._gate import DeviceReport, GatePolicy, GateVerdict, Health, OnFail, judge_wave
from pumpops.rollout._machine import (
    FINAL_STATUSES,
    ROLLOUT_SCHEMA,
    Abort,
    Action,
    Audit,
    Emit,
    Event,
    Pause,
    Resume,
    RolloutState,
    RolloutStatus,
    SetDesired,
    Start,
    Tick,
    Transition,
    new_rollout,
    step,
)
from pumpops.rollout._plan import DEFAULT_WAVES_PERCENT, parse_waves, plan_waves

__all__ = [
    "DEFAULT_WAVES_PERCENT",
    "FINAL_STATUSES",
    "ROLLOUT_SCHEMA",
    "Abort",
    "Action",
    "Audit",
    "DeviceReport",
    "Emit",
    "Event",
    "GatePolicy",
    "GateVerdict",
    "Health",
    "OnFail",
    "Pause",
    "Resume",
    "RolloutState",
    "RolloutStatus",
    "SetDesired",
    "Start",
    "Tick",
    "Transition",
    "judge_wave",
    "new_rollout",
    "parse_waves",
    "plan_waves",
    "step",
]
