"""A pool of ingest worker processes on one shared subscription (``pumpops ingest --workers N``).

Each worker is a ``pumpops ingest`` process of its own with a client id of
its own (``<client_id>-<i>``) in one ``$share`` group. A worker that dies is
started again **with the same client id**: the broker keeps what it had not
acknowledged (and its share of what arrived meanwhile) in that id's session
and delivers it only to that id (docs/operations.md). SIGINT/SIGTERM stop the
pool: each worker gets SIGTERM (it commits and acknowledges what it holds),
then SIGKILL after ``grace_s``.

May import: the stdlib.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["WorkerPool", "worker_client_id"]

_log = logging.getLogger(__name__)


def worker_client_id(client_id: str, index: int) -> str:
    """The client id of worker ``index`` of a pool (stable: a restarted worker finds its session).

    >>> worker_client_id("hub-ingest", 0), worker_client_id("hub-ingest", 3)
    ('hub-ingest-w0', 'hub-ingest-w3')
    """
    return f"{client_id}-w{index}"


@dataclass
class WorkerPool:
    """Start, watch and restart worker processes until ``stop`` is set.

    Args:
        command: the command line of worker ``i``.
        size: how many workers.
        restart_delay_s: wait before starting a dead worker again.
        grace_s: seconds between SIGTERM and SIGKILL when stopping.
        popen: how a process is started (tests may wrap it).
    """

    command: Callable[[int], Sequence[str]]
    size: int
    restart_delay_s: float = 1.0
    grace_s: float = 35.0
    popen: Callable[[Sequence[str]], subprocess.Popen[bytes]] = field(
        default=lambda cmd: subprocess.Popen(list(cmd))  # noqa: S603 - our own command line
    )
    restarts: int = 0

    def run(self, stop: threading.Event) -> int:
        """Run until ``stop``; return how many times a worker was restarted."""
        procs = [self.popen(self.command(i)) for i in range(self.size)]
        try:
            while not stop.wait(0.2):
                for i, proc in enumerate(procs):
                    code = proc.poll()
                    if code is None:
                        continue
                    _log.warning(
                        "ingest worker %d exited with %s; starting it again with its client id", i, code
                    )
                    if stop.wait(self.restart_delay_s):
                        break
                    procs[i] = self.popen(self.command(i))
                    self.restarts += 1
        finally:
            self._stop_all(procs)
        return self.restarts

    def _stop_all(self, procs: list[subprocess.Popen[bytes]]) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _log.error(
                    "ingest worker pid %d did not stop within %.0f s; killing it", proc.pid, self.grace_s
                )
                proc.kill()
                proc.wait(10)
