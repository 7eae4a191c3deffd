"""The device agent: readings → window → model → alarms, with updates, outbox, drift and state.

One loop in one thread (paho's network thread aside)::

    source frames ─► RowMapper (native → model sensors, SI) ─► Resampler (training grid)
        ─► commissioning (no calibration yet) or WindowBuffer ─► onnxruntime ─► AlarmLogic
        ─► alarm log (local, fsynced) + outbox ``alarm``;  scores ─► summary, DriftMonitor
    between frames: ``desired`` messages, update checks (EdgeUpdater → Slots + health check),
    summaries, drift reports, state reports, outbox → broker

This module is the thin loop: it builds the source and the agent's parts
(slots, outbox, updater, uplink), and runs the loop. The work is done in rooms
the :class:`Agent` is assembled from, each in its own module: scoring
(``_scoring.py``, the loaded model in ``_model.py``), calibration and
commissioning (``_calibrating.py``), reporting (``_reporting.py``: summaries,
drift, state reports, the outbox feed) and updating (``_updating.py``:
desired state, update checks, install, health check, rollback); the state they
share and ``agent.json`` live in ``_state.py``.

Everything the model needs comes from the bundle (sensors and units, window,
grid period, alarm rule, calibration, threshold parameters); the agent has no
model-specific code. Nothing here stops detection: a broker or repository
that is down, expired TUF metadata or a refused update are reported on
``state`` and retried, while the installed model keeps scoring.

Files under ``state_dir``: ``slots/`` (A/B slots), ``tuf/`` (TUF metadata
cache), ``downloads/`` (verified downloads), ``outbox.sqlite``,
``alarms.jsonl`` (the local alarm log), ``agent.json`` (update-check times),
``normal-period.npy`` (the commissioned normal period), ``state.json`` (the
last state report, for ``pumpops agent status``), ``recalibrate.request``.
May import: edge modules, sources, sim, fleet, schema, errors, numpy,
onnxruntime, paho-mqtt, python-tuf.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from pumpops.edge._calibrating import CalibratingRoom
from pumpops.edge._config import AgentConfig
from pumpops.edge._device import read_profile, read_target
from pumpops.edge._outbox import Outbox
from pumpops.edge._reporting import ReportingRoom
from pumpops.edge._scoring import ScoringRoom
from pumpops.edge._slots import Slots
from pumpops.edge._sources import build_source, source_start_ms
from pumpops.edge._state import AGENT_VERSION, KILL_AT_ENV, NORMAL_PERIOD_FILE, RECALIBRATE_FILE
from pumpops.edge._update_child import ChildUpdater, UpdateJob
from pumpops.edge._updating import UpdatingRoom
from pumpops.edge._uplink import Uplink, build_uplink
from pumpops.edge._usage import CpuMeter, memory_mib
from pumpops.errors import ConfigError, PumpopsError
from pumpops.sources import Frame, Source

__all__ = ["AGENT_VERSION", "KILL_AT_ENV", "NORMAL_PERIOD_FILE", "RECALIBRATE_FILE", "Agent", "build_source"]

log = logging.getLogger("pumpops.agent")


def build_updater(config: AgentConfig) -> ChildUpdater:
    """The update checks of ``agent.toml``'s ``[repository]``, run in a child process.

    Raises:
        ConfigError: the trusted root file is missing.
    """
    a, root = config.agent, config.repository.trusted_root
    if not root.is_file():
        raise ConfigError(f"repository.trusted_root {root} is not a file (the root metadata provisioned)")
    job = UpdateJob(
        trusted_root=str(root),
        repository=str(config.repository.location),
        state_dir=str(a.state_dir / "tuf"),
        install_dir=str(a.state_dir / "downloads"),
        group=a.group,
        target=a.target,
        agent_version=AGENT_VERSION,
    )
    return ChildUpdater(job, timeout_s=a.update_timeout_s, in_process=a.clock == "data")


class Agent(ScoringRoom, CalibratingRoom, ReportingRoom, UpdatingRoom):
    """One device's agent.

    Args:
        config: the validated ``agent.toml``.
        source: readings (default: :func:`build_source` of the config).
        wall_clock: seconds since the epoch (injectable for tests).
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        source: Source | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        a = config.agent
        self.device_id = a.device_id
        self.state_dir = a.state_dir
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._wall = wall_clock
        now_ms = int(self._wall() * 1000)
        self.profile = read_profile(a.profile)
        self.source = source or build_source(config, now_ms, self.profile)
        self.slots = Slots(self.state_dir / "slots")
        self.outbox = Outbox(self.state_dir / "outbox.sqlite", a.device_id, config.outbox_max_bytes)
        self.updater = build_updater(config)
        self.uplink: Uplink | None = None
        self._connects_seen = 0
        self._check_again = False
        hp = config.broker.host_port
        if hp is not None:
            self.uplink = build_uplink(config, self.outbox, desired_topic=self._topic("desired"))
        self._persist: dict[str, Any] = self._read_persist()
        self.model = None
        self.commissioner = None
        self.health = "none"
        self.health_reasons: list[str] = []
        self.last_update_error: str | None = self._persist.get("last_update_error")
        self.counts: dict[str, int] = {
            "rows": 0,
            "rows_out_of_order": 0,
            "rows_incomplete": 0,
            "rows_without_model": 0,
            "windows_scored": 0,
            "scores_non_finite": 0,
            "score_errors": 0,
            "alarms_raised": 0,
            "raw_rows_sent": 0,
            "raw_rows_not_sent": 0,
        }
        self._raw_tokens = config.upload.raw_max_rows_per_s * 10
        self._raw_at = time.monotonic()
        self.drift_status: dict[str, Any] = {"status": "unknown"}
        self._resampler = None
        self._drift_scores: deque[float] = deque(maxlen=config.agent.drift_window_rows)
        self._recent_frames: deque[Frame] = deque()
        self._recent_count = 0
        self._pending_resume = None
        self._saved_ts_ms = None
        self._next_resume_save = time.monotonic() + a.resume_save_interval_s
        self._cpu = CpuMeter()
        self._budget_mib = self._memory_budget()
        self._over_budget = False
        self._refused: dict[str, str] = {}
        self._alarm_open: dict[str, Any] | None = None
        self._summary = None
        # On the data clock, "now" before the first reading is the source's start, not the wall clock:
        # a replay of the past must not stamp its first reports with today's time.
        self._now_ms = source_start_ms(config, now_ms) if a.clock == "data" and source is None else 0
        self._next_check_ms = 0
        self._next_summary_ms: int | None = None
        self._next_state_ms = 0
        self._last_state_key: tuple[Any, ...] | None = None
        self._desired: str | None = self._persist.get("desired_version")
        self._stop = False
        self._kill_at = os.environ.get(KILL_AT_ENV)
        self._load_current(fresh=False)

    # ------------------------------------------------------------------ the loop

    def housekeeping(self) -> None:
        """Everything between frames: desired state, updates, summaries, state, outbox."""
        now = self._clock_ms()
        refresh_ms = round(self.config.agent.refresh_interval_s * 1000)
        if self._next_check_ms - now > refresh_ms:  # the clock went back (first data row, replays)
            self._next_check_ms = now
            self._next_summary_ms = None
            self._next_state_ms = now
        if (self.state_dir / RECALIBRATE_FILE).exists() and not self._recalibrating():
            self.recalibrate()
        desired = self._take_desired()
        if desired or now >= self._next_check_ms:
            self._next_check_ms = now + refresh_ms
            self._start_update_check()
        self._finish_update_check()
        if self._next_summary_ms is None:
            self._next_summary_ms = now + round(self.config.agent.summary_interval_s * 1000)
        elif now >= self._next_summary_ms:
            self._flush_summary(now)
            self._next_summary_ms = now + round(self.config.agent.summary_interval_s * 1000)
        if self.uplink is not None and self.uplink.connects != self._connects_seen:
            # (re)connected: the broker may hold our last will as the retained state; replace it
            self._connects_seen = self.uplink.connects
            self._report_state(force=True)
        if time.monotonic() >= self._next_resume_save:
            self._next_resume_save = time.monotonic() + self.config.agent.resume_save_interval_s
            self.save_window()
        self._report_state()
        self._forward()

    def _memory_budget(self) -> float | None:
        try:
            return read_target(self.config.agent.target).max_peak_memory_mb
        except PumpopsError as exc:  # a target only the hub knows: no budget to check against
            log.info("no memory budget to check against: %s", exc)
            return None

    def process_usage(self) -> dict[str, Any]:
        """This process's resident memory and CPU share since the last call; a warning above the budget."""
        rss, peak = memory_mib()
        over = rss is not None and self._budget_mib is not None and rss > self._budget_mib
        if over and not self._over_budget:
            log.warning(
                "resident memory %.1f MiB is over the %s budget of %g MiB",
                rss,
                self.config.agent.target,
                self._budget_mib,
            )
        self._over_budget = over
        last = self.updater.last
        return {
            "rss_mib": None if rss is None else round(rss, 1),
            "peak_rss_mib": None if peak is None else round(peak, 1),
            "cpu_percent": self._cpu.share(),
            "memory_budget_mib": self._budget_mib,
            "over_budget": over,
            "update_check_peak_rss_mib": None if last is None else last.peak_rss_mib,
            "update_check_s": None if last is None else last.seconds,
            "update_check_running": self.updater.busy,
        }

    def _running_version(self) -> str | None:
        current = self.slots.current()
        return None if current is None else str(current.model_version)

    def _start_update_check(self) -> None:
        """Start an update check beside detection (a child process); one at a time.

        It runs beside detection when a model detects on the wall clock (production). It is
        waited for when there is nothing to detect with yet (no model), and on the data
        clock (replays, simulations: a check is part of the replayed timeline, not of the
        wall clock's, so the replay stays the same however long the check takes).
        """
        if self.model is None or self.config.agent.clock == "data":
            if not self.updater.busy:
                self.check_for_update()  # the child, waited for
                self._note_check()
            return
        if self.updater.busy:
            self._check_again = True  # asked again while one runs: one more check when it ends
            return
        self._check_again = False
        try:
            self.updater.start(self._desired, self._running_version())
        except OSError as exc:
            self.last_update_error = f"cannot start the update check: {exc}"
            log.error("%s", self.last_update_error)

    def _finish_update_check(self) -> None:
        """When the background check has finished: the updating room acts on its result at once."""
        report = self.updater.poll()
        if report is None:
            return
        if self.updater.matches(self._desired, self._running_version()):
            self.check_for_update()  # takes the finished result: returns at once
        else:
            self._check_again = True  # the hint or the model moved meanwhile: ask again
        self._note_check()
        if self._check_again:
            self._start_update_check()

    def _note_check(self) -> None:
        last = self.updater.last
        if last is not None and last.peak_rss_mib is not None:
            log.info("the update check's process peaked at %.1f MiB resident", last.peak_rss_mib)

    def _paced(self, frames: Iterator[Frame], deadline: float | None) -> Iterator[Frame]:
        speed = self.config.source.speed
        t0_wall: float | None = None
        t0_data = 0
        for frame in frames:
            if self._stop or (deadline is not None and time.monotonic() >= deadline):
                return
            end = int(frame.ts_ms[-1])
            if speed > 0:
                if t0_wall is None:
                    t0_wall, t0_data = time.monotonic(), int(frame.ts_ms[0])
                due = t0_wall + (end - t0_data) / 1000.0 / speed
                while not self._stop and (wait := due - time.monotonic()) > 0:
                    time.sleep(min(wait, 0.2))
                    self.housekeeping()
            yield frame

    def run(self, *, max_seconds: float | None = None) -> int:
        """Run until the source ends, ``max_seconds`` pass, or SIGTERM/SIGINT.

        Returns:
            The exit code (0).
        """
        deadline = None if max_seconds is None else time.monotonic() + max_seconds

        def stop(_sig: int, _frame: object) -> None:
            self._stop = True

        previous: dict[int, Any] = {}
        with contextlib.suppress(ValueError):  # not the main thread (tests): no signal handlers
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, stop)
        try:
            if self.uplink is not None:
                self.uplink.wait_desired(3.0)
            self._report_state(force=True)
            self.housekeeping()
            for frame in self._paced(self.source.frames(), deadline):
                self.feed(frame)
                self.housekeeping()
            self.shutdown()
        finally:  # an agent run inside another program leaves its Ctrl-C as it found it
            for number, handler in previous.items():
                signal.signal(number, handler)
        return 0

    def shutdown(self) -> None:
        """Send what is left (best effort, a few seconds), then close files and the link."""
        self.updater.stop()
        self.save_window()
        self._flush_summary(self._clock_ms())
        self._report_state(force=True)
        if self.uplink is not None:
            end = time.monotonic() + 5.0
            while self.outbox.depth()[0] and time.monotonic() < end and self.uplink.connected:
                self._forward()
            self.uplink.close()
        self.outbox.close()
        log.info("agent stopped: %s", json.dumps(self.counts, sort_keys=True))
