"""Fleet monitoring: per device, group and model views of what the agents report, and fleet-level drift.

``_fleet.py`` turns the agents' stored
messages (alarms, summaries, drift reports, state) into a :class:`FleetView`
(:func:`build_fleet_view`); ``_drift.py`` decides when a device group drifts
(:func:`device_drift`, :func:`judge_group`, thresholds in :class:`DriftPolicy`
from the ``[monitoring]`` settings). ``_service.py`` is the thin shell:
:class:`MonitoringService` reads the store and opens and closes fleet drift
alerts (stored, audited, events); :func:`record_feedback` stores a
technician's verdict on an alarm. ``_cli.py``: ``pumpops fleet status|evaluate``,
``pumpops drift status``, ``pumpops feedback``. See ``docs/monitoring.md``.
May import: fleet, errors and the standard library (the pure modules); the
service and the commands also store, registry (events), audit, settings.
"""

from pumpops.monitoring._drift import DeviceDrift, DriftPolicy, GroupDrift, device_drift, judge_group
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

__all__ = [
    "DRIFT_ALERT_KIND",
    "EVENT_ALARM_FEEDBACK",
    "EVENT_DRIFT_CLEARED",
    "EVENT_DRIFT_DETECTED",
    "UNREGISTERED_GROUP",
    "AlarmStats",
    "AlertChange",
    "DeviceDrift",
    "DeviceView",
    "DriftPolicy",
    "Evaluation",
    "FleetView",
    "GroupDrift",
    "GroupView",
    "ModelView",
    "MonitoringService",
    "ScoreStats",
    "build_fleet_view",
    "device_drift",
    "find_alarm",
    "judge_group",
    "record_feedback",
]
