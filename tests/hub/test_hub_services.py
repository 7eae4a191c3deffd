"""``pumpops hub serve --services``: ingest, monitoring, retrain policy and rollout controller as threads.

Against the Mosquitto on 127.0.0.1:1883 (own topic prefix) and SQLite: agents'
state messages published over MQTT are ingested, and the monitoring loop opens
a fleet drift alert when two of three pumps of a group report drift.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from pumpops.fleet import Device
from pumpops.hub._services import HubServices
from pumpops.schema import AgentMessage, encode_agent_message
from pumpops.settings import init_workspace, load_settings
from pumpops.store import open_store


def _state(device: str, seq: int, drifting: bool) -> bytes:
    body = {
        "status": "detecting",
        "model_name": "m",
        "model_version": 1,
        "health": "ok",
        "stale": False,
        "drift_status": {"status": "drift" if drifting else "ok"},
    }
    msg = AgentMessage(
        msg_id=f"{device}:{seq}",
        device_id=device,
        site="s1",
        kind="state",
        ts_ms=int(time.time() * 1000),
        agent_version="0.1.0",
        body=body,
    )
    return encode_agent_message(msg)


def test_hub_services_ingest_agent_messages_and_open_a_fleet_drift_alert(tmp_path: Path) -> None:
    prefix = f"test-hub-{uuid.uuid4().hex[:8]}/v1"
    ws = tmp_path / "ws"
    init_workspace(ws)
    settings = load_settings(ws, broker_url="mqtt://127.0.0.1:1883", topic_prefix=prefix)
    devices = [Device(f"p-{i}", "s1", "acme-ansi", "g1") for i in (1, 2, 3)]
    with open_store(settings.resolved_database_url) as store:
        store.upgrade()
        store.register_devices(devices)
    hub = HubServices(
        settings, monitoring_interval_s=0.2, retrain_interval_s=0.2, rollout_interval_s=0.2
    ).start()
    try:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-agents-{uuid.uuid4().hex[:6]}")
        client.connect("127.0.0.1", 1883)
        client.loop_start()
        for i, d in enumerate(devices, start=1):
            topic = f"{prefix}/s1/{d.device_id}/state"
            client.publish(topic, _state(d.device_id, 1, drifting=i < 3), qos=1).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()
        deadline = time.monotonic() + 30
        alerts = []
        while time.monotonic() < deadline and not alerts:
            with open_store(settings.resolved_database_url) as store:
                alerts = store.fleet_alerts(group="g1", open_only=True)
                stored = store.agent_messages(kind="state")
            time.sleep(0.2)
        assert len(stored) == 3
        assert len(alerts) == 1
        assert '"drifting_devices"' in alerts[0].detail_json
        assert hub.steps["rollout"] > 0
        assert hub.steps["retrain"] > 0
        assert hub.errors == {}
    finally:
        hub.stop()
