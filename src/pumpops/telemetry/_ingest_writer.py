"""The ingest writer: batches of received messages → decode → store, acknowledgements queued after commit.

It runs on the service's writer thread. A message's acknowledgement is queued
(for the network thread to send) only after the transaction that holds its
readings, its agent record or its dead letter has committed; store outages are
retried with backoff (nothing acknowledged meanwhile), and a batch the store
refuses for another reason is written one message at a time so that only the
bad one is dead-lettered.

Two stages, overlapped: the writer thread collects and decodes batch N+1
while a store thread (:class:`_InFlight`, one batch at a time) writes batch N
and queues its acknowledgements. Batches are stored strictly one after the
other, in order, so a redelivery in batch N+1 of a message of batch N finds N
committed; decoding ahead reads nothing of the store but the device cache.
In one thread decode and store added up (the writer waited on the database
while its CPU idled); overlapped, a batch costs about the slower of the two.

May import: schema, fleet, store (records, interface), ``pumpops.mqtt`` (backoff),
this package's codec and policy modules, the stdlib.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Final

from pumpops.errors import ServiceError
from pumpops.fleet import ManufacturerProfile
from pumpops.mqtt import Backoff
from pumpops.schema import DeadLetter, ReadingBatch
from pumpops.store import AgentRecord, BatchOutcome, TelemetryStore
from pumpops.telemetry._agent import AgentDecodeResult, agent_topic, decode_agent
from pumpops.telemetry._codec import DecodeLimits, DecodeResult
from pumpops.telemetry._decode import decode
from pumpops.telemetry._ingest_policy import (
    BatchPolicy,
    DeviceCache,
    Received,
    Refusal,
    outcome_letter,
    refused_agent_letter,
)
from pumpops.telemetry._ingest_policy import (
    tally as tally_counts,
)

__all__ = ["AbandonedError", "IngestWriter"]

_log = logging.getLogger("pumpops.telemetry._ingest")  # the service's logger, as before the split

_STORE_BUG_ATTEMPTS: Final = 3  # a non-infrastructure error this often in a row: isolate the bad batch


class AbandonedError(Exception):
    """The writer gave up retrying because the service is stopping."""


class IngestWriter:
    """Decodes and stores batches; see the module docstring.

    Args:
        store: where readings, agent messages and dead letters go.
        profiles: manufacturer profiles by id.
        limits: decoding limits.
        policy: when a batch is committed.
        prefix: the topic prefix.
        backoff_s: ``(min, max)`` seconds between retries of a failed store call.
        count: adds deltas to the service's counters (names of :class:`IngestStats`).
        tally: counts one committed batch of telemetry (:func:`tally` and ``count`` by default).
        acks: where ``(generation, mid, qos)`` of committed messages are queued for the network thread.
        abandon: set when the service stops waiting for the store.
        observer: called after each commit with the decode results and store outcomes.
        now_us: the clock receipt times are stamped with.
        redate_after_s: a store call of agent messages that took longer than this (by ``now_us``)
            has its rows re-dated to after its commit (:meth:`_redate`); None: never.
    """

    def __init__(
        self,
        store: TelemetryStore,
        *,
        profiles: Mapping[str, ManufacturerProfile],
        limits: DecodeLimits,
        policy: BatchPolicy,
        prefix: str,
        backoff_s: tuple[float, float],
        count: Callable[..., None],
        tally: Callable[
            [Sequence[DecodeResult], Sequence[tuple[DecodeResult, BatchOutcome | Refusal]], int], None
        ]
        | None = None,
        acks: collections.deque[tuple[int, int, int]],
        abandon: threading.Event,
        observer: Callable[[Sequence[DecodeResult], Sequence[BatchOutcome]], None] | None = None,
        now_us: Callable[[], int] | None = None,
        redate_after_s: float | None = None,
    ) -> None:
        self._store = store
        self._redate_after_us = None if redate_after_s is None else round(redate_after_s * 1_000_000)
        self._now_us = now_us or (lambda: time.time_ns() // 1000)
        self._profiles = profiles
        self._limits = limits
        self._policy = policy
        self._prefix = prefix
        self._backoff_min_s, self._backoff_max_s = backoff_s
        self._count = count
        self._tally = tally or (
            lambda results, stored, letters: count(**tally_counts(results, stored, letters))
        )
        self._acks = acks
        self._abandon = abandon
        self._observer = observer
        self._devices = DeviceCache(store.device)

    def write_until_drained(self, inbox: queue.Queue[Received], stopping: threading.Event) -> None:
        """Commit what arrives on ``inbox`` in batches; return once ``stopping`` is set and all is committed.

        Batch N+1 is decoded while batch N is stored (module docstring). It
        also returns when the service abandons the store (``abandon``);
        anything it raises is a bug (outages are retried inside), the store
        stage's included.
        """
        pending: list[Received] = []
        first_at = 0.0
        inflight: _InFlight | None = None
        try:
            while True:
                if inflight is not None and inflight.done():
                    inflight.wait()  # raises what the store stage raised
                    inflight = None
                wait = self._policy.wait_s(pending=len(pending), oldest_age_s=time.monotonic() - first_at)
                try:
                    item = inbox.get(timeout=0.1 if wait is None else min(wait, 0.1))
                    if not pending:
                        first_at = time.monotonic()
                    pending.append(item)
                    # take what is already waiting, up to a full batch, without waiting
                    while len(pending) < self._policy.max_messages:
                        pending.append(inbox.get_nowait())
                except queue.Empty:
                    pass
                draining = stopping.is_set()
                age = time.monotonic() - first_at
                if pending and (
                    self._policy.should_flush(pending=len(pending), oldest_age_s=age) or draining
                ):
                    decoded = self.decode(pending)
                    if inflight is not None:
                        inflight.wait()  # batches are stored in order, one at a time
                    inflight = _InFlight(partial(self.store, decoded))
                    pending = []
                if draining and not pending and inbox.empty():
                    break
            if inflight is not None:
                inflight.wait()
        except AbandonedError:
            return

    def commit(self, items: list[Received], *, ack: bool = True) -> None:
        """Decode, store and queue acknowledgements for a batch; retry the store until it works."""
        self.store(self.decode(items), ack=ack)

    def decode(self, items: list[Received]) -> _Decoded:
        """Decode a batch (telemetry and agent messages); nothing is stored."""
        is_agent = [agent_topic(item.topic, prefix=self._prefix) is not None for item in items]
        agent_items = [item for item, agent in zip(items, is_agent, strict=True) if agent]
        telemetry_items = [item for item, agent in zip(items, is_agent, strict=True) if not agent]
        results: list[DecodeResult] = self._retry(
            "look up devices", lambda: [self._decode(item) for item in telemetry_items]
        )
        agents = [self._decode_agent(item) for item in agent_items]
        return _Decoded(items, telemetry_items, results, agents)

    def store(self, decoded: _Decoded, *, ack: bool = True) -> None:
        """Store a decoded batch and its dead letters; then queue its acknowledgements."""
        results = decoded.results
        to_store = [
            (item, r) for item, r in zip(decoded.telemetry, results, strict=True) if r.batch is not None
        ]
        outcomes = (
            self._write_batches([r.batch for _, r in to_store if r.batch is not None]) if to_store else []
        )
        letters = [letter for r in results for letter in r.dead_letters]
        for (item, _), outcome in zip(to_store, outcomes, strict=True):
            letter = outcome_letter(item, outcome)
            if letter is not None:
                letters.append(letter)
        agent_counts = self._store_agent_messages(decoded.agents, letters) if decoded.agents else {}
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
            self._acks.extend((item.generation, item.mid, item.qos) for item in decoded.items)

    def _store_agent_messages(
        self, decoded: list[AgentDecodeResult], letters: list[DeadLetter]
    ) -> dict[str, int]:
        """Store decoded agent messages; append rejections to ``letters``; return counter deltas.

        Id conflicts and sequence jumps are dead-lettered by the store itself,
        in the transaction that judged them (counted in ``dead_letters`` here).
        """
        records = [d.record for d in decoded if d.record is not None]
        rejected = [d.dead_letter for d in decoded if d.dead_letter is not None]
        letters.extend(rejected)
        stored = duplicates = refused = jumps = 0

        def put(batch: list[AgentRecord]) -> tuple[int, int, int]:
            # Dated by the attempt that stores them, not by their arrival in the inbox: incremental
            # monitoring reads by receipt time with a bounded overlap, so a backlog or an outage
            # must not commit rows behind a watermark that has passed them.
            stamp = self._now_us()
            dated = [replace(r, received_at_us=max(r.received_at_us, stamp)) for r in batch]
            result = self._store.put_agent_messages(dated, max_seq_jump=self._limits.max_seq_jump)
            self._redate([r.msg_id for r in dated], stamp)
            return result

        if records:
            try:
                stored, duplicates, jumps = self._retry("store agent messages", partial(put, records))
            except AbandonedError:
                raise
            except Exception:  # not an outage: the store refused some record; isolate it
                _log.exception("the store failed on %d agent message(s); storing one by one", len(records))
                stored = duplicates = jumps = 0
                for record in records:
                    try:
                        one = self._retry("store an agent message", partial(put, [record]))
                    except AbandonedError:
                        raise
                    except Exception as exc:  # recorded as a dead letter, with the cause
                        _log.exception("the store refused agent message %s", record.msg_id)
                        refused += 1
                        letters.append(refused_agent_letter(record, f"{type(exc).__name__}: {exc}"))
                        continue
                    stored += one[0]
                    duplicates += one[1]
                    jumps += one[2]
        conflicts = len(records) - stored - duplicates - refused - jumps
        return {
            "committed": len(decoded),
            "agent_messages": stored,
            "duplicates": duplicates,
            "id_conflicts": conflicts,
            "rejected_messages": len(rejected) + refused + jumps,
            "dead_letters": conflicts + jumps,
        }

    def _redate(self, msg_ids: list[str], stamp: int) -> None:
        """After a slow store call stamped ``stamp``: move its rows' receipt time past the commit.

        Incremental monitoring re-reads ``monitoring.overlap_s`` of receipt time before the
        newest it has read; a row committed later than that after its stamp could be passed
        over for good. Re-dated to now (after the commit), it is read as new. The re-dating
        is itself timed against the same bound and repeated if it was slow too.
        """
        bound = self._redate_after_us
        while bound is not None and (now := self._now_us()) - stamp > bound:
            moved = self._retry(
                "re-date slow agent messages",
                partial(self._store.redate_agent_messages, msg_ids, since_us=stamp, received_at_us=now),
            )
            _log.warning(
                "a store call of %d agent message(s) took %.1f s to commit, more than ingest.redate_after_s "
                "(%.1f s); %d row(s) re-dated to after the commit so that incremental monitoring reads them",
                len(msg_ids),
                (now - stamp) / 1e6,
                bound / 1e6,
                moved,
            )
            self._count(redated=moved)
            stamp = now

    def _decode_agent(self, item: Received) -> AgentDecodeResult:
        try:
            return decode_agent(
                item.topic, item.payload, now_us=item.received_at_us, prefix=self._prefix, limits=self._limits
            )
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

    def _decode(self, item: Received) -> DecodeResult:
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

    def _write_batches(self, batches: list[ReadingBatch]) -> list[BatchOutcome | Refusal]:
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

    def _write_one_by_one(self, batches: list[ReadingBatch]) -> list[BatchOutcome | Refusal]:
        outcomes: list[BatchOutcome | Refusal] = []
        for batch in batches:
            try:
                one: list[BatchOutcome] = self._retry(
                    "write a batch", partial(self._store.write_batches, [batch])
                )
                outcomes.extend(one)
            except AbandonedError:
                raise
            except Exception as exc:  # recorded as a dead letter, with the cause
                _log.exception("the store refused message %s of %s", batch.msg_id, batch.device_id)
                outcomes.append(Refusal(f"{type(exc).__name__}: {exc}"))
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
        return Backoff(self._backoff_min_s, self._backoff_max_s)

    def _pause(self, backoff: Backoff, why: str) -> None:
        if self._abandon.is_set():
            raise AbandonedError
        delay = backoff.next_delay()
        _log.warning("%s; nothing acknowledged, retrying in %.1f s", why, delay)
        if self._abandon.wait(delay):
            raise AbandonedError


@dataclass(frozen=True, slots=True)
class _Decoded:
    """A decoded batch waiting for the store: every message, in order, and what decoding made of it."""

    items: list[Received]
    telemetry: list[Received]
    results: list[DecodeResult]  # one per telemetry message
    agents: list[AgentDecodeResult]


class _InFlight:
    """One store call on a daemon thread of its own; :meth:`wait` joins it and raises what it raised.

    A daemon thread, as the writer thread is: a store call stuck past the
    service's stop timeout must not keep the process from exiting.
    """

    def __init__(self, call: Callable[[], None]) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(call,), name="pumpops-ingest-store", daemon=True
        )
        self._thread.start()

    def _run(self, call: Callable[[], None]) -> None:
        try:
            call()
        except BaseException as exc:  # handed to the writer thread by wait()
            self._error = exc

    def done(self) -> bool:
        """True once the call has returned or raised."""
        return not self._thread.is_alive()

    def wait(self) -> None:
        """Wait for the call; raise what it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
