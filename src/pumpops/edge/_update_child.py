"""Update checks in a short-lived child process, beside detection.

python-tuf, cryptography and urllib3 cost the agent ~22 MiB resident, and a
repository that answers at 1 KB/s (or not at all) would hold whatever thread
waits for it. So the agent process never imports them: an update check (TUF
refresh, choice of version, verified download into ``downloads/``) runs as
``python -m pumpops.edge._update_child '<job JSON>'``, which prints one JSON line
(the :class:`~pumpops.edge._updater.Installed` it got, or the error it raised,
and its own peak memory) and exits, returning its memory to the device.

:class:`ChildUpdater` is what the agent's updating room calls ``update`` on (the
same signature as :class:`~pumpops.edge._updater.EdgeUpdater`, whose logic runs
unchanged in the child). The loop starts a check with :meth:`ChildUpdater.start`
and keeps detecting; :meth:`ChildUpdater.poll` says when it is done, and then the
room's ``check_for_update`` runs at once on the finished result. Called with no
finished result for the same question, ``update`` runs the child and waits (the
first check, before there is a model to detect with). With ``in_process`` (the agent's
data clock: replays and simulations, where a check is part of the replayed timeline and
memory is not the point) ``update`` runs the same job in this process instead, which
saves a Python start-up per check. A child that runs past ``timeout_s`` is killed
and reported as a :class:`~pumpops.errors.DownloadError`; an error the child raised
comes back as the same ``pumpops.errors`` class.
May import: errors, the stdlib (the child imports ``pumpops.edge._updater``).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pumpops import errors

__all__ = ["ChildReport", "ChildUpdater", "UpdateJob", "UpdateResult", "main", "run_job"]

log = logging.getLogger("pumpops.agent")


@dataclass(frozen=True)
class UpdateJob:
    """What the child needs to build an :class:`~pumpops.edge._updater.EdgeUpdater`."""

    trusted_root: str
    repository: str
    state_dir: str
    install_dir: str
    group: str
    target: str
    agent_version: str


@dataclass(frozen=True)
class UpdateResult:
    """What an update cycle left installed (the fields of ``Installed`` the agent reads)."""

    version: str
    folder: Path
    changed: bool
    hint_refused: str | None = None
    recalibrations: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChildReport:
    """One finished check.

    Attributes:
        hint: the ``desired`` hint it was asked with.
        running: the running version it was asked with.
        result: what is installed, or None on error.
        error: ``(class name in pumpops.errors, message)``, or None.
        peak_rss_mib: the child's peak resident memory (VmHWM), None if it died first.
        seconds: how long it ran.
    """

    hint: str | None
    running: str | None
    result: UpdateResult | None
    error: tuple[str, str] | None
    peak_rss_mib: float | None
    seconds: float

    def raise_or_return(self) -> UpdateResult:
        """The result, or the child's error raised as its ``pumpops.errors`` class."""
        if self.result is not None:
            return self.result
        name, message = self.error or ("PumpopsError", "the update check gave no result")
        cls = getattr(errors, name, None)
        if not (isinstance(cls, type) and issubclass(cls, errors.PumpopsError)):
            raise errors.PumpopsError(f"{name}: {message}")
        try:
            exc = cls(message)
        except TypeError:  # an error class with another constructor
            exc = errors.PumpopsError(f"{name}: {message}")
        raise exc


class ChildUpdater:
    """Runs :class:`~pumpops.edge._updater.EdgeUpdater.update` in a child process.

    Args:
        job: how to build the updater in the child.
        timeout_s: a child running longer is killed (a stalled repository).
    """

    def __init__(self, job: UpdateJob, *, timeout_s: float = 600.0, in_process: bool = False) -> None:
        self.job = job
        self.timeout_s = timeout_s
        self.in_process = in_process
        self.last: ChildReport | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: Path | None = None
        self._asked: tuple[str | None, str | None] = (None, None)
        self._started = 0.0
        self._ready: ChildReport | None = None

    @property
    def busy(self) -> bool:
        """Whether a check is running now."""
        return self._proc is not None

    def start(self, hint: str | None, running: str | None) -> bool:
        """Start a check in the background; False (and nothing started) if one is running."""
        if self._proc is not None:
            return False
        self._ready = None
        Path(self.job.state_dir).mkdir(parents=True, exist_ok=True)  # a fresh agent has no <state>/tuf yet
        fd, name = tempfile.mkstemp(prefix=".update-check-", suffix=".json", dir=self.job.state_dir)
        os.close(fd)
        self._out = Path(name)
        self._asked = (hint, running)
        doc = {**asdict(self.job), "hint": hint, "running": running}
        with self._out.open("wb") as out:
            self._proc = subprocess.Popen(  # noqa: S603 - this interpreter, this module, our own JSON
                [sys.executable, "-m", "pumpops.edge._update_child", json.dumps(doc)],
                stdout=out,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C meant for the agent does not kill a check half-way
            )
        self._started = time.monotonic()
        log.info("update check started in process %d", self._proc.pid)
        return True

    def poll(self) -> ChildReport | None:
        """The report of the check that just finished (once), else None. Kills an overdue child."""
        proc = self._proc
        if proc is None:
            return None
        seconds = time.monotonic() - self._started
        code = proc.poll()
        if code is None:
            if seconds < self.timeout_s:
                return None
            proc.kill()
            proc.wait()
            report = self._finish(
                None,
                (
                    "DownloadError",
                    f"the update check did not finish in {self.timeout_s:g} s (repository too slow or "
                    "stalled); stopped, tried again at the next check",
                ),
                seconds,
            )
        else:
            report = self._read(code, seconds)
        self._ready = report
        return report

    def _read(self, code: int, seconds: float) -> ChildReport:
        assert self._out is not None
        try:
            doc = json.loads(self._out.read_bytes().splitlines()[-1])
        except (OSError, ValueError, IndexError):
            died = f"signal {-code}" if code < 0 else f"exit code {code}"
            return self._finish(None, ("PumpopsError", f"the update check process died ({died})"), seconds)
        result = None
        if doc.get("result") is not None:
            r = doc["result"]
            orders = r.get("recalibrations")
            result = UpdateResult(
                str(r["version"]),
                Path(r["folder"]),
                bool(r["changed"]),
                r.get("hint_refused"),
                orders if isinstance(orders, dict) else {},
            )
        error = tuple(doc["error"]) if doc.get("error") else None
        return self._finish(result, error, seconds, doc.get("peak_rss_mib"))

    def _finish(
        self,
        result: UpdateResult | None,
        error: tuple[str, str] | None,
        seconds: float,
        peak: float | None = None,
    ) -> ChildReport:
        if self._out is not None:
            self._out.unlink(missing_ok=True)
        self._proc, self._out = None, None
        report = ChildReport(self._asked[0], self._asked[1], result, error, peak, round(seconds, 3))
        self.last = report
        log.info(
            "update check finished in %.1f s (peak %s MiB): %s",
            seconds,
            "?" if peak is None else f"{peak:.1f}",
            "ok" if error is None else f"{error[0]}: {error[1]}",
        )
        return report

    def matches(self, hint: str | None, running: str | None) -> bool:
        """Whether the finished report answers this question (the hint or running version may have moved)."""
        return self._ready is not None and (self._ready.hint, self._ready.running) == (hint, running)

    def update(self, hint: str | None = None, *, running: str | None = None) -> UpdateResult:
        """One update cycle: the finished background check for this question, or a new one waited for.

        Raises:
            PumpopsError: (its subclass) what the check raised, or that it timed out or died.
        """
        if self.matches(hint, running):
            report, self._ready = self._ready, None
            assert report is not None
            return report.raise_or_return()
        if self.in_process:
            return self._in_process(hint, running)
        if self._proc is not None:
            self.stop()
        self.start(hint, running)
        while (report := self.poll()) is None:
            time.sleep(0.05)
        self._ready = None
        return report.raise_or_return()

    def _in_process(self, hint: str | None, running: str | None) -> UpdateResult:
        started = time.monotonic()
        doc = {**asdict(self.job), "hint": hint, "running": running}
        self._asked = (hint, running)
        out = run_job(doc)
        result = None
        if out["result"] is not None:
            r = out["result"]
            result = UpdateResult(
                r["version"], Path(r["folder"]), r["changed"], r["hint_refused"], r["recalibrations"]
            )
        report = self._finish(result, out["error"], time.monotonic() - started)
        return report.raise_or_return()

    def stop(self) -> None:
        """Kill a running check (shutdown)."""
        proc = self._proc
        if proc is None:
            return
        with_group = proc.pid
        try:
            os.killpg(with_group, signal.SIGKILL)
        except OSError:
            proc.kill()
        proc.wait()
        self._finish(None, ("PumpopsError", "stopped"), time.monotonic() - self._started)
        self._ready = None


def _peak_rss_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_job(doc: dict[str, Any]) -> dict[str, Any]:
    """One ``EdgeUpdater.update`` of a job: ``{"result": ..., "error": [class name, message] | None}``."""
    out: dict[str, Any] = {"result": None, "error": None}
    try:
        from pumpops.edge._updater import EdgeUpdater  # noqa: PLC0415 - the child's reason to exist

        updater = EdgeUpdater(
            trusted_root=Path(doc["trusted_root"]).read_bytes(),
            repository=doc["repository"],
            state_dir=Path(doc["state_dir"]),
            install_dir=Path(doc["install_dir"]),
            group=doc["group"],
            target=doc["target"],
            agent_version=doc["agent_version"],
        )
        got = updater.update(doc["hint"], running=doc["running"])
        out["result"] = {
            "version": got.version,
            "folder": str(got.folder),
            "changed": got.changed,
            "hint_refused": got.hint_refused,
            "recalibrations": dict(got.recalibrations),
        }
    except errors.PumpopsError as exc:
        out["error"] = [type(exc).__name__, str(exc)]
    except OSError as exc:
        out["error"] = ["ConfigError", f"cannot read the trusted root: {exc}"]
    return out


def main(argv: list[str]) -> int:
    """The child: one ``EdgeUpdater.update`` from the job in ``argv[0]``; one JSON line on stdout."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s update-check: %(message)s")
    out = run_job(json.loads(argv[0]))
    out["peak_rss_mib"] = _peak_rss_mib()
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
