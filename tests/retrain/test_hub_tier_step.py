"""The hub's retrain loop step runs the tiered response on real drift reports (issue 15).

Drift reports as agents send them are stored; ``HubServices._retrain_step``
(the body of ``hub serve --services``' retrain loop) reads the shift verdicts,
signs a recalibration order for the one device whose shift is its own,
notes the fault-like one, and leaves the rest alone; a second step does
not sign again. With ``retrain.enabled = false`` nothing happens.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pumpops.audit import workspace_signer
from pumpops.fleet import Device
from pumpops.hub import HubServices
from pumpops.release import open_repository, recalibration_orders
from pumpops.settings import init_workspace, load_settings
from pumpops.store import AgentRecord, open_store

DEVICES = ("p-1", "p-2", "p-3", "p-4", "p-5")


def _drift(device: str, seq: int, ts_ms: int, shifted: list[str], hint: str) -> AgentRecord:
    body = {
        "alert": bool(shifted) and hint != "fault_like",
        "shifted": shifted,
        "hint": hint,
        "shift": {s: {"shift_sd": 6.0, "shift": 2.0e4, "fired": True} for s in shifted},
        "since_ms": dict.fromkeys(shifted, ts_ms - 20 * 60_000),
    }
    body_json = json.dumps(body, separators=(",", ":"), sort_keys=True)
    return AgentRecord(
        msg_id=f"{device}:{seq}",
        device_id=device,
        site="site-1",
        kind="drift",
        ts_us=ts_ms * 1000,
        agent_version="0.1.0",
        body_json=body_json,
        payload_sha256=hashlib.sha256(body_json.encode()).hexdigest(),
        received_at_us=ts_ms * 1000 + 5_000,
    )


def _workspace(tmp_path: Path, enabled: bool) -> Path:
    ws = tmp_path / "ws"
    init_workspace(ws)
    toml = ws / "pumpops.toml"
    toml.write_text(toml.read_text() + f"\n[retrain]\nenabled = {str(enabled).lower()}\n", encoding="utf-8")
    settings = load_settings(ws)
    with open_store(settings.resolved_database_url) as store:
        store.upgrade()
    subprocess.run(
        [sys.executable, "-m", "pumpops", "-w", str(ws), "keys", "init"], check=True, capture_output=True
    )
    now_ms = int(time.time() * 1000)
    reports: dict[str, tuple[list[str], str]] = {
        "p-1": (["suction_pressure"], "sensor_shift"),  # its own shift: recalibrate it
        "p-2": (["vibration_velocity"], "fault_like"),  # a fault: keep alarming
        "p-3": ([], "none"),
        "p-4": ([], "none"),
        "p-5": ([], "none"),
    }
    with open_store(settings.resolved_database_url) as store:
        store.register_devices([Device(d, "site-1", "acme-ansi", "acme-ansi") for d in DEVICES])
        store.put_agent_messages([_drift(d, 1, now_ms - 5 * 60_000, *reports[d]) for d in DEVICES])
    return ws


@pytest.mark.parametrize("enabled", [True, False])
def test_retrain_step_signs_the_local_shift_and_notes_the_fault(tmp_path: Path, enabled: bool) -> None:
    ws = _workspace(tmp_path, enabled)
    settings = load_settings(ws)
    hub = HubServices(settings)
    with open_store(settings.resolved_database_url, audit_signer=workspace_signer(ws)) as store:
        hub._retrain_step(store)
        hub._retrain_step(store)  # the same verdicts: answered once
        actions = [(e.action, e.subject) for e in store.audit_entries() if e.action.startswith("tier.")]
    orders = recalibration_orders(open_repository(settings), "acme-ansi")
    if not enabled:
        assert actions == []
        assert orders == {}
        return
    assert actions == [("tier.recalibrate", "device/p-1"), ("tier.alarm", "device/p-2")]
    assert set(orders) == {"p-1"}
    assert orders["p-1"].order == 1
    assert orders["p-1"].evidence["shifted"] == ["suction_pressure"]
