"""Pins the public API of ``pumpops.monitoring``: a change to this list is a change users see."""

from __future__ import annotations

import subprocess
import sys

import pumpops.monitoring

_PUBLIC = {
    "DRIFT_ALERT_KIND",
    "EVENT_ALARM_FEEDBACK",
    "EVENT_DRIFT_CLEARED",
    "EVENT_DRIFT_DETECTED",
    "NO_DATA",
    "AlertChange",
    "Evaluation",
    "MonitoringService",
    "find_alarm",
    "record_feedback",
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
    "DeviceShift",
    "GroupShift",
    "GroupResponse",
    "model_affected",
    "plan_response",
    "device_shift",
    "judge_shifts",
}


def test_monitoring_exported_members_are_pinned() -> None:
    assert set(pumpops.monitoring.__all__) == _PUBLIC
    for name in pumpops.monitoring.__all__:
        assert hasattr(pumpops.monitoring, name), name


def test_monitoring_pure_modules_import_no_io_libraries() -> None:
    code = (
        "import sys, pumpops.monitoring._fleet, pumpops.monitoring._drift; "
        "import pumpops.monitoring._shift_verdicts; "
        "bad = [m for m in ('paho', 'sqlalchemy', 'aiomqtt', 'amqtt', 'mlflow') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
