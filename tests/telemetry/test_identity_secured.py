"""Issue 13 rows 1, 2 and 6 over the secured broker: the access rules and the hub's binding together.

``pumpops broker config`` writes the Mosquitto configuration (TLS, password
file, ACL), ``pumpops devices provision`` gives two pumps their credentials,
the hub's ingest connects as ``hub-ingest``. Pump B, holding only its own
credentials, tries to speak for pump A: on A's topics the broker delivers
nothing (Mosquitto acknowledges a denied publish and drops it, so a control
message that *is* delivered proves the forged one was not), and on B's own
topics the hub dead-letters every message that names A as ``wrong_identity``,
naming B. Pump A's genuine messages, with the ids B tried to take, are then
stored.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from pumpops.cli import app
from pumpops.fleet import Device
from pumpops.hub import ingest_service, open_workspace_store
from pumpops.schema import TOPIC_OF_KIND, AgentMessage, encode_agent_message, with_msg_id
from pumpops.settings import Settings, load_settings
from pumpops.store import TelemetryStore
from pumpops.telemetry import IngestService, build_topic, parse_broker_url

from .conftest import make_msg, now_ms, wait_until

pytestmark = pytest.mark.mosquitto

SITE = "site-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@dataclass
class Pump:
    device: Device
    folder: Path  # what `devices provision` wrote for it: CA file, password file, agent.toml

    @property
    def password(self) -> str:
        return (self.folder / "broker.password").read_text().splitlines()[0]


@dataclass
class Secured:
    ws: Path
    port: int
    pid: int
    settings: Settings
    a: Pump
    b: Pump


def _mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(found).exists():
        pytest.skip("mosquitto is not installed")
    return found


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    binary = _mosquitto_binary()
    ws = tmp_path / "ws"
    assert CliRunner().invoke(app, ["init", str(ws)]).exit_code == 0
    port = _free_port()
    result = CliRunner().invoke(
        app,
        ["-w", str(ws), "broker", "config", "--out", str(tmp_path / "broker"),
         "--hostname", "localhost", "--port", str(port), "--bind", "127.0.0.1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    settings_file = ws / "pumpops.toml"
    text = settings_file.read_text().replace(
        'broker_url = "embedded"', f'broker_url = "mqtts://localhost:{port}"'
    )
    settings_file.write_text(text + "\n" + (tmp_path / "broker" / "broker-settings.toml").read_text())
    pumps = []
    for name in ("a", "b"):
        device = Device(f"pump-{name}-{uuid.uuid4().hex[:6]}", SITE, "acme-ansi", "g1")
        out = tmp_path / device.device_id
        provisioned = CliRunner().invoke(
            app,
            ["-w", str(ws), "devices", "provision", device.device_id, "--site", SITE, "--group", "g1",
             "--profile", "acme-ansi", "--broker-url", f"mqtts://localhost:{port}", "--out", str(out)],
        )  # fmt: skip
        assert provisioned.exit_code == 0, provisioned.output
        pumps.append(Pump(device, out))
    proc = subprocess.Popen(
        [binary, "-c", str(tmp_path / "broker" / "mosquitto.conf")], stdout=subprocess.DEVNULL
    )
    try:
        _wait_port(port)
        os.kill(proc.pid, signal.SIGHUP)  # harmless: the password file already holds both pumps
        yield Secured(ws, port, proc.pid, load_settings(ws), pumps[0], pumps[1])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class PumpClient:
    """A pump's own MQTT link: its user name and password, TLS with the CA it was given."""

    def __init__(self, pump: Pump, port: int) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=pump.device.device_id, protocol=mqtt.MQTTv311
        )
        self.client.username_pw_set(pump.device.device_id, pump.password)
        self.client.tls_set(ca_certs=str(pump.folder / "ca.pem"), cert_reqs=ssl.CERT_REQUIRED)
        deadline = time.monotonic() + 10
        while True:  # the broker may still be rereading its password file
            try:
                self.client.connect("localhost", port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=10)
        assert info.is_published()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _agent(device_id: str, seq: int, **body: object) -> bytes:
    message = AgentMessage(
        device_id=device_id,
        site=SITE,
        kind="alarm",
        ts_ms=now_ms() - 60_000,
        agent_version="0.1.0",
        body=body,
    )
    return with_msg_id(encode_agent_message(message), f"{device_id}:{seq}")


def _alarms(settings: Settings, device_id: str) -> str:
    return build_topic(SITE, device_id, TOPIC_OF_KIND["alarm"], prefix=settings.topic_prefix)  # type: ignore[arg-type]


def _ingest(secured: Secured, store: TelemetryStore) -> IngestService:
    address = parse_broker_url(secured.settings.broker_url)
    assert address is not None
    service = ingest_service(secured.settings, store, address).start()
    service.wait_ready(10)
    return service


def test_identity_secured_pump_cannot_speak_for_another_pump(secured: Secured) -> None:
    settings, a, b = secured.settings, secured.a.device, secured.b.device
    prefix = settings.topic_prefix
    genuine = make_msg(a, prefix=prefix, seed=1)  # its id is predictable: <device>-<first ts>-<rows>
    forged = make_msg(a, msg_id=genuine.msg_id, prefix=prefix, seed=2)
    control = make_msg(b, prefix=prefix, seed=3)
    with open_workspace_store(settings, upgrade=True) as store:
        store.register_devices(
            [a, b]
        )  # the broker admits them; the hub stores readings of registered devices
        service = _ingest(secured, store)
        attacker = PumpClient(secured.b, secured.port)
        try:
            # on A's topics: the broker's access rules drop them (QoS 0: a denied QoS 1 publish ends the link)
            attacker.publish(genuine.topic, forged.payload(), qos=0)
            attacker.publish(_alarms(settings, a.device_id), _agent(a.device_id, 1, event="forged"), qos=0)
            # on B's own topics, speaking for A: delivered, and refused by the hub
            attacker.publish(build_topic(SITE, b.device_id, prefix=prefix), forged.payload())
            attacker.publish(_alarms(settings, b.device_id), _agent(a.device_id, 1, event="forged"))
            attacker.publish(control.topic, control.payload())  # B's own readings: stored
            wait_until(lambda: service.stats().committed >= 3, timeout_s=20, what="B's messages committed")
            time.sleep(0.5)  # anything the broker had let through would have arrived with the control
            stats = service.stats()
            assert (stats.received, stats.stored_messages, stats.rejected_messages) == (3, 1, 2), [
                (d.reason, d.detail) for d in store.dead_letters()
            ]
            letters = store.dead_letters()
            assert sorted(d.reason for d in letters) == ["wrong_identity", "wrong_identity"]
            assert {d.device_id for d in letters} == {b.device_id}  # the sender, as the topic proves it
            assert len(store.query(a.device_id).ts_us) == 0
            assert store.agent_messages(device_id=a.device_id) == []

            pump_a = PumpClient(secured.a, secured.port)
            try:
                pump_a.publish(genuine.topic, genuine.payload())
                pump_a.publish(_alarms(settings, a.device_id), _agent(a.device_id, 1, event="raised"))
            finally:
                pump_a.close()
            wait_until(lambda: service.stats().committed >= 5, timeout_s=20, what="A's messages committed")
            stats = service.stats()
            assert (stats.stored_messages, stats.agent_messages, stats.id_conflicts) == (2, 1, 0)
            assert store.query(a.device_id).ts_us.tolist() == [t * 1000 for t in genuine.ts_ms]
            (alarm,) = store.agent_messages(device_id=a.device_id)
            assert alarm.body() == {"event": "raised"}
        finally:
            attacker.close()
            service.stop()
