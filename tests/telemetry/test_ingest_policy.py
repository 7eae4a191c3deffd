"""The ingest service's pure decisions: backoff schedule, batching, device cache."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pumpops.fleet import Device
from pumpops.telemetry import Backoff, BatchPolicy, DeviceCache, backoff_delay


@given(
    attempt=st.integers(0, 10_000),
    min_s=st.floats(0.001, 10),
    span=st.floats(1, 1000),
    u=st.floats(0, 1, exclude_max=True),
)
def test_backoff_delay_stays_within_bounds(attempt: int, min_s: float, span: float, u: float) -> None:
    max_s = min_s * span
    delay = backoff_delay(attempt, min_s, max_s, u)
    assert min_s <= delay <= max_s


def test_backoff_ceiling_doubles_then_caps() -> None:
    ceilings = [backoff_delay(a, 0.5, 10.0, 1.0) for a in range(8)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_backoff_jitter_spreads_workers_that_failed_together() -> None:
    delays = {round(Backoff(0.5, 30.0, random.Random(seed)).next_delay() + 0, 6) for seed in range(5)}
    later = [Backoff(0.5, 30.0, random.Random(seed)) for seed in range(20)]
    for b in later:
        for _ in range(5):
            b.next_delay()
    spread = {round(b.next_delay(), 3) for b in later}
    assert len(delays) == 1  # attempt 0 is exactly min_s: nothing to spread
    assert len(spread) > 10


def test_backoff_reset_starts_again_from_the_minimum() -> None:
    backoff = Backoff(0.5, 30.0, random.Random(1))
    for _ in range(6):
        backoff.next_delay()
    assert backoff.attempt == 6
    backoff.reset()
    assert backoff.next_delay() == 0.5


@pytest.mark.parametrize(
    ("pending", "age", "flush"),
    [
        (0, 99.0, False),
        (1, 0.0, False),
        (1, 0.05, True),
        (499, 0.01, False),
        (500, 0.0, True),
        (900, 0.0, True),
    ],
)
def test_batch_policy_flushes_on_size_or_age(pending: int, age: float, flush: bool) -> None:
    assert BatchPolicy(500, 0.05).should_flush(pending=pending, oldest_age_s=age) is flush


def test_batch_policy_waits_the_rest_of_the_window() -> None:
    policy = BatchPolicy(10, 0.5)
    assert policy.wait_s(pending=0, oldest_age_s=0.0) is None
    assert policy.wait_s(pending=2, oldest_age_s=0.2) == pytest.approx(0.3)
    assert policy.wait_s(pending=2, oldest_age_s=0.9) == 0.0


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_device_cache_remembers_hits_longer_than_misses() -> None:
    device = Device("d-1", "s", "acme-ansi", "g")
    registry: dict[str, Device] = {}
    calls: list[str] = []

    def lookup(device_id: str) -> Device | None:
        calls.append(device_id)
        return registry.get(device_id)

    clock = _Clock()
    cache = DeviceCache(lookup, ttl_s=60, miss_ttl_s=2, clock=clock)
    assert cache("d-1") is None
    assert cache("d-1") is None
    assert calls == ["d-1"]  # the miss is cached briefly
    registry["d-1"] = device
    clock.t = 2.5
    assert cache("d-1") == device  # registered since: found after the short miss TTL
    clock.t = 50.0
    assert cache("d-1") == device
    assert len(calls) == 2
    clock.t = 63.0
    assert cache("d-1") == device
    assert len(calls) == 3


def test_device_cache_is_bounded() -> None:
    cache = DeviceCache(lambda _id: None, max_entries=10)
    for i in range(100):
        cache(f"d-{i}")
    assert len(cache._entries) <= 10
