"""The broker side of the rollout service: retained ``desired`` messages over one ``pumpops.mqtt`` connection.

May import: ``pumpops.mqtt``, errors, ``pumpops.telemetry`` (the broker address type), the stdlib.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pumpops.errors import BrokerError

if TYPE_CHECKING:
    from pumpops.mqtt import Connection
    from pumpops.telemetry import BrokerAddress

__all__ = ["MqttDesiredPublisher"]


class MqttDesiredPublisher:
    """Publishes retained desired states with QoS 1 over one connection, opened on first use.

    Args:
        address: the broker (``parse_broker_url``; for ``embedded``, 127.0.0.1
            and the settings' ``embedded_broker_port``).
        timeout_s: how long to wait for the connection and for the PUBACKs.
    """

    def __init__(self, address: BrokerAddress, *, timeout_s: float = 10.0) -> None:
        self._address = address
        self._timeout_s = timeout_s
        self._conn: Connection | None = None

    @property
    def where(self) -> str:
        """The broker URL."""
        return self._address.url

    def _connect(self) -> Connection:
        if self._conn is not None:
            return self._conn
        # paho loads only when the first desired state is published
        from pumpops.mqtt import ClientOptions, Connection  # noqa: PLC0415

        options = ClientOptions(
            client_id=f"pumpops-rollout-{os.getpid()}-{uuid.uuid4().hex[:8]}",
            clean_session=True,
            tls=self._address.tls_options(),
            username=self._address.username,
            password=self._address.password,
            max_queued=0,
        )
        conn = Connection(self._address.host, self._address.port, options)
        conn.connect(self._timeout_s)
        self._conn = conn
        return conn

    def publish_retained(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Publish each message retained with QoS 1 and wait for every PUBACK.

        Raises:
            BrokerError: the broker is unreachable or did not acknowledge in time.
        """
        conn = self._connect()
        infos = []
        for topic, payload in messages:
            try:
                infos.append((topic, conn.publish(topic, payload, qos=1, retain=True)))
            except BrokerError as exc:
                raise BrokerError(f"cannot publish the desired state on {topic}: {exc}") from exc
        conn.wait_published(infos, self._timeout_s)

    def close(self) -> None:
        """Disconnect (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
