"""The publisher: frames from any :class:`~pumpops.sources.Source` → telemetry messages on MQTT.

It cuts frames into messages of at most ``max_rows_per_message`` rows, names
each message deterministically (:func:`message_id`: device, first timestamp
and row count, so replaying the same source after a restart re-sends the same
ids and the hub stores them once), publishes with QoS 1 and waits for the
broker's PUBACKs with a bounded number in flight. A :class:`Pacer` maps
simulated time to wall time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from pumpops.errors import BrokerError, ConfigError
from pumpops.mqtt import ClientOptions, Connection
from pumpops.sources import Frame, Source
from pumpops.telemetry._broker import BrokerAddress
from pumpops.telemetry._codec import encode_frame
from pumpops.telemetry._topics import DEFAULT_PREFIX, build_topic

__all__ = ["Pacer", "PublishStats", "Publisher", "chunk_frame", "message_id", "parse_speed"]

_log = logging.getLogger(__name__)


def parse_speed(text: str | float) -> float | None:
    """Parse a speed: simulated seconds per wall second, or ``max`` (None: no pacing).

    Raises:
        ConfigError: not a positive number or ``max``.

    >>> parse_speed("3600"), parse_speed("max"), parse_speed(1)
    (3600.0, None, 1.0)
    """
    if isinstance(text, str) and text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        raise ConfigError(
            f"speed must be a positive number (simulated s per wall s) or 'max', not {text!r}"
        ) from None
    if not speed > 0 or speed == float("inf"):
        raise ConfigError(f"speed must be a positive number or 'max', not {text!r}")
    return speed


@dataclass(frozen=True, slots=True)
class Pacer:
    """Maps simulated time to wall time: ``speed`` simulated seconds per wall second.

    Pure: it computes how long to wait and leaves the waiting to the caller.

    Attributes:
        speed: simulated seconds per wall second (1 = real time, 3600 = an hour
            per second), or None to go as fast as possible.
        sim_start_ms: the simulated instant that corresponds to ``wall_start_s``.
        wall_start_s: a monotonic wall-clock reading, seconds.

    >>> p = Pacer(speed=3600, sim_start_ms=0, wall_start_s=100.0)
    >>> p.delay_s(7_200_000, wall_now_s=100.5)  # 2 simulated hours are due at 102.0
    1.5
    >>> Pacer(speed=None, sim_start_ms=0, wall_start_s=0.0).delay_s(10**12, wall_now_s=0.0)
    0.0
    """

    speed: float | None
    sim_start_ms: int
    wall_start_s: float

    def due_s(self, sim_ts_ms: int) -> float:
        """The wall-clock time at which simulated instant ``sim_ts_ms`` is due."""
        if self.speed is None:
            return self.wall_start_s
        return self.wall_start_s + (sim_ts_ms - self.sim_start_ms) / 1000.0 / self.speed

    def delay_s(self, sim_ts_ms: int, *, wall_now_s: float) -> float:
        """Seconds to wait before sending readings stamped ``sim_ts_ms`` (never negative)."""
        return max(0.0, self.due_s(sim_ts_ms) - wall_now_s)


def message_id(device_id: str, first_ts_ms: int, n_rows: int) -> str:
    """The deterministic id of a message: the same readings always get the same id.

    >>> message_id("p-0001", 1735689600000, 60)
    'p-0001-1735689600000-60'
    """
    return f"{device_id}-{first_ts_ms}-{n_rows}"


def chunk_frame(frame: Frame, max_rows: int) -> Iterator[Frame]:
    """Cut a frame into frames of at most ``max_rows`` rows, in order."""
    if max_rows < 1:
        raise ConfigError("max_rows must be at least 1")
    m = frame.ts_ms.shape[0]
    for start in range(0, m, max_rows):
        stop = min(m, start + max_rows)
        yield Frame(frame.device_id, frame.ts_ms[start:stop], frame.channels, frame.values[start:stop])


@dataclass(frozen=True, slots=True)
class PublishStats:
    """What a publishing run sent.

    Attributes:
        messages: messages published and acknowledged by the broker.
        readings: non-null values in them.
        payload_bytes: payload bytes in them.
        first_ts_ms: simulated time of the first reading sent, or None.
        last_ts_ms: simulated time of the last reading sent, or None.
        wall_s: wall-clock seconds the run took.
    """

    messages: int
    readings: int
    payload_bytes: int
    first_ts_ms: int | None
    last_ts_ms: int | None
    wall_s: float


class Publisher:
    """Publishes telemetry with QoS 1 and a bounded number of unacknowledged messages.

    Args:
        address: the broker.
        client_id: the MQTT client id (unique per running publisher).
        sites: the site of every device it will publish for (part of the topic).
        topic_prefix: the topic prefix.
        max_rows_per_message: rows per message; 60 rows of 8-10 sensors is
            about 3-5 KB, well under the hub's size limit.
        max_inflight: messages sent but not yet acknowledged by the broker.
        connect_timeout_s: how long to wait for the broker to accept the connection.
    """

    def __init__(
        self,
        address: BrokerAddress,
        *,
        client_id: str,
        sites: Mapping[str, str],
        topic_prefix: str = DEFAULT_PREFIX,
        max_rows_per_message: int = 60,
        max_inflight: int = 200,
        connect_timeout_s: float = 10.0,
    ) -> None:
        if max_inflight < 1 or max_rows_per_message < 1:
            raise ConfigError("max_inflight and max_rows_per_message must be at least 1")
        self._sites = dict(sites)
        self._prefix = topic_prefix
        self._max_rows = max_rows_per_message
        self._max_inflight = max_inflight
        self._connect_timeout_s = connect_timeout_s
        self._slots = threading.BoundedSemaphore(max_inflight)
        self._lock = threading.Lock()
        self._unacked: set[int] = set()
        self._early: set[int] = set()  # PUBACKs that beat publish() in recording their mid
        self._acked = 0
        # paho sends at most max_inflight before waiting for PUBACKs; our semaphore
        # keeps its own queue empty, so memory stays bounded whatever the source does
        options = ClientOptions(
            client_id=client_id,
            clean_session=True,
            tls=address.tls_options(),
            username=address.username,
            password=address.password,
            max_inflight=max_inflight,
            max_queued=0,
            reconnect_min_s=1,
            reconnect_max_s=30,
        )
        self._conn = Connection(
            address.host,
            address.port,
            options,
            on_disconnect=self._on_disconnect,
            on_publish=self._on_publish,
        )

    # -- connection

    def connect(self) -> Publisher:
        """Connect and start the network thread.

        Raises:
            BrokerError: the broker cannot be reached or refused the connection.
        """
        self._conn.connect(self._connect_timeout_s)
        return self

    def close(self, timeout_s: float = 30.0) -> None:
        """Wait for outstanding PUBACKs (up to ``timeout_s``), then disconnect."""
        if not self._conn.started:
            return
        try:
            self.flush(timeout_s)
        finally:
            self._conn.close()

    def __enter__(self) -> Publisher:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_disconnect(self, reason: object, was_up: bool) -> None:
        if getattr(reason, "is_failure", False):
            _log.warning(
                "publisher lost the broker (%s); paho reconnects and resends unacknowledged messages", reason
            )

    def _on_publish(self, mid: int) -> None:
        with self._lock:
            if mid not in self._unacked:
                self._early.add(mid)
                return
            self._unacked.discard(mid)
            self._acked += 1
        self._slots.release()

    # -- publishing

    @property
    def in_flight(self) -> int:
        """Messages published and not yet acknowledged."""
        with self._lock:
            return len(self._unacked)

    def publish(self, topic: str, payload: bytes, *, timeout_s: float = 60.0) -> None:
        """Publish one payload with QoS 1; block while ``max_inflight`` are unacknowledged.

        Raises:
            BrokerError: no slot freed within ``timeout_s`` (the broker stopped acknowledging).
        """
        if not self._slots.acquire(timeout=timeout_s):
            raise BrokerError(
                f"the broker acknowledged nothing for {timeout_s} s ({self.in_flight} in flight)"
            )
        # Not under self._lock: paho calls on_publish while holding its own message
        # lock, which publish() also takes, so holding ours here could deadlock.
        try:
            info = self._conn.publish(topic, payload, qos=1)
        except BrokerError:
            self._slots.release()
            raise
        # NO_CONN: paho keeps a QoS 1 message and sends it once it has reconnected
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                self._acked += 1
                acked_already = True
            else:
                self._unacked.add(info.mid)
                acked_already = False
        if acked_already:
            self._slots.release()

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every published message is acknowledged.

        Raises:
            BrokerError: some are still unacknowledged after ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while self.in_flight:
            if time.monotonic() > deadline:
                raise BrokerError(f"{self.in_flight} message(s) unacknowledged after {timeout_s} s")
            time.sleep(0.005)

    def publish_frame(self, frame: Frame) -> tuple[int, int, int]:
        """Publish a frame as one or more messages.

        Returns:
            ``(messages, readings, payload_bytes)`` published.

        Raises:
            ConfigError: the device's site is unknown.
        """
        try:
            site = self._sites[frame.device_id]
        except KeyError:
            raise ConfigError(f"no site known for device {frame.device_id!r}") from None
        topic = build_topic(site, frame.device_id, "telemetry", prefix=self._prefix)
        messages = readings = size = 0
        for part in chunk_frame(frame, self._max_rows):
            if part.ts_ms.shape[0] == 0:
                continue
            msg_id = message_id(part.device_id, int(part.ts_ms[0]), int(part.ts_ms.shape[0]))
            payload = encode_frame(part, msg_id)
            self.publish(topic, payload)
            messages += 1
            readings += int(np.count_nonzero(~np.isnan(part.values)))
            size += len(payload)
        return messages, readings, size

    def run(
        self,
        source: Source,
        *,
        speed: float | None = None,
        until_ms: int | None = None,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        on_sent: Callable[[int, int], object] | None = None,
    ) -> PublishStats:
        """Publish everything a source yields, paced to ``speed``.

        Args:
            source: where the frames come from.
            speed: simulated seconds per wall second, or None for as fast as possible.
            until_ms: stop before the first frame starting at or after this simulated time.
            stop: set it (from another thread or a signal handler) to stop early.
            clock: monotonic clock, seconds (injectable for tests).
            sleep: how to wait (injectable for tests).
            on_sent: called after each frame is handed to the broker connection, with the
                simulated time of its newest reading (ms) and the messages sent so far
                (progress output; the first call means the run has started).

        Returns:
            What was sent; every message in it has been acknowledged by the broker.
        """
        wall_start = clock()
        pacer: Pacer | None = None
        messages = readings = size = 0
        first: int | None = None
        last: int | None = None
        for frame in source.frames():
            if stop is not None and stop.is_set():
                break
            if frame.ts_ms.shape[0] == 0:
                continue
            start_ms = int(frame.ts_ms[0])
            if until_ms is not None and start_ms >= until_ms:
                break
            if pacer is None:
                pacer = Pacer(speed, start_ms, wall_start)
            # a frame is sent once its newest reading is due, as a device would
            wait = pacer.delay_s(int(frame.ts_ms[-1]), wall_now_s=clock())
            while wait > 0 and not (stop is not None and stop.is_set()):
                sleep(min(wait, 0.25))
                wait = pacer.delay_s(int(frame.ts_ms[-1]), wall_now_s=clock())
            sent = self.publish_frame(frame)
            messages, readings, size = messages + sent[0], readings + sent[1], size + sent[2]
            first = start_ms if first is None else first
            last = int(frame.ts_ms[-1])
            if on_sent is not None:
                on_sent(last, messages)
        self.flush()
        return PublishStats(messages, readings, size, first, last, clock() - wall_start)
