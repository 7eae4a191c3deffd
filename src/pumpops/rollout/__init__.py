"""Desired vs reported state per device, rollout waves, health gates and automatic rollback.

The decisions (issue 7) are pure, without I/O: ``_plan.py`` assigns a
group's devices to cumulative waves (:func:`plan_waves`), ``_gate.py`` judges
a wave from device reports (:func:`judge_wave`: pass, wait or fail), and
``_machine.py`` is the state machine (:func:`step`: state + event → new state +
actions to carry out). ``_service.py`` is the thin service that carries the
actions out (the stored state, audit entries, events) through a
:class:`DesiredPublisher` (``_desired.py``: retained ``desired`` MQTT messages
on ``pumpops.mqtt``); ``_reports.py`` builds device reports from the agent
messages in the store, ``_ports.py`` holds the Protocols the service needs.
Those names load on first use, so that importing this package loads no broker
or database library. See ``docs/rollout.md`` and ADR 0009.
May import: errors and the standard library (the pure modules); the service
modules also store (records), fleet, telemetry (topics), mqtt.
"""

from typing import TYPE_CHECKING

from pumpops._lazy import lazy_exports
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

if TYPE_CHECKING:
    from pumpops.rollout._desired import MqttDesiredPublisher
    from pumpops.rollout._ports import (
        DesiredPublisher,
        EventEmitter,
        IntentSigner,
        RolloutRow,
        RolloutStore,
    )
    from pumpops.rollout._reports import (
        ACTIVE_STATUSES,
        ReportOptions,
        desired_payload,
        device_report,
        parse_release_ref,
    )
    from pumpops.rollout._service import RolloutService, StepResult

#: The service side, loaded on first use (it imports the store's records and the telemetry topics).
_LAZY: dict[str, str] = {
    "MqttDesiredPublisher": "pumpops.rollout._desired",
    "DesiredPublisher": "pumpops.rollout._ports",
    "IntentSigner": "pumpops.rollout._ports",
    "EventEmitter": "pumpops.rollout._ports",
    "RolloutRow": "pumpops.rollout._ports",
    "RolloutStore": "pumpops.rollout._ports",
    "ACTIVE_STATUSES": "pumpops.rollout._reports",
    "ReportOptions": "pumpops.rollout._reports",
    "desired_payload": "pumpops.rollout._reports",
    "device_report": "pumpops.rollout._reports",
    "parse_release_ref": "pumpops.rollout._reports",
    "RolloutService": "pumpops.rollout._service",
    "StepResult": "pumpops.rollout._service",
}


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)


__all__ = [
    "ACTIVE_STATUSES",
    "DEFAULT_WAVES_PERCENT",
    "FINAL_STATUSES",
    "ROLLOUT_SCHEMA",
    "Abort",
    "Action",
    "Audit",
    "DesiredPublisher",
    "DeviceReport",
    "Emit",
    "Event",
    "EventEmitter",
    "GatePolicy",
    "GateVerdict",
    "Health",
    "IntentSigner",
    "MqttDesiredPublisher",
    "OnFail",
    "Pause",
    "ReportOptions",
    "Resume",
    "RolloutRow",
    "RolloutService",
    "RolloutState",
    "RolloutStatus",
    "RolloutStore",
    "SetDesired",
    "Start",
    "StepResult",
    "Tick",
    "Transition",
    "desired_payload",
    "device_report",
    "judge_wave",
    "new_rollout",
    "parse_release_ref",
    "parse_waves",
    "plan_waves",
    "step",
]
