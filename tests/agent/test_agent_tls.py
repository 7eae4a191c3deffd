"""The agent's broker link with TLS and credentials, against a Mosquitto of the test's own.

The broker is configured as ``pumpops broker`` configures it (``pumpops.security``:
its CA, a server certificate for ``localhost``, per-device passwords, the access
rules); the agent gets what ``pumpops devices provision`` writes (``mqtts://``,
``ca_file``, ``username``, ``password_file``). A subscriber with the hub's ingest
identity sees its state and, after kill -9, its last will. The host name is checked:
the same broker reached as ``127.0.0.1`` (not in its certificate) is refused, and so
is a wrong password; the agent keeps running either way.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from _bare import DEVICE, SITE, bare_settings, start_agent, write_settings  # type: ignore[import-not-found]
from paho.mqtt.enums import CallbackAPIVersion

from pumpops.security import CredentialRegistry, write_broker_files

pytestmark = pytest.mark.slow


@dataclass
class Secured:
    port: int
    prefix: str
    ca: Path
    registry: CredentialRegistry
    device_password: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    tmp = tmp_path_factory.mktemp("tls-mosquitto")
    registry = CredentialRegistry(tmp / "ws" / "security")
    password = registry.add_device(DEVICE, site=SITE, group="g1")
    registry.ensure_hub_identities()
    port, prefix = _free_port(), f"tls{uuid.uuid4().hex[:8]}/v1"
    files = write_broker_files(
        registry, tmp / "broker", hostnames=["localhost"], port=port, bind="127.0.0.1", topic_prefix=prefix
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen(
        [binary, "-c", str(files.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    try:
        yield Secured(port, prefix, files.ca, registry, password)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class _Hub:
    """A subscriber with the hub's ingest identity, over TLS."""

    def __init__(self, s: Secured) -> None:
        self.states: list[dict[str, object]] = []
        self.lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hub-test-{uuid.uuid4().hex[:6]}")
        self.client.tls_set(ca_certs=str(s.ca))
        self.client.username_pw_set(
            "hub-ingest", s.registry.hub_password_file("hub-ingest").read_text().strip()
        )
        self.client.on_connect = lambda c, *_: c.subscribe(f"{s.prefix}/#", qos=1)
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("localhost", s.port)
        self.client.loop_start()
        assert ready.wait(10), "the hub subscriber could not subscribe"

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/state") and msg.payload:
            with self.lock:
                self.states.append(json.loads(msg.payload))

    def wait(self, status: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if any(s["body"].get("status") == status for s in self.states):  # type: ignore[union-attr]
                    return True
            time.sleep(0.1)
        return False

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _agent(tmp_path: Path, s: Secured, host: str, password: str) -> subprocess.Popen[bytes]:
    (tmp_path / "broker.password").write_text(password + "\n")
    broker = {
        "url": f"mqtts://{host}:{s.port}",
        "topic_prefix": s.prefix,
        "ca_file": str(s.ca),
        "username": DEVICE,
        "password_file": "broker.password",  # relative to agent.toml
    }
    config = write_settings(tmp_path, bare_settings(tmp_path, broker))
    return start_agent(config, tmp_path / "agent.log")


def test_tls_with_credentials_reports_state_and_the_last_will(tmp_path: Path, secured: Secured) -> None:
    hub = _Hub(secured)
    proc = _agent(tmp_path, secured, "localhost", secured.device_password)
    try:
        assert hub.wait("no_model", 60), (tmp_path / "agent.log").read_text()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert hub.wait("offline", 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        hub.close()


@pytest.mark.parametrize(
    ("host", "wrong_password"),
    [("127.0.0.1", False), ("localhost", True)],
    ids=["host-not-in-cert", "bad-password"],
)
def test_a_broker_it_cannot_trust_or_that_refuses_it_gets_nothing(
    tmp_path: Path, secured: Secured, host: str, wrong_password: bool
) -> None:
    hub = _Hub(secured)
    password = "not-" + secured.device_password if wrong_password else secured.device_password
    proc = _agent(tmp_path, secured, host, password)
    state_file = tmp_path / "state" / "state.json"
    try:
        deadline = time.monotonic() + 60
        while not state_file.exists() and time.monotonic() < deadline:  # the agent has started
            time.sleep(0.2)
        assert state_file.exists(), (tmp_path / "agent.log").read_text()[-3000:]
        assert not hub.wait("no_model", 5)
        assert proc.poll() is None  # the agent keeps running (and keeps its messages in the outbox)
        assert json.loads(state_file.read_bytes())["outbox_depth"] >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        hub.close()
    if wrong_password:
        assert "refused" in (tmp_path / "agent.log").read_text()
