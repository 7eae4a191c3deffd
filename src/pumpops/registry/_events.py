"""Lifecycle events: stored first, then published on MQTT (QoS 1) under ``<prefix>/events/<kind>``.

:class:`EventSink` is the one thing the registry (and later release and
rollout) calls: :meth:`EventSink.emit` writes the event to the store, and
only then hands it to an :class:`EventPublisher`. Publishing is best effort:
a broker that is down costs a warning in the log, never the event, which
stays in the ``events`` table for anyone to read or replay. The wire format
is :func:`event_json` (documented in ``docs/protocol.md``, "Events").
"""

from __future__ import annotations

import abc
import json
import logging
import os
import re
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from pumpops.errors import BrokerError, ConfigError, InputError
from pumpops.store import EventRecord, TelemetryStore

if TYPE_CHECKING:
    from pumpops.telemetry import BrokerAddress

__all__ = [
    "EVENT_KINDS",
    "EVENT_SCHEMA",
    "EventPublisher",
    "EventSink",
    "MqttEventPublisher",
    "event_json",
    "event_topic",
]

_log = logging.getLogger(__name__)

#: The ``schema`` field of every event message.
EVENT_SCHEMA: Final = "pumpops.event/1"

#: Kinds emitted today; later parts add ``release.*`` and ``rollout.*`` (any dotted lower-case kind).
EVENT_KINDS: Final[tuple[str, ...]] = (
    "model.registered",
    "model.validated",
    "model.promoted",
    "model.archived",
)

_KIND = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_PREFIX = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


def event_topic(kind: str, *, prefix: str = "pumpops/v1") -> str:
    """The MQTT topic an event of ``kind`` is published on.

    Raises:
        ConfigError: the prefix or the kind cannot be used in a topic.

    >>> event_topic("model.promoted")
    'pumpops/v1/events/model.promoted'
    >>> event_topic("rollout.started", prefix="test-1/v1")
    'test-1/v1/events/rollout.started'
    """
    if not _PREFIX.match(prefix):
        raise ConfigError(f"topic prefix {prefix!r} must be segments of letters, digits, '_' or '-'")
    if not _KIND.match(kind):
        raise ConfigError(f"event kind {kind!r} must be dotted lower-case words (model.promoted)")
    return f"{prefix}/events/{kind}"


def event_json(event: EventRecord) -> bytes:
    """The event as published: one JSON object, UTF-8, keys sorted.

    >>> record = EventRecord(7, 1764100000000000, "model.archived", "pumpops-skab/2", '{"a":1}')
    >>> print(event_json(record).decode())
    {"kind":"model.archived","payload":{"a":1},"schema":"pumpops.event/1","seq":7,"subject":"pumpops-skab/2","time":"2025-11-25T19:46:40Z","time_us":1764100000000000}
    """
    when = datetime.fromtimestamp(event.time_us // 1_000_000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body: dict[str, Any] = {
        "schema": EVENT_SCHEMA,
        "seq": event.seq,
        "time_us": event.time_us,
        "time": when,
        "kind": event.kind,
        "subject": event.subject,
        "payload": json.loads(event.payload_json),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class EventPublisher(abc.ABC):
    """Where stored events go next (a broker); :meth:`publish` may raise, :class:`EventSink` copes."""

    @property
    @abc.abstractmethod
    def where(self) -> str:
        """A short description for log lines (the broker URL)."""

    @abc.abstractmethod
    def publish(self, topic: str, payload: bytes) -> None:
        """Publish one message and return once it is acknowledged.

        Raises:
            BrokerError: it was not published.
        """


class MqttEventPublisher(EventPublisher):
    """Publishes each event with QoS 1 on its own short connection to a real MQTT broker.

    Events are rare (a few per registry command), so a connection per event
    keeps no socket open in CLI processes; :class:`pumpops.mqtt.Connection`
    does the connecting and waits for the PUBACK.

    Args:
        broker_url: ``mqtt://host:port`` or ``mqtts://host:port``, or the broker's
            address with TLS files and the hub's events identity.
        timeout_s: how long to wait for the connection and for the PUBACK.
    """

    def __init__(self, broker_url: str | BrokerAddress, *, timeout_s: float = 5.0) -> None:
        from pumpops.telemetry import parse_broker_url  # noqa: PLC0415 - paho loads only when publishing

        address = parse_broker_url(broker_url) if isinstance(broker_url, str) else broker_url
        if address is None:
            raise ConfigError(
                "the embedded broker keeps no subscribers across commands: events are stored only"
            )
        self._address = address
        self._timeout_s = timeout_s

    @property
    def where(self) -> str:
        """The broker URL."""
        return self._address.url

    def publish(self, topic: str, payload: bytes) -> None:
        """Connect, publish with QoS 1, wait for the PUBACK, disconnect.

        Raises:
            BrokerError: the broker is unreachable or did not acknowledge in time.
        """
        from pumpops.mqtt import ClientOptions, Connection  # noqa: PLC0415 - paho loads only here

        options = ClientOptions(
            client_id=f"pumpops-events-{os.getpid()}-{uuid.uuid4().hex[:8]}",
            tls=self._address.tls_options(),
            username=self._address.username,
            password=self._address.password,
            max_queued=0,
        )
        conn = Connection(self._address.host, self._address.port, options).connect(self._timeout_s)
        try:
            conn.wait_published([(topic, conn.publish(topic, payload, qos=1))], self._timeout_s)
        finally:
            conn.close()


class EventSink:
    """Stores events, then publishes them (best effort).

    Args:
        store: where events are kept (the ``events`` table).
        publisher: the broker side, or None to store only (``--broker embedded``).
        topic_prefix: the topic prefix from settings.
    """

    def __init__(
        self,
        store: TelemetryStore,
        publisher: EventPublisher | None = None,
        *,
        topic_prefix: str = "pumpops/v1",
    ) -> None:
        event_topic("model.registered", prefix=topic_prefix)  # check the prefix now, not at the first event
        self._store = store
        self._publisher = publisher
        self._prefix = topic_prefix

    @property
    def store(self) -> TelemetryStore:
        """The store events are written to."""
        return self._store

    def emit(self, kind: str, subject: str, payload: dict[str, Any] | None = None) -> EventRecord:
        """Store an event, then publish it; return the stored record.

        Returns:
            The event as stored (with its ``seq``), whether or not it was published.

        Raises:
            ConfigError: ``kind`` is not a dotted lower-case name.
            InputError: ``subject`` is empty or ``payload`` is not a JSON object.
            StoreError: the database failed: nothing was stored nor published.
        """
        topic = event_topic(kind, prefix=self._prefix)
        if not subject.strip():
            raise InputError("event subject must not be empty")
        record = self._store.append_event(kind, subject, payload or {})
        if self._publisher is None:
            _log.debug("event %d %s stored (no broker configured: not published)", record.seq, kind)
            return record
        try:
            self._publisher.publish(topic, event_json(record))
        except (BrokerError, OSError) as exc:
            _log.warning(
                "event %d %s on %s stored but NOT published to %s: %s (it stays in the events table)",
                record.seq,
                kind,
                subject,
                self._publisher.where,
                exc,
            )
        return record
