"""Child processes that end when their parent does: started in their own process group, watched, stopped.

The demo and ``pumpops hub serve --services`` start processes (the embedded
broker, the agents). A :class:`Supervisor` starts each one in a new session
(its own process group, so a Ctrl-C at the terminal reaches only the parent,
which then stops them in order), notices when one exits unexpectedly — a
non-zero exit code, a process that must run until stopped, or one that ends
well before its planned run — and reports it with the last lines of its log.
:meth:`Supervisor.close` (also on an error, Ctrl-C or SIGTERM, through
``with``) sends SIGTERM to every group, waits, then SIGKILLs what is left.
May import: the stdlib, ``pumpops.errors``.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import NoReturn

from pumpops.errors import ServiceError

__all__ = ["Child", "Supervisor", "stop_processes", "tail"]

TAIL_LINES = 15


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Send ``sig`` to the process group that ``proc`` leads (to ``proc`` alone if it leads none)."""
    if proc.returncode is not None:
        return  # reaped: its pid may already belong to another process
    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_processes(procs: Sequence[subprocess.Popen[bytes]], grace_s: float = 10.0) -> None:
    """SIGTERM each process's group, wait up to ``grace_s`` for all, then SIGKILL and reap what is left.

    A second Ctrl-C while waiting goes straight to SIGKILL; the interrupt is raised again at the end.
    """
    interrupted = False
    for proc in procs:
        proc.poll()
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    try:
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except KeyboardInterrupt:
        interrupted = True
    for proc in procs:
        proc.poll()
        _signal_group(proc, signal.SIGKILL)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5.0)
    if interrupted:
        raise KeyboardInterrupt


@dataclass
class Child:
    """A watched process.

    Attributes:
        name: what it is, for messages (``agent p-0001``, ``embedded broker``).
        proc: the process.
        log: where its output goes.
        started: ``time.monotonic()`` at its start.
        min_run_s: a process that exits with code 0 ends normally only after this
            many seconds (None: it must run until it is stopped).
        owned: the supervisor stops it on close (False: someone else does, it is only watched).
    """

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    started: float
    min_run_s: float | None = None
    owned: bool = True
    done: bool = False

    def problem(self) -> str | None:
        """Why its exit is unexpected, or None (running, or ended normally)."""
        code = self.proc.poll()
        if code is None or self.done:
            return None
        ran = time.monotonic() - self.started
        if code == 0 and self.min_run_s is not None and ran >= self.min_run_s:
            self.done = True
            return None
        if code == 0:
            why = f"ended after {ran:.0f} s, before its run was over"
        elif code < 0:
            why = f"was killed by signal {-code} after {ran:.0f} s"
        else:
            why = f"exited with code {code} after {ran:.0f} s"
        lines = tail(self.log) or "(no output)"
        return f"{self.name} {why}; last lines of {self.log}:\n{lines}"


class Supervisor:
    """Start, watch and stop child processes; a context manager.

    Args:
        grace_s: how long :meth:`close` waits after SIGTERM before SIGKILL.
        interval_s: how often the watcher thread (see :meth:`watch_in_background`) looks.
    """

    def __init__(self, *, grace_s: float = 10.0, interval_s: float = 0.5) -> None:
        self.grace_s = grace_s
        self.interval_s = interval_s
        self.children: list[Child] = []
        self._checks: list[tuple[str, Callable[[], str | None]]] = []
        self.failure: ServiceError | None = None
        self._lock = threading.Lock()
        self._armed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log: Path,
        cwd: Path | None = None,
        min_run_s: float | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in a new session (its own process group), output appended to ``log``."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603 - callers pass our own interpreter and commands
                list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=cwd, start_new_session=True,
            )  # fmt: skip
        with self._lock:
            self.children.append(Child(name, proc, log, time.monotonic(), min_run_s))
        return proc

    def watch_process(self, name: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        """Watch a process started elsewhere (its owner stops it); it must run until stopped."""
        with self._lock:
            self.children.append(Child(name, proc, log, time.monotonic(), None, owned=False))

    def watch(self, name: str, check: Callable[[], str | None]) -> None:
        """Watch something else (a thread): ``check()`` returns why it failed, or None."""
        with self._lock:
            self._checks.append((name, check))

    def alive(self, prefix: str = "") -> int:
        """How many watched processes whose name starts with ``prefix`` are running."""
        with self._lock:
            children = list(self.children)
        return sum(1 for c in children if c.name.startswith(prefix) and c.proc.poll() is None)

    def stop_stragglers(self, prefix: str) -> list[str]:
        """Stop the running processes whose name starts with ``prefix`` (SIGTERM, wait, SIGKILL).

        For processes that should have ended by now and did not (e.g. an agent hung at
        its exit): they are stopped as expected ends, not reported as failures.

        Returns:
            The names of the processes stopped.
        """
        with self._lock:
            late = [c for c in self.children if c.name.startswith(prefix) and c.proc.poll() is None]
            for c in late:
                c.done = True
        stop_processes([c.proc for c in late], self.grace_s)
        return [c.name for c in late]

    def pids(self) -> list[int]:
        """The process ids of every process this supervisor started."""
        with self._lock:
            return [c.proc.pid for c in self.children if c.owned]

    def problem(self) -> ServiceError | None:
        """The first unexpected exit or failed check, or None."""
        with self._lock:
            children, checks = list(self.children), list(self._checks)
        for child in children:
            why = child.problem()
            if why is not None:
                return ServiceError(why)
        for name, check in checks:
            why = check()
            if why is not None:
                return ServiceError(f"{name} failed: {why}")
        return None

    def check(self) -> None:
        """Raise the first problem.

        Raises:
            ServiceError: a process exited unexpectedly (with its last log lines) or a check failed.
        """
        problem = self.failure or self.problem()
        if problem is not None:
            self.failure = problem
            raise problem

    def watch_in_background(self) -> None:
        """Look every ``interval_s`` in a thread; on a problem, interrupt the main thread.

        The main thread then gets a KeyboardInterrupt wherever it is (in a long training
        step too); the caller turns it into :attr:`failure` (see :meth:`reraise`).
        """
        with self._lock:
            self._armed = True
        self._thread = threading.Thread(target=self._watch, name="pumpops-supervisor", daemon=True)
        self._thread.start()

    def disarm(self) -> None:
        """No more interrupts from the watcher (before the normal end's cleanup)."""
        with self._lock:
            self._armed = False
        self._stop.set()

    def reraise(self, exc: KeyboardInterrupt) -> NoReturn:
        """Turn a watcher's interrupt into its :attr:`failure`; a real Ctrl-C stays what it is.

        Raises:
            ServiceError: the watcher found a problem.
            KeyboardInterrupt: otherwise.
        """
        if self.failure is not None:
            raise self.failure from None
        raise exc

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            problem = self.problem()
            if problem is None:
                continue
            with self._lock:
                if not self._armed:
                    return
                self._armed = False
                self.failure = problem
                _thread.interrupt_main(signal.SIGINT)
            return

    def close(self) -> None:
        """Stop the watcher, then every process this supervisor started (SIGTERM, wait, SIGKILL)."""
        self.disarm()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        with self._lock:
            owned = [c.proc for c in self.children if c.owned]
        stop_processes(owned, self.grace_s)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
