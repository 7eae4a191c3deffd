# ruff: noqa: F811 - the fixtures are imported from _agent_world (no conftest: its basename would clash)
"""A staged rollout driven by the real rollout service, to real agent processes, over Mosquitto.

Two agents replay SKAB ``valve1/0.csv`` as two pumps of group ``skab-testbed``
(data clock, 10× real time) with v1 installed; the hub ingests their messages
(the real ingest service on 127.0.0.1:1883, own topic prefix) into SQLite;
``RolloutService`` rolls v2 out in two waves of one pump each, on the agents'
own clock (the median of their newest state reports): wave 1 is told, installs,
reports healthy, passes; wave 2 follows; the rollout completes.
"""

from __future__ import annotations

import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from _agent_world import (  # type: ignore[import-not-found]
    GROUP,
    AgentRun,
    Hub,
    Listener,
    Released,
    agent_settings,
    hub,  # noqa: F401 - fixture
    released,  # noqa: F401 - fixture
)

from pumpops.fleet import Device
from pumpops.registry import EventSink
from pumpops.rollout import GatePolicy
from pumpops.rollout._service import MqttDesiredPublisher, RolloutService
from pumpops.settings import IngestSettings
from pumpops.store import open_store
from pumpops.telemetry import BrokerAddress, IngestService


def test_rollout_service_moves_real_agents_wave_by_wave(hub: Hub, released: Released, tmp_path: Path) -> None:

    prefix = f"test-rollout-{uuid.uuid4().hex[:8]}/v1"
    pumps = ["skab-pump-a", "skab-pump-b"]
    hub.publish(released.bundles[1])
    with open_store(f"sqlite:///{tmp_path / 'hub.db'}") as store:
        store.upgrade()
        store.register_devices([Device(p, "skoltech", "skab-testbed", GROUP) for p in pumps])
        for v in (1, 2):
            store.add_release(
                "pumpops-skab", v, GROUP, ["x86_64-ipc"], created_by="test", bundle_root="b", record={}
            )
        ingest = IngestService(
            store,
            BrokerAddress("127.0.0.1", 1883),
            settings=IngestSettings(client_id=f"ingest-{uuid.uuid4().hex[:6]}"),
            topic_prefix=prefix,
        ).start()
        ingest.wait_ready()
        listener = Listener("mqtt://127.0.0.1:1883", prefix)
        agents = []
        try:
            for p in pumps:
                folder = tmp_path / p
                settings = agent_settings(
                    hub, "mqtt://127.0.0.1:1883", prefix, released.skab, folder / "state"
                )
                settings["agent"] |= {"device_id": p, "refresh_interval_s": 30, "state_interval_s": 30}
                settings["source"] |= {"speed": 10}
                folder.mkdir()
                run = AgentRun(folder, hub, "mqtt://127.0.0.1:1883", prefix, settings, tmp_path / f"{p}.log")
                agents.append((run, run.start()))
            # v1 everywhere first (no desired state: the newest), then v2 is released and rolled out.
            assert _wait(lambda: all(_version(store, p) == 1 for p in pumps), 60), [
                a.log() for a, _ in agents
            ]
            hub.publish(released.bundles[2])

            def clock() -> float:
                newest = [
                    max(r.ts_ms for r in store.agent_messages(device_id=p, kind="state")) for p in pumps
                ]
                return statistics.median(newest) / 1000

            sink = EventSink(store, None, topic_prefix=prefix)
            service = RolloutService(
                store,
                MqttDesiredPublisher(BrokerAddress("127.0.0.1", 1883)),
                events=sink,
                actor="test",
                topic_prefix=prefix,
                clock=clock,
            )
            gate = GatePolicy(min_soak_s=60, deadline_s=600, quorum_fraction=1.0, on_fail="rollback")
            rid = service.start("pumpops-skab/2", GROUP, (50, 100), gate, previous_version="1")
            statuses = []
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline and service.get(rid).status not in ("completed", "rolled_back"):
                for result in service.tick():
                    statuses.append((result.before, result.after, result.actions))
                time.sleep(0.5)
            state = service.get(rid)
            assert state.status == "completed", (statuses, [a.log()[-2000:] for a, _ in agents])
            assert all(_version(store, p) == 2 for p in pumps)
            actions = [a for _, _, acts in statuses for a in acts]
            assert "rollout.wave_passed" in actions
            assert actions[-1] == "rollout.completed"
            desired = {
                t.rsplit("/", 2)[-2]: b.get("version")
                for t, b, _ in listener.messages
                if t.endswith("/desired")
            }
            assert desired == {"skab-pump-a": 2, "skab-pump-b": 2}
        finally:
            for _, proc in agents:
                proc.kill()
                proc.wait()
            listener.close()
            ingest.stop()


def _version(store: Any, device: str) -> int | None:
    states = store.agent_messages(device_id=device, kind="state")
    return states[-1].body().get("model_version") if states else None


def _wait(predicate: Any, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.3)
    return False
