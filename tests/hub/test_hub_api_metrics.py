"""``hub serve --services`` wiring of the API's metrics: ingest's writes timed, its counters exported.

Against the Mosquitto on 127.0.0.1:1883 (own topic prefix) and SQLite: one
agent state message published over MQTT is ingested by :class:`HubServices`
whose store is wrapped by the API's :class:`~pumpops.web.StoreWriteTimer`, as
``pumpops hub serve --services`` wires it; ``/metrics`` then shows the write and
the ingest counters.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import cast

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from pumpops.fleet import Device
from pumpops.hub import HubServices, api_context, create_app
from pumpops.schema import AgentMessage, encode_agent_message
from pumpops.settings import init_workspace, load_settings
from pumpops.store import TelemetryStore, open_store
from pumpops.web import StoreWriteTimer, mount_api

pytestmark = [pytest.mark.mosquitto]


def test_hub_services_ingest_writes_are_timed_and_counted_in_metrics(tmp_path: Path) -> None:
    prefix = f"test-hubm-{uuid.uuid4().hex[:8]}/v1"
    ws = tmp_path / "ws"
    init_workspace(ws)
    settings = load_settings(ws, broker_url="mqtt://127.0.0.1:1883", topic_prefix=prefix)
    with open_store(settings.resolved_database_url) as store, api_context(settings, store) as context:
        store.upgrade()
        store.register_devices([Device("p-1", "s1", "acme-ansi", "g1")])
        metrics = mount_api(create_app(tmp_path / "repo"), context)
        hub = HubServices(
            settings,
            monitoring_interval_s=60,
            retrain_interval_s=60,
            rollout_interval_s=60,
            wrap_ingest_store=lambda s: cast(TelemetryStore, StoreWriteTimer(s, metrics.store_writes)),
        ).start()
        context.ingest_stats = lambda: None if hub.ingest is None else hub.ingest.stats()
        try:
            message = AgentMessage(
                msg_id="p-1:1", device_id="p-1", site="s1", kind="state", ts_ms=int(time.time() * 1000),
                agent_version="0.1.0", body={"status": "detecting", "health": "ok"},
            )  # fmt: skip
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-agent-{uuid.uuid4().hex[:6]}")
            client.connect("127.0.0.1", 1883)
            client.loop_start()
            client.publish(f"{prefix}/s1/p-1/state", encode_agent_message(message), qos=1).wait_for_publish(5)
            client.loop_stop()
            client.disconnect()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not store.agent_messages(kind="state"):
                time.sleep(0.1)
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(metrics.render().decode())
                for s in family.samples
            }
        finally:
            hub.stop()
    assert samples[("pumpops_store_write_seconds_count", (("operation", "put_agent_messages"),))] >= 1
    assert samples[("pumpops_ingest_agent_messages_total", ())] == 1
    assert samples[("pumpops_ingest_connected", ())] == 1
    assert samples[("pumpops_devices", (("condition", "ok"),))] == 1
