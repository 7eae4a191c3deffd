"""Keep Ctrl-C from being swallowed: an interrupt during training stops it, whatever a library does.

Some libraries catch :class:`KeyboardInterrupt` and carry on: scikit-learn's
MLP (stochastic solvers) ends its fit early with a warning and returns a
half-trained model, and training would then go on to export, log and register
it with exit code 0. :class:`InterruptGuard` records every SIGINT (and SIGTERM,
which ``pumpops.cli.main`` turns into :class:`KeyboardInterrupt`) that arrives
while it is active, still lets the interrupt raise where it arrives, and
:meth:`InterruptGuard.check` raises it again at the next checkpoint (each
pipeline step, before registering) and when the block ends.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class InterruptGuard:
    """A context manager recording interrupts; :meth:`check` re-raises one that was swallowed.

    Outside the main thread (where Python cannot set signal handlers) it only
    does nothing. A signal the process ignores (``SIG_IGN``) or leaves at its
    default action (SIGTERM outside ``pumpops.cli.main``) is left alone.

    >>> with InterruptGuard() as guard:
    ...     guard.check()  # nothing arrived
    >>> guard.interrupted
    False
    """

    def __init__(self) -> None:
        self.interrupted = False
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.interrupted = True
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)  # Python's own SIGINT handler raises KeyboardInterrupt
        raise KeyboardInterrupt

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                previous = signal.getsignal(sig)
                if previous in (signal.SIG_IGN, signal.SIG_DFL, None):
                    continue
                self._previous[sig] = previous
                signal.signal(sig, self._handler)
        return self

    def check(self) -> None:
        """Raise :class:`KeyboardInterrupt` if an interrupt arrived since the guard started."""
        if self.interrupted:
            raise KeyboardInterrupt

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
        if exc_type is None:
            self.check()
