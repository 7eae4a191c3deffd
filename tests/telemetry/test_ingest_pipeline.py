"""The ingest writer's two stages: batch N+1 is decoded while batch N is stored, and still nothing is
acknowledged before its commit, batches commit in order, and a store-stage bug stops the writer.

Driven at the writer level (an inbox and a gated in-memory store, no broker) so that the
interleaving is forced, not left to timing.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Sequence
from typing import cast

import pytest

from pumpops.fleet import Device, load_profiles
from pumpops.schema import DeadLetter, ReadingBatch
from pumpops.settings import IngestSettings
from pumpops.store import BatchOutcome, TelemetryStore
from pumpops.telemetry._codec import DecodeLimits
from pumpops.telemetry._ingest_policy import BatchPolicy, Received
from pumpops.telemetry._ingest_writer import IngestWriter

from .conftest import FLEET, make_msg, wait_until
from .fakes import MemoryStore

EXTRA = tuple(Device(f"acme-{i}", "site-a", "acme-ansi", "acme-ansi") for i in (2, 3))


class GatedStore(MemoryStore):
    """``write_batches`` of the first call waits for ``gate``; device look-ups are recorded by id."""

    def __init__(self) -> None:
        super().__init__((*FLEET, *EXTRA))
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.looked_up: list[str] = []
        self.written: list[list[str]] = []

    def device(self, device_id: str) -> Device | None:
        self.looked_up.append(device_id)
        return super().device(device_id)

    def write_batches(self, batches: Sequence[ReadingBatch]) -> list[BatchOutcome]:
        self.entered.set()
        if not self.written:
            assert self.gate.wait(20), "the test never opened the gate"
        self.written.append([b.msg_id for b in batches])
        return super().write_batches(batches)


def _writer(store: MemoryStore, acks: collections.deque[tuple[int, int, int]], prefix: str) -> IngestWriter:
    settings = IngestSettings(client_id="test-pipeline", max_past_age_s=30 * 86_400)
    return IngestWriter(
        cast(TelemetryStore, store),  # the in-memory fake has every method the writer calls
        profiles=load_profiles(),
        limits=DecodeLimits.from_settings(settings),
        policy=BatchPolicy(max_messages=2, max_wait_s=0.01),
        prefix=prefix,
        backoff_s=(0.01, 0.05),
        count=lambda **deltas: None,
        acks=acks,
        abandon=threading.Event(),
    )


def _received(device: Device, mid: int, prefix: str) -> Received:
    msg = make_msg(device, prefix=prefix, msg_id=f"m{mid}")
    return Received(1, mid, 1, msg.topic, msg.payload(), time.time_ns() // 1000)


def test_next_batch_is_decoded_while_the_previous_is_stored_and_acks_follow_each_commit(prefix: str) -> None:
    store = GatedStore()
    acks: collections.deque[tuple[int, int, int]] = collections.deque()
    writer = _writer(store, acks, prefix)
    inbox: queue.Queue[Received] = queue.Queue()
    stopping = threading.Event()
    first = [_received(FLEET[0], 1, prefix), _received(FLEET[1], 2, prefix)]
    second = [_received(EXTRA[0], 3, prefix), _received(EXTRA[1], 4, prefix)]
    for item in first:
        inbox.put(item)
    thread = threading.Thread(target=writer.write_until_drained, args=(inbox, stopping), daemon=True)
    thread.start()
    assert store.entered.wait(10)  # batch 1 is being stored (and held there)
    for item in second:
        inbox.put(item)
    # Batch 2's devices are looked up (it is decoded) while batch 1 is still uncommitted ...
    wait_until(lambda: {"acme-2", "acme-3"} <= set(store.looked_up), timeout_s=10, what="batch 2 decoded")
    time.sleep(0.1)
    # ... but batch 2 is not stored before batch 1 commits, and nothing is acknowledged yet.
    assert store.written == []
    assert not acks
    store.gate.set()
    wait_until(lambda: len(acks) == 4, timeout_s=10, what="both batches acknowledged")
    stopping.set()
    thread.join(10)
    assert not thread.is_alive()
    assert store.written == [["m1", "m2"], ["m3", "m4"]]  # in order, one batch after the other
    assert [mid for _, mid, _ in acks] == [1, 2, 3, 4]
    assert len(store.messages) == 4


class BrokenLetters(MemoryStore):
    """Dead letters fail with a bug (not an outage): the store stage raises it."""

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        raise RuntimeError("injected bug in write_dead_letters")


def test_a_bug_in_the_store_stage_stops_the_writer_with_nothing_acknowledged(prefix: str) -> None:
    store = BrokenLetters(FLEET)
    acks: collections.deque[tuple[int, int, int]] = collections.deque()
    writer = _writer(store, acks, prefix)
    inbox: queue.Queue[Received] = queue.Queue()
    good = _received(FLEET[0], 1, prefix)
    inbox.put(good)
    inbox.put(Received(1, 2, 1, good.topic, b"not json", time.time_ns() // 1000))  # a dead letter
    stopping = threading.Event()
    with pytest.raises(RuntimeError, match="injected bug"):
        # not stopping: the writer must notice the store stage's failure by itself
        writer.write_until_drained(inbox, stopping)
    assert not acks
