"""The ingest service: MQTT broker → :func:`decode` → :class:`~pumpops.store.TelemetryStore`.

Telemetry goes through :func:`decode` into ``write_batches``; the agents'
messages (topics ``alarms``, ``summaries``, ``drift``, ``state``) go through
:func:`~pumpops.telemetry._agent.decode_agent` into ``put_agent_messages``,
stored once per message id. Both reject into the same dead-letter table.

At-least-once, stored once: every QoS 1 message is acknowledged to the broker
only after the transaction that holds it (its readings, or its dead letter)
has committed; a crash or a store outage means the broker delivers it again,
and the store's message ledger turns the redelivery into a no-op.

Why paho-mqtt and not aiomqtt (STYLE.md's model for asyncio loops): aiomqtt
2.5 acknowledges a message as soon as it is received and has no manual-ack
option, so it cannot give that guarantee. paho-mqtt has ``manual_ack_set``.

Where the parts live: the pure decisions (:class:`BatchPolicy`,
:class:`DeviceCache`, counters, dead letters for refusals) in
``_ingest_policy``; the writer (decode, store, acknowledge after commit) in
``_ingest_writer``; running it as a process (signals) in ``_ingest_runner``;
the client options and :class:`~pumpops.mqtt.Backoff` in ``pumpops.mqtt``.
This module is the composition: the inbox, the counters and the network thread.

Threads, and who owns what:

- the *network* thread owns the client (a :class:`~pumpops.mqtt.DrivenConnection`):
  it runs the MQTT loop, reconnects with jittered exponential backoff
  (:class:`~pumpops.mqtt.Backoff`), puts received messages
  on the inbox, and sends the acknowledgements the writer queues. All paho
  calls happen on this one thread.
- the *writer* thread (``_ingest_writer.IngestWriter``) takes messages off
  the inbox in batches (:class:`BatchPolicy`), decodes them, writes readings and dead letters to
  the store, retries store failures with backoff (never acknowledging what is
  not stored), and then queues the acknowledgements.

Acknowledgements carry the connection *generation* they belong to: a message
received before a reconnect is stored but not acknowledged on the new
connection (its packet id may by then name a different message); the broker
delivers it again and the store reports it as a duplicate.

The service keeps no state between messages beyond caches (device lookups),
so several workers with different client ids may share one subscription
(``ingest.shared_group``).
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from pumpops.errors import BrokerError, ConfigError, ServiceError
from pumpops.fleet import ManufacturerProfile, load_profiles
from pumpops.mqtt import Backoff, ClientOptions, DrivenConnection, Message, backoff_delay
from pumpops.settings import IngestSettings
from pumpops.store import BatchOutcome, TelemetryStore
from pumpops.telemetry._broker import BrokerAddress
from pumpops.telemetry._codec import DecodeLimits, DecodeResult
from pumpops.telemetry._ingest_policy import BatchPolicy, DeviceCache, IngestStats, Received, Refusal, tally
from pumpops.telemetry._ingest_runner import run_until_stopped, stop_on_signals
from pumpops.telemetry._ingest_writer import IngestWriter
from pumpops.telemetry._topics import DEFAULT_PREFIX, subscription_filter

__all__ = [
    "Backoff",
    "BatchPolicy",
    "DeviceCache",
    "IngestService",
    "IngestStats",
    "backoff_delay",
    "run_until_stopped",
    "stop_on_signals",
]

_log = logging.getLogger(__name__)

_LOOP_TIMEOUT_S: Final = 0.02  # bounds how long a queued acknowledgement waits for the network thread


class IngestService:
    """Consumes telemetry from an MQTT broker into a store; see the module docstring.

    Args:
        store: where readings and dead letters go.
        address: the broker.
        settings: client id, shared group, limits, batching, backoff.
        topic_prefix: the topic prefix.
        profiles: manufacturer profiles by id (default: the shipped ones).
        now_us: the hub's clock, µs since the Unix epoch (injectable for tests).
        observer: called on the writer thread after each commit with the
            decode results and store outcomes (benchmarks measure latency with it).
        inbox_size: received messages held before the network thread waits.
    """

    def __init__(
        self,
        store: TelemetryStore,
        address: BrokerAddress,
        *,
        settings: IngestSettings,
        topic_prefix: str = DEFAULT_PREFIX,
        profiles: Mapping[str, ManufacturerProfile] | None = None,
        now_us: Callable[[], int] = lambda: time.time_ns() // 1000,
        observer: Callable[[Sequence[DecodeResult], Sequence[BatchOutcome]], None] | None = None,
        inbox_size: int | None = None,
    ) -> None:
        if settings.reconnect_min_s > settings.reconnect_max_s:
            raise ConfigError("ingest.reconnect_min_s must not exceed ingest.reconnect_max_s")
        self._address = address
        self._settings = settings
        self._prefix = topic_prefix
        self._filter = subscription_filter(prefix=topic_prefix, shared_group=settings.shared_group)
        self._policy = BatchPolicy(settings.batch_max_messages, settings.batch_max_wait_s)
        self._now_us = now_us
        self._inbox: queue.Queue[Received] = queue.Queue(
            maxsize=inbox_size or max(1000, 4 * settings.batch_max_messages)
        )
        self._acks: collections.deque[tuple[int, int, int]] = collections.deque()
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(IngestStats.__dataclass_fields__, 0)
        self._generation = 0
        self._connected = False
        self._draining = threading.Event()  # stop taking new messages
        self._abandon = threading.Event()  # stop retrying the store
        self._net_stop = threading.Event()
        self._ready = threading.Event()  # first subscription acknowledged
        self._threads: list[threading.Thread] = []
        self._failure: BaseException | None = None
        self._writer = IngestWriter(
            store,
            profiles=dict(profiles if profiles is not None else load_profiles()),
            limits=DecodeLimits.from_settings(settings),
            policy=self._policy,
            prefix=topic_prefix,
            backoff_s=(settings.reconnect_min_s, settings.reconnect_max_s),
            count=self._count,
            tally=lambda *counted: self._tally(*counted),  # noqa: PLW0108 - looked up per call
            acks=self._acks,
            abandon=self._abandon,
            observer=observer,
            now_us=now_us,
            redate_after_s=settings.redate_after_s,
        )
        options = ClientOptions(
            client_id=settings.client_id,
            clean_session=False,  # the broker keeps our subscription and queues messages while we are away
            tls=address.tls_options(),
            username=address.username,
            password=address.password,
            keepalive_s=30,
            manual_ack=True,  # acknowledged only after the commit (module docstring)
        )
        # the network thread owns it: every paho call happens there
        self._conn = DrivenConnection(
            address.host,
            address.port,
            options,
            backoff=Backoff(settings.reconnect_min_s, settings.reconnect_max_s),
            on_connect=self._on_connect,
            on_message=self._on_message,
            on_subscribe=self._on_subscribe,
            on_refused=self._on_refused,
            on_lost=self._on_lost,
            each_loop=self._send_acks,
            log=_log,
            loop_timeout_s=_LOOP_TIMEOUT_S,
        )

    # -- lifecycle

    def start(self) -> IngestService:
        """Start the network and writer threads (returns at once; see :meth:`wait_ready`).

        A service runs once: after :meth:`stop`, make a new one (same client
        id: the broker kept the session).
        """
        if self._threads or self._net_stop.is_set():
            raise ServiceError("an ingest service runs once; create a new one to start again")
        self._threads = [
            threading.Thread(target=self._network_loop, name="pumpops-ingest-network", daemon=True),
            threading.Thread(target=self._writer_loop, name="pumpops-ingest-writer", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    @property
    def failed(self) -> BaseException | None:
        """The error that stopped the writer, if one did (a bug: nothing further is acknowledged)."""
        return self._failure

    @property
    def ready(self) -> bool:
        """True once the service has been connected and subscribed."""
        return self._ready.is_set()

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Wait until the service is connected and subscribed.

        Raises:
            BrokerError: not within ``timeout_s``.
        """
        if not self._ready.wait(timeout_s):
            raise BrokerError(f"ingest could not subscribe at {self._address.url} within {timeout_s} s")

    def stop(self, timeout_s: float = 30.0) -> IngestStats:
        """Stop gracefully: commit and acknowledge what was received, then disconnect.

        Messages that arrive while stopping are not acknowledged; the broker
        keeps them in the session for the next start. If the store stays down
        for ``timeout_s``, uncommitted messages are left unacknowledged too.
        """
        if not self._threads:
            return self.stats()
        deadline = time.monotonic() + timeout_s
        self._draining.set()
        network, writer = self._threads
        writer.join(max(0.0, deadline - time.monotonic()))
        if writer.is_alive():
            _log.warning(
                "the store did not take the last batch within %s s; leaving it to redelivery", timeout_s
            )
            self._abandon.set()
            writer.join(5.0)
        self._net_stop.set()
        network.join(max(1.0, deadline - time.monotonic()))
        self._threads = []
        return self.stats()

    def __enter__(self) -> IngestService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> IngestStats:
        """A snapshot of the counters."""
        with self._lock:
            counts = dict(self._counts)
            connected = self._connected
        counts.pop("connected", None)
        return IngestStats(**counts, connected=connected)

    def process(self, messages: Sequence[tuple[str, bytes]]) -> IngestStats:
        """Decode and store messages directly, without the broker, as one batch.

        The same path as messages from MQTT take (decode, store, dead letters,
        counters), for replaying dead letters or files, and for tests.

        Args:
            messages: ``(topic, payload)`` pairs.

        Returns:
            The counters afterwards.
        """
        now = self._now_us()
        items = [Received(-1, 0, 0, topic, bytes(payload), now) for topic, payload in messages]
        self._count(received=len(items))
        for start in range(0, len(items), self._policy.max_messages):
            self._writer.commit(items[start : start + self._policy.max_messages], ack=False)
        return self.stats()

    def _tally(
        self,
        results: Sequence[DecodeResult],
        stored: Sequence[tuple[DecodeResult, BatchOutcome | Refusal]],
        letters: int,
    ) -> None:
        self._count(**tally(results, stored, letters))

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                self._counts[name] += delta

    # -- network thread

    def _network_loop(self) -> None:
        self._conn.run(self._net_stop, drain=lambda: bool(self._acks))

    def _on_lost(self) -> None:
        with self._lock:
            self._connected = False

    def _send_acks(self) -> None:
        generation = self._generation
        sent = 0
        while self._acks:
            gen, mid, qos = self._acks.popleft()
            if gen != generation or not self._connected:
                continue  # delivered on an earlier connection: the broker will deliver it again
            if qos > 0:
                self._conn.ack(mid, qos)
            sent += 1
        if sent:
            self._count(acked=sent)

    def _on_refused(self, reason: object) -> None:
        _log.error("the broker at %s refused the connection: %s", self._address.url, reason)

    def _on_connect(self, session_present: bool) -> None:
        self._generation += 1
        with self._lock:
            self._connected = True
            self._counts["connects"] += 1
            if not session_present:
                self._counts["sessions_lost"] += 1
            reconnect = self._counts["connects"] > 1
        if not session_present and reconnect:
            _log.warning(
                "the broker at %s had no session for client %r: messages published while ingest was "
                "disconnected may be lost (did the broker restart without persistence?)",
                self._address.url,
                self._settings.client_id,
            )
        # subscribing again is harmless when the session kept the subscription, and needed when it did not
        self._conn.subscribe(self._filter, qos=1)

    def _on_subscribe(self, rcs: Sequence[Any]) -> None:
        if any(rc.is_failure for rc in rcs):
            _log.error("the broker refused the subscription to %s: %s", self._filter, rcs)
            return
        _log.info("subscribed to %s at %s", self._filter, self._address.url)
        self._ready.set()

    def _on_message(self, message: Message) -> None:
        if self._draining.is_set():
            return  # not acknowledged: the broker keeps it for the next session
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = message._topic.decode("utf-8", errors="replace")  # paho raises on bad UTF-8
        item = Received(
            self._generation, message.mid, message.qos, topic, bytes(message.payload), self._now_us()
        )
        self._count(received=1)
        while not self._draining.is_set():
            try:
                # waiting here (inbox full) stops reading the socket: TCP pushes back on the broker
                self._inbox.put(item, timeout=0.2)
                return
            except queue.Full:
                self._send_acks()  # keep acknowledging what the writer committed meanwhile
        self._count(received=-1)  # stopping: it was never taken

    # -- writer thread

    def _writer_loop(self) -> None:
        try:
            self._writer.write_until_drained(self._inbox, self._draining)
        except BaseException as exc:
            # A bug, not an outage (those are retried inside): stop taking messages so that
            # nothing more is acknowledged, and let run_until_stopped report it.
            _log.critical(
                "the ingest writer failed; unacknowledged messages stay with the broker", exc_info=True
            )
            self._failure = exc
            self._draining.set()
            self._net_stop.set()
