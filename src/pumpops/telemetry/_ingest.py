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

Threads, and who owns what:

- the *network* thread owns the paho client: it runs the MQTT loop, reconnects
  with jittered exponential backoff (:class:`Backoff`), puts received messages
  on the inbox, and sends the acknowledgements the writer queues. All paho
  calls happen on this one thread.
- the *writer* thread takes messages off the inbox in batches
  (:class:`BatchPolicy`), decodes them, writes readings and dead letters to
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
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from types import FrameType
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from pumpops.errors import BrokerError, ConfigError, ServiceError
from pumpops.fleet import Device, ManufacturerProfile, load_profiles
from pumpops.schema import DeadLetter, ReadingBatch
from pumpops.settings import IngestSettings
from pumpops.store import AgentRecord, BatchOutcome, TelemetryStore
from pumpops.telemetry._agent import AgentDecodeResult, agent_topic, decode_agent
from pumpops.telemetry._broker import BrokerAddress
from pumpops.telemetry._codec import DecodeLimits, DecodeResult, decode
from pumpops.telemetry._publisher import CLIENT_USERNAME
from pumpops.telemetry._topics import DEFAULT_PREFIX, subscription_filter

__all__ = [
    "Backoff",
    "BatchPolicy",
    "DeviceCache",
    "IngestService",
    "IngestStats",
    "backoff_delay",
    "run_until_stopped",
]

_log = logging.getLogger(__name__)

_KEEPALIVE_S: Final = 30
_LOOP_TIMEOUT_S: Final = 0.02  # bounds how long a queued acknowledgement waits for the network thread
_STORE_BUG_ATTEMPTS: Final = 3  # a non-infrastructure error this often in a row: isolate the bad batch


# ----------------------------------------------------------------------------- pure decisions


def backoff_delay(attempt: int, min_s: float, max_s: float, u: float) -> float:
    """The delay before retry number ``attempt`` (0-based): jittered exponential backoff.

    The ceiling doubles from ``min_s`` up to ``max_s``; the delay is drawn in
    the upper half of the ceiling (``u`` in ``[0, 1)`` picks where), so
    workers that failed together do not retry together, yet no delay is
    shorter than ``min_s``.

    >>> [backoff_delay(a, 0.5, 30.0, 1.0) for a in range(8)]  # the ceilings
    [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    >>> [backoff_delay(a, 0.5, 30.0, 0.0) for a in range(8)]  # the shortest draws
    [0.5, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]
    """
    ceiling = min(max_s, min_s * 2.0 ** min(attempt, 62))
    floor = max(min_s, ceiling / 2.0)
    return floor + (ceiling - floor) * u


@dataclass(slots=True)
class Backoff:
    """Stateful :func:`backoff_delay`: :meth:`next_delay` per failure, :meth:`reset` on success.

    Attributes:
        min_s: the first delay, seconds.
        max_s: the largest delay, seconds.
        rng: the jitter source (seed it in tests).
        attempt: failures since the last success.
    """

    min_s: float
    max_s: float
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """Return the delay before the next try, and count the failure."""
        delay = backoff_delay(self.attempt, self.min_s, self.max_s, self.rng.random())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Forget past failures."""
        self.attempt = 0


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """When the writer commits: after ``max_messages`` messages or ``max_wait_s`` after the first.

    A bigger batch is one transaction for many messages (throughput); the wait
    bounds the latency, and how long a message stays unacknowledged.

    >>> policy = BatchPolicy(max_messages=500, max_wait_s=0.05)
    >>> policy.should_flush(pending=500, oldest_age_s=0.0), policy.should_flush(pending=3, oldest_age_s=0.01)
    (True, False)
    >>> round(policy.wait_s(pending=3, oldest_age_s=0.01), 3), policy.wait_s(pending=0, oldest_age_s=0.0)
    (0.04, None)
    """

    max_messages: int
    max_wait_s: float

    def should_flush(self, *, pending: int, oldest_age_s: float) -> bool:
        """True if the pending messages should be committed now."""
        return pending >= self.max_messages or (pending > 0 and oldest_age_s >= self.max_wait_s)

    def wait_s(self, *, pending: int, oldest_age_s: float) -> float | None:
        """How long to wait for more messages; None: nothing pending, wait for the first."""
        if pending == 0:
            return None
        return max(0.0, self.max_wait_s - oldest_age_s)


class DeviceCache:
    """Caches device look-ups so that decoding does not query the store per message.

    A registered device is remembered for ``ttl_s``; an unknown id for only
    ``miss_ttl_s``, so a device registered after its first rejected message is
    accepted soon, while a flood from an unregistered device costs one store
    query per ``miss_ttl_s``.

    Args:
        lookup: the store's ``device(id)``.
        ttl_s: how long a found device is trusted (seconds).
        miss_ttl_s: how long "not registered" is trusted (seconds).
        clock: a monotonic clock, seconds.
        max_entries: the cache is emptied when it grows past this.
    """

    def __init__(
        self,
        lookup: Callable[[str], Device | None],
        *,
        ttl_s: float = 60.0,
        miss_ttl_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 100_000,
    ) -> None:
        self._lookup = lookup
        self._ttl_s = ttl_s
        self._miss_ttl_s = miss_ttl_s
        self._clock = clock
        self._max = max_entries
        self._entries: dict[str, tuple[float, Device | None]] = {}

    def __call__(self, device_id: str) -> Device | None:
        """Return the device, from the cache while it is fresh."""
        now = self._clock()
        hit = self._entries.get(device_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        device = self._lookup(device_id)
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[device_id] = (now + (self._ttl_s if device is not None else self._miss_ttl_s), device)
        return device


# ----------------------------------------------------------------------------- the service


@dataclass(frozen=True, slots=True)
class IngestStats:
    """Counters of an ingest service since it started.

    Every received message ends in exactly one of ``stored_messages``,
    ``agent_messages``, ``duplicates``, ``id_conflicts``, ``rejected_messages``
    or ``ignored`` once it is committed (``acked`` counts those acknowledged to
    the broker).

    Attributes:
        received: messages taken from the broker (redeliveries count again).
        committed: messages whose outcome is committed to the store.
        acked: acknowledgements sent to the broker.
        stored_messages: telemetry messages newly stored (some may have
            had readings rejected; see ``partially_rejected``).
        agent_messages: agent messages (alarms, summaries, drift, state) newly stored.
        stored_readings: readings newly written.
        overlapping_readings: readings already stored by another message (not written again).
        duplicates: redeliveries of messages already stored (nothing written).
        id_conflicts: a message id reused with different content (dead-lettered).
        rejected_messages: messages rejected whole (dead-lettered).
        partially_rejected: stored messages of which some readings were rejected.
        rejected_readings: readings rejected, whole messages included.
        dead_letters: dead letters written.
        ignored: messages on topics ingest does not own (``desired``, hub events), acknowledged unread.
        store_errors: failed store calls (each retried).
        connects: successful connections to the broker.
        sessions_lost: connections on which the broker had no session for us
            (the first ever, or after the broker lost its state).
        connected: whether the broker connection is up now.
    """

    received: int = 0
    committed: int = 0
    acked: int = 0
    stored_messages: int = 0
    agent_messages: int = 0
    stored_readings: int = 0
    overlapping_readings: int = 0
    duplicates: int = 0
    id_conflicts: int = 0
    rejected_messages: int = 0
    partially_rejected: int = 0
    rejected_readings: int = 0
    dead_letters: int = 0
    ignored: int = 0
    store_errors: int = 0
    connects: int = 0
    sessions_lost: int = 0
    connected: bool = False


@dataclass(frozen=True, slots=True)
class _Received:
    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_at_us: int


class _AbandonedError(Exception):
    """The writer gave up retrying because the service is stopping."""


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
        self._store = store
        self._address = address
        self._settings = settings
        self._prefix = topic_prefix
        self._filter = subscription_filter(prefix=topic_prefix, shared_group=settings.shared_group)
        self._profiles = dict(profiles if profiles is not None else load_profiles())
        self._limits = DecodeLimits.from_settings(settings)
        self._policy = BatchPolicy(settings.batch_max_messages, settings.batch_max_wait_s)
        self._now_us = now_us
        self._observer = observer
        self._devices = DeviceCache(store.device)
        self._inbox: queue.Queue[_Received] = queue.Queue(
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
        # owned by the network thread
        self._socket_ok = False
        self._refused = False
        self._ever_opened = False
        self._client = self._make_client()

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
        items = [_Received(-1, 0, 0, topic, bytes(payload), now) for topic, payload in messages]
        self._count(received=len(items))
        for start in range(0, len(items), self._policy.max_messages):
            self._commit(items[start : start + self._policy.max_messages], ack=False)
        return self.stats()

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                self._counts[name] += delta

    # -- network thread

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._settings.client_id,
            clean_session=False,  # the broker keeps our subscription and queues messages while we are away
            protocol=mqtt.MQTTv311,
        )
        client.username_pw_set(CLIENT_USERNAME)
        client.manual_ack_set(True)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        if self._address.tls:
            client.tls_set()
        return client

    def _network_loop(self) -> None:
        backoff = Backoff(self._settings.reconnect_min_s, self._settings.reconnect_max_s)
        while not self._net_stop.is_set():
            if not self._socket_ok:
                try:
                    self._open()
                except (OSError, mqtt.WebsocketConnectionError, ValueError) as exc:
                    delay = backoff.next_delay()
                    _log.warning(
                        "cannot reach the broker at %s (%s); retrying in %.1f s",
                        self._address.url,
                        exc,
                        delay,
                    )
                    self._net_stop.wait(delay)
                    continue
            try:
                rc = self._client.loop(timeout=_LOOP_TIMEOUT_S)
                self._send_acks()
            except Exception:  # paho re-raises callback errors; the loop must survive them
                _log.exception("MQTT network loop failed; reconnecting")
                rc = mqtt.MQTT_ERR_UNKNOWN
            if rc == mqtt.MQTT_ERR_SUCCESS and not self._refused:
                if self._connected:
                    backoff.reset()
                continue
            why = "the broker refused the connection" if self._refused else mqtt.error_string(rc)
            with self._lock:
                self._connected = False
            self._socket_ok = False
            delay = backoff.next_delay()
            _log.warning("lost the broker at %s (%s); reconnecting in %.1f s", self._address.url, why, delay)
            self._net_stop.wait(delay)
        self._finish_network()

    def _open(self) -> None:
        """Open the connection: ``connect`` the first time, then ``reconnect`` (same session)."""
        self._refused = False
        if self._ever_opened:
            self._client.reconnect()  # closes any old socket first
        else:
            self._client.connect(self._address.host, self._address.port, keepalive=_KEEPALIVE_S)
            self._ever_opened = True
        self._socket_ok = True

    def _finish_network(self) -> None:
        """Send the writer's last acknowledgements, then disconnect cleanly (the session stays)."""
        if self._socket_ok and self._connected:
            deadline = time.monotonic() + 2.0
            while (self._acks or self._client.want_write()) and time.monotonic() < deadline:
                self._send_acks()
                self._client.loop(timeout=_LOOP_TIMEOUT_S)
            self._client.disconnect()
            for _ in range(5):
                if self._client.loop(timeout=_LOOP_TIMEOUT_S) != mqtt.MQTT_ERR_SUCCESS:
                    break
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
                self._client.ack(mid, qos)
            sent += 1
        if sent:
            self._count(acked=sent)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: Any, rc: Any, props: object) -> None:
        if rc.is_failure:
            _log.error("the broker at %s refused the connection: %s", self._address.url, rc)
            self._refused = True
            return
        self._generation += 1
        with self._lock:
            self._connected = True
            self._counts["connects"] += 1
            if not flags.session_present:
                self._counts["sessions_lost"] += 1
            reconnect = self._counts["connects"] > 1
        if not flags.session_present and reconnect:
            _log.warning(
                "the broker at %s had no session for client %r: messages published while ingest was "
                "disconnected may be lost (did the broker restart without persistence?)",
                self._address.url,
                self._settings.client_id,
            )
        # subscribing again is harmless when the session kept the subscription, and needed when it did not
        client.subscribe(self._filter, qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, rcs: Any, props: object) -> None:
        if any(rc.is_failure for rc in rcs):
            _log.error("the broker refused the subscription to %s: %s", self._filter, rcs)
            return
        _log.info("subscribed to %s at %s", self._filter, self._address.url)
        self._ready.set()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if self._draining.is_set():
            return  # not acknowledged: the broker keeps it for the next session
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = message._topic.decode("utf-8", errors="replace")  # paho raises on bad UTF-8
        item = _Received(
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
            self._write_until_drained()
        except BaseException as exc:
            # A bug, not an outage (those are retried inside): stop taking messages so that
            # nothing more is acknowledged, and let run_until_stopped report it.
            _log.critical(
                "the ingest writer failed; unacknowledged messages stay with the broker", exc_info=True
            )
            self._failure = exc
            self._draining.set()
            self._net_stop.set()

    def _write_until_drained(self) -> None:
        pending: list[_Received] = []
        first_at = 0.0
        while True:
            wait = self._policy.wait_s(pending=len(pending), oldest_age_s=time.monotonic() - first_at)
            try:
                item = self._inbox.get(timeout=0.1 if wait is None else min(wait, 0.1))
                if not pending:
                    first_at = time.monotonic()
                pending.append(item)
                # take what is already waiting, up to a full batch, without waiting
                while len(pending) < self._policy.max_messages:
                    pending.append(self._inbox.get_nowait())
            except queue.Empty:
                pass
            draining = self._draining.is_set()
            age = time.monotonic() - first_at
            if pending and (self._policy.should_flush(pending=len(pending), oldest_age_s=age) or draining):
                try:
                    self._commit(pending)
                except _AbandonedError:
                    break
                pending = []
            if draining and not pending and self._inbox.empty():
                break

    def _commit(self, items: list[_Received], *, ack: bool = True) -> None:
        """Decode, store and queue acknowledgements for a batch; retry the store until it works."""
        is_agent = [agent_topic(item.topic, prefix=self._prefix) is not None for item in items]
        agent_items = [item for item, agent in zip(items, is_agent, strict=True) if agent]
        telemetry_items = [item for item, agent in zip(items, is_agent, strict=True) if not agent]
        results: list[DecodeResult] = self._retry(
            "look up devices", lambda: [self._decode(item) for item in telemetry_items]
        )
        to_store = [
            (item, r) for item, r in zip(telemetry_items, results, strict=True) if r.batch is not None
        ]
        outcomes = (
            self._write_batches([r.batch for _, r in to_store if r.batch is not None]) if to_store else []
        )
        letters = [letter for r in results for letter in r.dead_letters]
        for (item, _), outcome in zip(to_store, outcomes, strict=True):
            letter = _outcome_letter(item, outcome)
            if letter is not None:
                letters.append(letter)
        agent_counts = self._store_agent_messages(agent_items, letters) if agent_items else {}
        if letters:
            self._retry("write dead letters", lambda: self._store.write_dead_letters(letters))
        self._tally(results, [(r, o) for (_, r), o in zip(to_store, outcomes, strict=True)], len(letters))
        if agent_counts:
            self._count(**agent_counts)
        if self._observer is not None:
            try:
                self._observer(results, [o for o in outcomes if isinstance(o, BatchOutcome)])
            except Exception:  # an observer (a benchmark probe) must not stop ingest
                _log.exception("the ingest observer failed")
        if ack:
            self._acks.extend((item.generation, item.mid, item.qos) for item in items)

    def _store_agent_messages(self, items: list[_Received], letters: list[DeadLetter]) -> dict[str, int]:
        """Decode and store agent messages; append rejections to ``letters``; return counter deltas.

        Id conflicts are dead-lettered by the store itself, in the transaction
        that judged them (counted in ``dead_letters`` here).
        """
        decoded = [self._decode_agent(item) for item in items]
        records = [d.record for d in decoded if d.record is not None]
        rejected = [d.dead_letter for d in decoded if d.dead_letter is not None]
        letters.extend(rejected)
        stored = duplicates = refused = 0
        if records:
            try:
                stored, duplicates = self._retry(
                    "store agent messages", partial(self._store.put_agent_messages, records)
                )
            except _AbandonedError:
                raise
            except Exception:  # not an outage: the store refused some record; isolate it
                _log.exception("the store failed on %d agent message(s); storing one by one", len(records))
                stored = duplicates = 0
                for record in records:
                    try:
                        one = self._retry(
                            "store an agent message", partial(self._store.put_agent_messages, [record])
                        )
                    except _AbandonedError:
                        raise
                    except Exception as exc:  # recorded as a dead letter, with the cause
                        _log.exception("the store refused agent message %s", record.msg_id)
                        refused += 1
                        letters.append(_refused_agent_letter(record, f"{type(exc).__name__}: {exc}"))
                        continue
                    stored += one[0]
                    duplicates += one[1]
        conflicts = len(records) - stored - duplicates - refused
        return {
            "committed": len(items),
            "agent_messages": stored,
            "duplicates": duplicates,
            "id_conflicts": conflicts,
            "rejected_messages": len(rejected) + refused,
            "dead_letters": conflicts,
        }

    def _decode_agent(self, item: _Received) -> AgentDecodeResult:
        try:
            return decode_agent(item.topic, item.payload, now_us=item.received_at_us, prefix=self._prefix)
        except Exception as exc:  # a bug must cost one message, not the service
            _log.exception("decoding an agent message on %s failed", item.topic)
            letter = DeadLetter(
                topic=item.topic,
                payload=item.payload[: self._limits.max_payload_bytes],
                reason="internal_error",
                detail=f"pumpops failed to decode this agent message ({type(exc).__name__}: {exc}); "
                f"please report it with the payload",
                received_at_us=item.received_at_us,
            )
            return AgentDecodeResult(item.topic, dead_letter=letter)

    def _decode(self, item: _Received) -> DecodeResult:
        try:
            return decode(
                item.topic,
                item.payload,
                device_lookup=self._devices,
                profiles=self._profiles,
                now_us=item.received_at_us,
                limits=self._limits,
                prefix=self._prefix,
            )
        except ServiceError:
            raise  # the store is down: retry the batch, do not blame the message
        except Exception as exc:  # a bug must cost one message, not the service
            _log.exception("decoding a message on %s failed", item.topic)
            letter = DeadLetter(
                topic=item.topic,
                payload=item.payload[: self._limits.max_payload_bytes],
                reason="internal_error",
                detail=f"pumpops failed to decode this message ({type(exc).__name__}: {exc}); "
                f"please report it with the payload",
                received_at_us=item.received_at_us,
            )
            return DecodeResult(item.topic, None, (letter,))

    def _write_batches(self, batches: list[ReadingBatch]) -> list[BatchOutcome | _Refusal]:
        """Write batches; a batch that breaks the store (not an outage) is isolated and dead-lettered."""
        failures = 0
        backoff = self._store_backoff()
        while True:
            try:
                return list(self._store.write_batches(batches))
            except ServiceError as exc:
                self._count(store_errors=1)
                self._pause(backoff, f"writing {len(batches)} batch(es) failed: {exc}")
            except Exception as exc:  # see below
                # Not an outage but the store refusing this data (a bug, a constraint): after a
                # few tries write the batches one by one so that only the bad one is set aside.
                self._count(store_errors=1)
                failures += 1
                _log.exception("the store failed on a batch of %d message(s)", len(batches))
                if failures >= _STORE_BUG_ATTEMPTS:
                    return self._write_one_by_one(batches)
                self._pause(backoff, f"writing {len(batches)} batch(es) failed: {exc}")

    def _write_one_by_one(self, batches: list[ReadingBatch]) -> list[BatchOutcome | _Refusal]:
        outcomes: list[BatchOutcome | _Refusal] = []
        for batch in batches:
            try:
                one: list[BatchOutcome] = self._retry(
                    "write a batch", partial(self._store.write_batches, [batch])
                )
                outcomes.extend(one)
            except _AbandonedError:
                raise
            except Exception as exc:  # recorded as a dead letter, with the cause
                _log.exception("the store refused message %s of %s", batch.msg_id, batch.device_id)
                outcomes.append(_Refusal(f"{type(exc).__name__}: {exc}"))
        return outcomes

    def _retry(self, what: str, call: Callable[[], Any]) -> Any:
        """Call until it does not raise a ServiceError (anything else propagates)."""
        backoff = self._store_backoff()
        while True:
            try:
                return call()
            except ServiceError as exc:
                self._count(store_errors=1)
                self._pause(backoff, f"{what} failed: {exc}")

    def _store_backoff(self) -> Backoff:
        return Backoff(self._settings.reconnect_min_s, self._settings.reconnect_max_s)

    def _pause(self, backoff: Backoff, why: str) -> None:
        if self._abandon.is_set():
            raise _AbandonedError
        delay = backoff.next_delay()
        _log.warning("%s; nothing acknowledged, retrying in %.1f s", why, delay)
        if self._abandon.wait(delay):
            raise _AbandonedError

    def _tally(
        self,
        results: Sequence[DecodeResult],
        stored: Sequence[tuple[DecodeResult, BatchOutcome | _Refusal]],
        letters: int,
    ) -> None:
        counts = collections.Counter[str]()
        counts["committed"] = len(results)
        counts["dead_letters"] = letters
        for result in results:
            counts["rejected_readings"] += result.readings_rejected
            if result.ignored:
                counts["ignored"] += 1
            elif result.batch is None:
                counts["rejected_messages"] += 1
        for result, outcome in stored:
            if isinstance(outcome, _Refusal):
                counts["rejected_messages"] += 1
            elif outcome.status == "stored":
                counts["stored_messages"] += 1
                counts["stored_readings"] += outcome.readings_written
                counts["overlapping_readings"] += outcome.readings_overlapping
                counts["partially_rejected"] += bool(result.dead_letters)
            elif outcome.status == "duplicate":
                counts["duplicates"] += 1
            else:
                counts["id_conflicts"] += 1
        self._count(**counts)


@dataclass(frozen=True, slots=True)
class _Refusal:
    """The store could not take a batch even on its own (a store bug or constraint)."""

    detail: str


def _refused_agent_letter(record: AgentRecord, detail: str) -> DeadLetter:
    return DeadLetter(
        topic=record.topic,
        payload=record.payload,
        reason="store_refused",
        detail=f"the store refused this agent message ({detail}); nothing was stored",
        received_at_us=record.received_at_us,
        device_id=record.device_id,
        msg_id=record.msg_id,
    )


def _outcome_letter(item: _Received, outcome: BatchOutcome | _Refusal) -> DeadLetter | None:
    """A dead letter for what the store refused: a reused message id, conflicting readings."""

    def letter(reason: str, detail: str) -> DeadLetter:
        device_id = msg_id = None
        if isinstance(outcome, BatchOutcome):
            device_id, msg_id = outcome.device_id, outcome.msg_id
        return DeadLetter(
            topic=item.topic,
            payload=item.payload,
            reason=reason,
            detail=detail,
            received_at_us=item.received_at_us,
            device_id=device_id,
            msg_id=msg_id,
        )

    if isinstance(outcome, _Refusal):
        return letter(
            "store_refused", f"the store refused this message ({outcome.detail}); nothing was stored"
        )
    if outcome.status == "id_conflict":
        return letter(
            "msg_id_conflict",
            f"message id {outcome.msg_id!r} of device {outcome.device_id!r} was already stored with "
            f"different content; nothing of this message was stored — the device must give every "
            f"new batch a new id",
        )
    if outcome.conflicting:
        shown = ", ".join(
            f"{sensor} at ts_us={ts}: stored {old:.6g}, this message {new:.6g}"
            for sensor, ts, old, new in outcome.conflicting[:3]
        )
        return letter(
            "conflicting_overlap",
            f"{outcome.readings_overlapping} reading(s) were already stored by another message and at "
            f"least {len(outcome.conflicting)} differ; the first value was kept, e.g. {shown}",
        )
    return None


# ----------------------------------------------------------------------------- running it


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Make SIGINT/SIGTERM set ``stop`` (only possible on the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_until_stopped(
    service: IngestService,
    *,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    on_ready: Callable[[], None] | None = None,
    on_tick: Callable[[IngestStats], None] | None = None,
    tick_s: float = 5.0,
) -> IngestStats:
    """Run a service until SIGINT/SIGTERM, ``stop`` or ``duration_s``; then stop it gracefully.

    Args:
        service: a service not yet started.
        duration_s: stop after this many wall seconds (None: until signalled).
        stop: an event another thread may set to stop.
        on_ready: called once, when the service has subscribed.
        on_tick: called every ``tick_s`` seconds with the counters (progress output).
        tick_s: seconds between ticks.

    Returns:
        The final counters.
    """
    stop = stop or threading.Event()
    started = time.monotonic()
    deadline = None if duration_s is None else started + duration_s
    next_tick = started + tick_s
    announced = False
    with stop_on_signals(stop):
        service.start()
        try:
            while not stop.is_set():
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if not announced and service.ready:
                    announced = True
                    if on_ready is not None:
                        on_ready()
                if now >= next_tick:
                    next_tick = now + tick_s
                    if on_tick is not None:
                        on_tick(service.stats())
                stop.wait(0.1 if deadline is None else max(0.0, min(0.1, deadline - now)))
                if service.failed is not None:
                    break
        finally:
            stats = service.stop()
    if service.failed is not None:
        raise ServiceError(
            f"the ingest service stopped on an internal error: {service.failed!r}"
        ) from service.failed
    return stats
