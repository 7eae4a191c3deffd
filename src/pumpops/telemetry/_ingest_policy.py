"""The pure decisions of ingest: when to commit a batch, device look-ups, counters, dead letters for refusals.

No I/O and no threads: :class:`BatchPolicy` says when the writer commits,
:class:`DeviceCache` bounds store look-ups, :func:`tally` turns decode results
and store outcomes into counter deltas, :func:`outcome_letter` says what the
store's verdict on a message dead-letters. The reconnect backoff is the MQTT
adapter's (:class:`pumpops.mqtt.Backoff`), re-exported here under its old names.

May import: schema, fleet, store (records), ``pumpops.mqtt`` (backoff, pure), the stdlib.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pumpops.fleet import Device
from pumpops.mqtt import Backoff, backoff_delay
from pumpops.schema import DeadLetter
from pumpops.store import AgentRecord, BatchOutcome
from pumpops.telemetry._codec import DecodeResult

__all__ = [
    "Backoff",
    "BatchPolicy",
    "DeviceCache",
    "IngestStats",
    "Received",
    "Refusal",
    "backoff_delay",
    "outcome_letter",
    "refused_agent_letter",
    "tally",
]


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
        redated: agent messages whose receipt time was moved to their commit because their
            store call took longer than ``ingest.redate_after_s`` (incremental monitoring reads
            by receipt time with a bounded overlap; ``docs/monitoring.md``).
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
    redated: int = 0
    connects: int = 0
    sessions_lost: int = 0
    connected: bool = False


@dataclass(frozen=True, slots=True)
class Received:
    """One message taken from the broker: its connection generation, packet id and QoS, topic, payload."""

    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_at_us: int


@dataclass(frozen=True, slots=True)
class Refusal:
    """The store could not take a batch even on its own (a store bug or constraint)."""

    detail: str


def refused_agent_letter(record: AgentRecord, detail: str) -> DeadLetter:
    return DeadLetter(
        topic=record.topic,
        payload=record.payload,
        reason="store_refused",
        detail=f"the store refused this agent message ({detail}); nothing was stored",
        received_at_us=record.received_at_us,
        device_id=record.device_id,
        msg_id=record.msg_id,
    )


def outcome_letter(item: Received, outcome: BatchOutcome | Refusal) -> DeadLetter | None:
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

    if isinstance(outcome, Refusal):
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


def tally(
    results: Sequence[DecodeResult],
    stored: Sequence[tuple[DecodeResult, BatchOutcome | Refusal]],
    letters: int,
) -> collections.Counter[str]:
    """Counter deltas (names of :class:`IngestStats`) for one committed batch of telemetry messages."""
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
        if isinstance(outcome, Refusal):
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
    return counts
