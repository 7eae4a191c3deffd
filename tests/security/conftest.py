"""A real Mosquitto run from the configuration ``pumpops broker config`` writes (TLS, passwords, ACL).

Each module gets its own broker on a free port, its own credentials registry
and its own topic prefix; clients are ``pumpops.mqtt`` connections, the same
adapter the hub and the agent use.
"""

from __future__ import annotations

import contextlib
import gc
import queue
import shutil
import socket
import subprocess
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pumpops.errors import BrokerError
from pumpops.mqtt import ClientOptions, Connection, Message
from pumpops.security import BrokerFiles, CredentialRegistry, write_broker_files
from pumpops.telemetry import BrokerAddress

WAIT_S = 10.0  # the longest a delivery may take before a test calls it missing


def collect_leaked_sockets() -> None:
    """Collect the sockets of failed TLS handshakes now, quietly.

    paho (client side) and asyncio's SSL transport under amqtt (server side)
    leave the socket of a refused TLS handshake to the garbage collector, which
    warns (ResourceWarning) in whichever later test it happens to run.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@dataclass
class Client:
    """A connected client and the messages it received."""

    conn: Connection
    inbox: queue.Queue[Message] = field(default_factory=queue.Queue)
    disconnects: list[object] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.conn.wait_published([(topic, self.conn.publish(topic, payload, qos=1, retain=retain))], WAIT_S)

    def attempt(self, topic: str, payload: bytes, *, retain: bool = False) -> str:
        """Publish with QoS 1 as an attacker would and wait until the broker has dealt with it.

        Mosquitto 2.0.11 answers a denied QoS 1 publish from an MQTT 3.1.1 client
        with a PUBACK carrying reason 135, which 3.1.1 has no room for: paho drops
        the link. Either way the broker has processed the message when this returns.
        """
        info = self.conn.publish(topic, payload, qos=1, retain=retain)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if self.disconnects:
                return "disconnected"
            with contextlib.suppress(RuntimeError):  # paho: "not currently connected"
                if info.is_published():
                    return "acknowledged"
            time.sleep(0.02)
        raise AssertionError(f"the broker neither acknowledged nor dropped the publish on {topic}")

    def receive_until(self, payload: bytes) -> list[tuple[str, bytes]]:
        """Everything received up to and including the control message ``payload``."""
        got: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                msg = self.inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            got.append((msg.topic, bytes(msg.payload)))
            if msg.payload == payload:
                return got
        raise AssertionError(f"control message {payload!r} never arrived; got {got}")

    def close(self) -> None:
        self.conn.close()


@dataclass
class Broker:
    """A secured broker under test: its address, its registry, its files, its topic prefix."""

    host: str
    port: int
    tls: bool
    registry: CredentialRegistry
    prefix: str
    ca_file: Path
    files: BrokerFiles | None = None
    proc: subprocess.Popen[bytes] | None = None
    clients: list[Client] = field(default_factory=list)

    def topic(self, device: str, kind: str, site: str = "site-1") -> str:
        return f"{self.prefix}/{site}/{device}/{kind}"

    def hub_password(self, name: str) -> str:
        return self.registry.hub_password_file(name).read_text().strip()

    def address(
        self,
        username: str | None,
        password: str | None,
        *,
        host: str | None = None,
        ca_file: Path | None = None,
        tls: bool | None = None,
    ) -> BrokerAddress:
        use_tls = self.tls if tls is None else tls
        ca = str(ca_file or self.ca_file) if use_tls else None
        return BrokerAddress(
            host or self.host, self.port, tls=use_tls, ca_file=ca, username=username, password=password
        )

    def connect(
        self,
        username: str | None,
        password: str | None,
        *,
        client_id: str | None = None,
        subscriptions: Sequence[str] = (),
        clean_session: bool = True,
        timeout_s: float = WAIT_S,
        reconnect_s: int = 60,
        **where: object,
    ) -> Client:
        """A connected client (subscriptions acknowledged); BrokerError if the broker refuses it."""
        address = self.address(username, password, **where)  # type: ignore[arg-type]
        options = ClientOptions(
            client_id=client_id or f"test-{uuid.uuid4().hex[:12]}",
            clean_session=clean_session,
            username=address.username,
            password=address.password,
            tls=address.tls_options(),
            reconnect_min_s=reconnect_s,  # 60: a refused client must not retry during the test
            reconnect_max_s=reconnect_s,
        )
        inbox: queue.Queue[Message] = queue.Queue()
        disconnects: list[object] = []
        conn = Connection(
            address.host,
            address.port,
            options,
            subscriptions=subscriptions,
            on_message=inbox.put,
            on_disconnect=lambda reason, _was_up: disconnects.append(reason),
        )
        conn.connect(timeout_s)
        client = Client(conn, inbox, disconnects)
        self.clients.append(client)
        if subscriptions and not conn.wait_subscribed(WAIT_S):
            raise AssertionError("subscription not acknowledged")
        return client

    def refused(self, username: str | None, password: str | None, **where: object) -> str:
        """Connect and expect refusal; return the error text."""
        with pytest.raises(BrokerError) as info:
            self.connect(username, password, timeout_s=3.0, **where)
        collect_leaked_sockets()
        return str(info.value)

    def provision(self, device: str) -> str:
        return self.registry.add_device(device, site="site-1", group="g1")

    def close_clients(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                client.close()
        self.clients.clear()


def start_mosquitto(tmp: Path, *, prefix: str) -> Broker:
    registry = CredentialRegistry(tmp / "ws" / "security")
    port = free_port()
    files = write_broker_files(
        registry, tmp / "broker", hostnames=["localhost"], port=port, bind="127.0.0.1", topic_prefix=prefix
    )
    with files.config.open("a") as conf:
        conf.write(f"log_dest file {tmp / 'mosquitto.log'}\nlog_type all\n")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(files.config)], stdout=subprocess.DEVNULL)
    wait_port(port)
    return Broker("localhost", port, True, registry, prefix, files.ca, files=files, proc=proc)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """Mosquitto with the generated TLS + password + ACL configuration."""
    tmp = tmp_path_factory.mktemp("secured-mosquitto")
    broker = start_mosquitto(tmp, prefix=f"sec{uuid.uuid4().hex[:8]}/v1")
    try:
        yield broker
    finally:
        broker.close_clients()
        collect_leaked_sockets()
        assert broker.proc is not None
        broker.proc.terminate()
        broker.proc.wait(timeout=10)


@pytest.fixture
def broker(secured: Broker) -> Iterator[Broker]:
    yield secured
    secured.close_clients()
