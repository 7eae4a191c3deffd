"""The loop demo's broker: the open embedded one, or (``--secure``) Mosquitto from ``pumpops broker config``.

``pumpops demo --secure`` runs the same story over the configuration an operator
deploys (issue 13): :func:`pumpops.security.write_broker_files` writes
``mosquitto.conf`` (one TLS listener on 127.0.0.1, a password file, the ACL), the
hub's services connect over TLS as ``hub-ingest`` and ``hub-rollout`` with their
own passwords (``[broker_auth]`` in the demo's ``pumpops.toml``), and every
pump is provisioned like ``pumpops devices provision`` does: its own user name
and password (the hub keeps only hashes), the broker CA, and an ``agent.toml``
whose ``[broker]`` says ``mqtts://localhost:<port>`` with them.

Mosquitto rather than the embedded broker's secure mode: the demo then shows
the broker a fleet runs on (its ACL semantics, its TLS stack), the same one the
end-to-end attack tests run against (``tests/e2e_security``); the embedded
secure mode is tested on its own (``tests/security/test_embedded_access.py``).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pumpops.errors import ServiceError
from pumpops.fleet import Device
from pumpops.hub import broker_process, stop_processes, tail
from pumpops.security import CredentialRegistry, write_broker_files, write_private
from pumpops.telemetry import BrokerAddress

__all__ = ["DemoBroker", "agent_broker_lines", "demo_broker", "secure_settings_lines"]

#: The name the broker's certificate carries, and the name every client checks.
HOSTNAME = "localhost"


@dataclass(frozen=True)
class DemoBroker:
    """The running broker of the loop demo.

    Attributes:
        port: the port it listens on (127.0.0.1).
        proc: its process.
        log: its output.
        secure: TLS, passwords and the ACL (``--secure``), else the open embedded broker.
        folder: the broker's files (secure: ``mosquitto.conf``, ``ca.pem``, ...).
    """

    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    secure: bool
    folder: Path | None = None

    @property
    def address(self) -> BrokerAddress:
        """Where the hub's services reach it (their identities come from ``[broker_auth]``)."""
        if self.secure:
            return BrokerAddress(HOSTNAME, self.port, tls=True)
        return BrokerAddress("127.0.0.1", self.port)

    @property
    def url(self) -> str:
        """The URL the agents are given."""
        return self.address.url

    def describe(self) -> dict[str, Any]:
        """What the summary says about the broker."""
        return {"url": self.url, "secure": self.secure, "pid": self.proc.pid}


def _provision(registry: CredentialRegistry, fleet: Sequence[Device], agents: Path, ca_pem: bytes) -> None:
    """Each pump's identity as ``pumpops devices provision`` issues it: password and CA in its folder."""
    for device in fleet:
        password = registry.add_device(device.device_id, site=device.site, group=device.group, force=True)
        folder = agents / device.device_id
        write_private(folder / "broker.password", (password + "\n").encode())
        write_private(folder / "ca.pem", ca_pem)


def agent_broker_lines(broker: DemoBroker, device_id: str) -> list[str]:
    """The ``[broker]`` lines of a demo agent's ``agent.toml`` (paths relative to its folder)."""
    lines = [f'url = "{broker.url}"']
    if broker.secure:  # what `pumpops devices provision` writes
        lines += [f'username = "{device_id}"', 'password_file = "broker.password"', 'ca_file = "ca.pem"']
    return lines


def secure_settings_lines(ws: Path, broker: DemoBroker) -> tuple[str, str]:
    """``pumpops.toml`` lines for the hub's services: the top-level ``broker_url`` and ``[broker_auth]``."""
    assert broker.folder is not None  # only a secure broker has its files
    registry = CredentialRegistry.of_workspace(ws)
    top = f'broker_url = "{broker.url}"  # pumpops demo --secure: Mosquitto with TLS, passwords, ACL\n'
    auth = ["", "[broker_auth]", f'ca_file = "{broker.folder / "ca.pem"}"']
    for service in ("ingest", "rollout", "events"):
        name = f"hub-{service}"
        auth += [
            "",
            f"[broker_auth.{service}]",
            f'username = "{name}"',
            f'password_file = "{registry.hub_password_file(name)}"',
        ]
    return top, "\n".join(auth) + "\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _mosquitto(
    ws: Path, fleet: Sequence[Device], topic_prefix: str, timeout_s: float = 20.0
) -> Iterator[DemoBroker]:
    binary = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).is_file()), None
    )
    if binary is None:
        raise ServiceError(
            "pumpops demo --secure runs Mosquitto with the configuration `pumpops broker config` writes, "
            "and no `mosquitto` is installed: install it (apt-get install mosquitto), or run `pumpops demo`"
        )
    registry = CredentialRegistry.of_workspace(ws)
    registry.ensure_hub_identities()
    _provision(registry, fleet, ws / "agents", registry.ca().cert_pem)
    port = _free_port()
    files = write_broker_files(
        registry, ws / "broker", hostnames=[HOSTNAME], port=port, bind="127.0.0.1", topic_prefix=topic_prefix
    )
    log = ws / "broker.log"
    with files.config.open("a", encoding="utf-8") as conf:
        conf.write("# pumpops demo: connections and refusals to the demo's log\nlog_dest stdout\n")
    with log.open("ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - the Mosquitto binary with our generated configuration
            [binary, "-c", str(files.config)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise ServiceError(
                    f"mosquitto exited (code {proc.returncode}); last lines of {log}:\n{tail(log)}"
                )
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"mosquitto did not listen within {timeout_s:g} s; see {log}:\n{tail(log)}"
                )
            time.sleep(0.05)
        yield DemoBroker(port, proc, log, secure=True, folder=files.folder)
    finally:
        stop_processes([proc])


@contextlib.contextmanager
def demo_broker(
    ws: Path, fleet: Sequence[Device], topic_prefix: str, *, secure: bool
) -> Iterator[DemoBroker]:
    """The loop demo's broker until the block ends: open embedded (amqtt), or secured Mosquitto.

    Secure: every pump of ``fleet`` is provisioned (its password and the CA in
    ``<ws>/agents/<device>/``), the hub's identities are created, and Mosquitto
    runs from the generated configuration on a free port of 127.0.0.1.

    Raises:
        ServiceError: the broker did not start (its last log lines), or no Mosquitto for ``secure``.
    """
    if secure:
        with _mosquitto(ws, fleet, topic_prefix) as broker:
            yield broker
        return
    with broker_process(0, ws / "broker.log") as embedded:
        yield DemoBroker(embedded.port, embedded.proc, embedded.log, secure=False)
