"""Pins the public API of ``pumpops.rollout``: a change to this list is a change users see."""

from __future__ import annotations

import pumpops.rollout

_PUBLIC = {
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
}


def test_rollout_exported_members_are_pinned() -> None:
    assert set(pumpops.rollout.__all__) == _PUBLIC
    for name in pumpops.rollout.__all__:
        assert hasattr(pumpops.rollout, name), name


def test_rollout_imports_no_io_libraries() -> None:
    # the decisions stay pure: importing them must not pull in the broker or the database
    import subprocess
    import sys

    code = (
        "import sys, pumpops.rollout; "
        "bad = [m for m in ('paho', 'sqlalchemy', 'aiomqtt', 'amqtt', 'mlflow') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
