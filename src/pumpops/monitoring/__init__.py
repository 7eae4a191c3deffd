"""Fleet monitoring: per device, group and model views of what the agents report, and fleet-level drift.

``_fleet.py`` turns the agents' stored
messages (alarms, summaries, drift reports, state) into a :class:`FleetView`
(:func:`build_fleet_view`); ``_drift.py`` decides when a device group drifts
(:func:`device_drift`, :func:`judge_group`, thresholds in :class:`DriftPolicy`
from the ``[monitoring]`` settings). ``_service.py`` is the thin shell:
:class:`MonitoringService` reads the store and opens and closes fleet drift
alerts (stored, audited, events); :func:`record_feedback` stores a
technician's verdict on an alarm. ``pumpops.cli.monitoring``: ``pumpops fleet status|evaluate``,
``pumpops drift status``, ``pumpops feedback``. See ``docs/monitoring.md``.
May import: fleet, errors and the standard library (the pure modules); the
service and the commands also store, registry (events), audit, settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pumpops._lazy import lazy_exports

if TYPE_CHECKING:
    from pumpops.monitoring._drift import (
        NO_DATA,
        DeviceDrift,
        DriftPolicy,
        GroupDrift,
        device_drift,
        judge_group,
    )
    from pumpops.monitoring._fleet import (
        UNREGISTERED_GROUP,
        AlarmStats,
        DeviceView,
        FleetView,
        GroupView,
        ModelView,
        ScoreStats,
        build_fleet_view,
    )
    from pumpops.monitoring._service import (
        DRIFT_ALERT_KIND,
        EVENT_ALARM_FEEDBACK,
        EVENT_DRIFT_CLEARED,
        EVENT_DRIFT_DETECTED,
        AlertChange,
        Evaluation,
        MonitoringService,
        find_alarm,
        record_feedback,
    )
    from pumpops.monitoring._shift_verdicts import (
        DeviceShift,
        GroupResponse,
        GroupShift,
        device_shift,
        judge_shifts,
        model_affected,
        plan_response,
    )

__all__ = [
    "DRIFT_ALERT_KIND",
    "EVENT_ALARM_FEEDBACK",
    "EVENT_DRIFT_CLEARED",
    "EVENT_DRIFT_DETECTED",
    "NO_DATA",
    "UNREGISTERED_GROUP",
    "AlarmStats",
    "AlertChange",
    "DeviceDrift",
    "DeviceShift",
    "DeviceView",
    "DriftPolicy",
    "Evaluation",
    "FleetView",
    "GroupDrift",
    "GroupResponse",
    "GroupShift",
    "GroupView",
    "ModelView",
    "MonitoringService",
    "ScoreStats",
    "build_fleet_view",
    "device_drift",
    "device_shift",
    "find_alarm",
    "judge_group",
    "judge_shifts",
    "model_affected",
    "plan_response",
    "record_feedback",
]

#: Where each exported name lives: loaded on first use, so that a command
#: module importing one pure submodule does not load the store and the registry.
_HOMES = {
    "NO_DATA": "pumpops.monitoring._drift",
    "DeviceDrift": "pumpops.monitoring._drift",
    "DriftPolicy": "pumpops.monitoring._drift",
    "GroupDrift": "pumpops.monitoring._drift",
    "device_drift": "pumpops.monitoring._drift",
    "judge_group": "pumpops.monitoring._drift",
    "DeviceShift": "pumpops.monitoring._shift_verdicts",
    "GroupShift": "pumpops.monitoring._shift_verdicts",
    "GroupResponse": "pumpops.monitoring._shift_verdicts",
    "model_affected": "pumpops.monitoring._shift_verdicts",
    "plan_response": "pumpops.monitoring._shift_verdicts",
    "device_shift": "pumpops.monitoring._shift_verdicts",
    "judge_shifts": "pumpops.monitoring._shift_verdicts",
    "UNREGISTERED_GROUP": "pumpops.monitoring._fleet",
    "AlarmStats": "pumpops.monitoring._fleet",
    "DeviceView": "pumpops.monitoring._fleet",
    "FleetView": "pumpops.monitoring._fleet",
    "GroupView": "pumpops.monitoring._fleet",
    "ModelView": "pumpops.monitoring._fleet",
    "ScoreStats": "pumpops.monitoring._fleet",
    "build_fleet_view": "pumpops.monitoring._fleet",
    "DRIFT_ALERT_KIND": "pumpops.monitoring._service",
    "EVENT_ALARM_FEEDBACK": "pumpops.monitoring._service",
    "EVENT_DRIFT_CLEARED": "pumpops.monitoring._service",
    "EVENT_DRIFT_DETECTED": "pumpops.monitoring._service",
    "AlertChange": "pumpops.monitoring._service",
    "Evaluation": "pumpops.monitoring._service",
    "MonitoringService": "pumpops.monitoring._service",
    "find_alarm": "pumpops.monitoring._service",
    "record_feedback": "pumpops.monitoring._service",
}


__getattr__, __dir__ = lazy_exports(globals(), _HOMES)
