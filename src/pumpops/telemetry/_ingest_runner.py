"""Running an ingest service as a process: until SIGINT/SIGTERM, a stop event or a duration.

May import: errors, this package's ingest service, the stdlib.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

from pumpops.errors import ServiceError

if TYPE_CHECKING:
    from pumpops.telemetry._ingest import IngestService
    from pumpops.telemetry._ingest_policy import IngestStats

__all__ = ["run_until_stopped", "stop_on_signals"]


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
