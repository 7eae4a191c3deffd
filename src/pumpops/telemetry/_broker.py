"""Broker addresses, and the embedded in-process MQTT broker (amqtt) for machines with no services.

``broker_url = "embedded"`` starts :class:`EmbeddedBroker`: amqtt, a pure-Python
MQTT 3.1.1 broker, in a background thread with its own asyncio loop, bound to
127.0.0.1. It is for demos and single-machine trials (about 1,400 QoS 1
messages/s). What it keeps and what it loses, measured by
``tests/telemetry/test_broker.py`` and written up in ``docs/protocol.md``:

- It keeps a ``clean_session=False`` client's session (subscriptions, and
  QoS 1 messages published while the client is away) for as long as the
  broker process runs. amqtt only does that for sessions it does not mark
  anonymous, and its stock anonymous plugin marks *every* session anonymous;
  so the embedded broker uses ``_amqtt_auth.OpenAuthPlugin``, which lets any client
  in (it listens on the loopback interface only) without that mark.
- It does not keep anything across a restart of the broker (no persistence).
- It drops a QoS 1 message that was sent to a subscriber but not acknowledged
  within 5 s, and one that is in flight when the subscriber disconnects
  (amqtt removes it from the session instead of resending it): a subscriber
  that acknowledges only after a slow commit, or dies mid-batch, can lose
  messages. Use a real broker (Mosquitto) where that matters.
- It has no shared subscriptions (``$share/...``).

By default it is open (any local client; it says so at start-up). Given a
credentials registry it runs in secure mode (``_amqtt_auth``): registered
identities only, the same access rules as the generated Mosquitto ``acl_file``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from pumpops.errors import BrokerError, ConfigError
from pumpops.mqtt import CLIENT_USERNAME, TlsOptions

__all__ = ["EMBEDDED", "BrokerAddress", "EmbeddedBroker", "parse_broker_url"]

EMBEDDED: Final = "embedded"
_URL = re.compile(r"^(?P<scheme>mqtts?)://(?P<host>[^:/\s]+)(?::(?P<port>\d{1,5}))?/?$")
_log = logging.getLogger(__name__)
_LOOPBACK: Final = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where a real MQTT broker listens, and who connects to it.

    Attributes:
        host: host name or address (checked against the broker's certificate with TLS).
        port: TCP port.
        tls: connect with TLS (``mqtts://``).
        ca_file: PEM of the CAs to trust for TLS (None: the system's).
        cert_file: client certificate, PEM (mutual TLS).
        key_file: its private key, PEM.
        username: the MQTT user name (default ``pumpops``: a label, not a credential).
        password: the password (never shown in ``repr``).
    """

    host: str
    port: int
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = CLIENT_USERNAME
    password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The address as a URL."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def tls_options(self) -> TlsOptions | None:
        """The client's TLS settings (None without TLS); the host name is always verified."""
        if not self.tls:
            return None
        return TlsOptions(ca_file=self.ca_file, cert_file=self.cert_file, key_file=self.key_file)

    def with_credentials(
        self,
        *,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> BrokerAddress:
        """The same broker with TLS files and a user name/password (None keeps the current value).

        Raises:
            ConfigError: TLS files for a plain ``mqtt://`` broker, a certificate without its key,
                or a password without a user name.
        """
        merged = replace(
            self,
            ca_file=ca_file or self.ca_file,
            cert_file=cert_file or self.cert_file,
            key_file=key_file or self.key_file,
            username=username or self.username,
            password=password or self.password,
        )
        if not merged.tls and (merged.ca_file or merged.cert_file or merged.key_file):
            raise ConfigError(f"CA and certificate files need an mqtts:// broker, not {merged.url}")
        if (merged.cert_file is None) != (merged.key_file is None):
            raise ConfigError("give both a client certificate and its key file, or neither")
        if merged.password and not merged.username:
            raise ConfigError("a broker password needs a user name")
        return merged


def parse_broker_url(url: str) -> BrokerAddress | None:
    """Parse a broker URL; ``"embedded"`` gives None (start an :class:`EmbeddedBroker`).

    Args:
        url: ``embedded``, ``mqtt://host[:port]`` (default port 1883) or
            ``mqtts://host[:port]`` (default 8883).

    Raises:
        ConfigError: anything else.

    >>> address = parse_broker_url("mqtts://hub.example")
    >>> address.host, address.port, address.tls
    ('hub.example', 8883, True)
    >>> parse_broker_url("embedded") is None
    True
    """
    if url == EMBEDDED:
        return None
    match = _URL.match(url)
    if match is None:
        raise ConfigError(f"broker URL must be 'embedded' or mqtt://host:port, not {url!r}")
    tls = match["scheme"] == "mqtts"
    port = int(match["port"]) if match["port"] else (8883 if tls else 1883)
    if not 0 < port < 65536:
        raise ConfigError(f"broker URL {url!r}: port {port} is out of range")
    return BrokerAddress(match["host"], port, tls)


class EmbeddedBroker:
    """An amqtt broker running in a background thread; a context manager.

    Args:
        host: the address to listen on (loopback by default; the open broker
            refuses any other: nothing outside this machine should reach it).
        port: the TCP port; 0 picks a free one (see :attr:`port` once started).
        registry: secure mode: admit only the identities of this credentials
            registry (``<workspace>/security``, :class:`pumpops.security.CredentialRegistry`)
            and enforce :class:`pumpops.security.AccessPolicy` on every topic.
        topic_prefix: the prefix the access rules are for (secure mode).
        tls_cert: ``(certificate, key)`` PEM files: listen with TLS only.

    Example::

        with EmbeddedBroker(port=0) as broker:
            publish_to(broker.url)
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        registry: Path | None = None,
        topic_prefix: str = "pumpops/v1",
        tls_cert: tuple[Path, Path] | None = None,
    ) -> None:
        if registry is None and host not in _LOOPBACK:
            raise ConfigError(
                f"the open embedded broker listens on 127.0.0.1 only, not {host!r}: "
                "give it a credentials registry (secure mode) to listen elsewhere"
            )
        self._registry = registry
        self._prefix = topic_prefix
        self._tls_cert = tls_cert
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        """The port the broker listens on.

        Raises:
            BrokerError: the broker is not running.
        """
        if self._port is None:
            raise BrokerError("the embedded broker is not running")
        return self._port

    @property
    def secure(self) -> bool:
        """Whether only registered identities get in (and the access rules apply)."""
        return self._registry is not None

    @property
    def url(self) -> str:
        """``mqtt://host:port`` (``mqtts://`` with TLS) of the running broker."""
        return self.address.url

    @property
    def address(self) -> BrokerAddress:
        """The running broker's address."""
        return BrokerAddress(self._host, self.port, tls=self._tls_cert is not None)

    def config(self) -> dict[str, Any]:
        """The amqtt configuration (with a ``plugins`` section, so amqtt does not warn)."""
        listener: dict[str, Any] = {
            "type": "tcp",
            "bind": f"{self._host}:{self._requested_port}",
            "max_connections": -1,
        }
        if self._tls_cert is not None:
            listener |= {"ssl": True, "certfile": str(self._tls_cert[0]), "keyfile": str(self._tls_cert[1])}
        # no $SYS plugin (it needs psutil and publishes every few seconds) and no
        # packet logger (it formats every packet); the open auth plugin is explained above.
        # Secure mode never loads amqtt's anonymous plugin (it admits any client with a user name).
        plugins: dict[str, Any] = (
            {"pumpops.telemetry._amqtt_auth.OpenAuthPlugin": {}}
            if self._registry is None
            else {
                "pumpops.telemetry._amqtt_auth.RegistryAuthPlugin": {"registry": str(self._registry)},
                "pumpops.telemetry._amqtt_auth.AclTopicPlugin": {"prefix": self._prefix},
            }
        )
        return {"listeners": {"default": listener}, "plugins": plugins}

    def start(self, timeout_s: float = 10.0) -> EmbeddedBroker:
        """Start the broker thread and wait until it listens.

        Raises:
            BrokerError: it could not start (the port is taken, ...).
        """
        if self._thread is not None:
            raise BrokerError("the embedded broker is already running")
        if self._requested_port:
            self._check_port()
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="pumpops-embedded-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise BrokerError(f"the embedded broker did not start within {timeout_s} s")
        if self._error is not None:
            self._thread.join(timeout_s)
            self._thread = None
            raise BrokerError(
                f"cannot start the embedded broker on {self._host}:{self._requested_port}: {self._error}"
            ) from self._error
        if self.secure:
            _log.info("embedded MQTT broker listening on %s (secure: registered identities only)", self.url)
        else:
            _log.warning(
                "embedded MQTT broker listening on %s is OPEN: any local client may publish and "
                "subscribe anything (loopback only; see docs/security.md for a secured broker)",
                self.url,
            )
        return self

    def _check_port(self) -> None:
        """Bind the port as amqtt will (SO_REUSEADDR, like asyncio): a taken port is one clear error."""
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self._host, self._requested_port))
            except OSError as exc:
                port = self._requested_port
                raise BrokerError(
                    f"cannot start the embedded broker: port {port} on {self._host} is already in use"
                    + (" (1883 is the port of a system Mosquitto)" if port == 1883 else "")
                    + ". Set embedded_broker_port in pumpops.toml (or PUMPOPS_EMBEDDED_BROKER_PORT) to a "
                    f"free port, or use the broker that holds it (mqtt://{self._host}:{port})"
                ) from exc

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the broker (its sessions and queued messages are lost) and join its thread."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(stop.set)
        thread.join(timeout_s)
        self._thread = None
        self._port = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        # only processes that run the broker import amqtt
        from amqtt.broker import Broker  # noqa: PLC0415

        from pumpops.telemetry._amqtt_auth import SecureBroker  # noqa: PLC0415

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        broker = (SecureBroker if self.secure else Broker)(self.config())
        try:
            await broker.start()
        except Exception as exc:
            self._error = exc
            self._ready.set()
            return
        try:
            self._port = _bound_port(broker, self._requested_port)
            self._ready.set()
            await self._stop.wait()
        finally:
            await broker.shutdown()


def _bound_port(broker: Any, requested: int) -> int:
    """The port the listener got (differs from ``requested`` only when that is 0)."""
    if requested != 0:
        return requested
    # amqtt has no public accessor for the bound socket
    server = broker._servers["default"].instance
    return int(server.sockets[0].getsockname()[1])
