"""Fleet monitoring: per device, group and model views of what the agents report, and fleet-level drift.

Done (issue 7): the pure part. ``_fleet.py`` turns the agents' stored
messages (alarms, summaries, drift reports, state) into a :class:`FleetView`
(:func:`build_fleet_view`); ``_drift.py`` decides when a device group drifts
(:func:`device_drift`, :func:`judge_group`, thresholds in :class:`DriftPolicy`
from the ``[monitoring]`` settings). See ``docs/monitoring.md``.
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

__all__ = [
    "UNREGISTERED_GROUP",
    "AlarmStats",
    "DeviceDrift",
    "DeviceView",
    "DriftPolicy",
    "FleetView",
    "GroupDrift",
    "GroupView",
    "ModelView",
    "ScoreStats",
    "build_fleet_view",
    "device_drift",
    "judge_group",
]
