"""The agent's scoring room: readings → rows on the model's grid → window → score → alarm step.

Loads what the slots say is current (:func:`open_model`, then its
calibration), maps each frame's native channels to the model's sensors in SI
units, resamples them onto the training grid, and scores every full window.
Each score goes to the alarm logic; the step and the score go to reporting,
the row and the score to the drift monitor. A freshly installed model that
only fails during its first windows is rolled back (by the updating room).
Rows that arrive before calibration go to commissioning (the calibrating room).
The window and the alarm state are saved now and then and restored after a restart
(``_resume.py``), so a restarted agent scores its first row at once.
May import: edge modules, sources, errors, numpy.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from pumpops.edge._model import LoadedModel, open_model
from pumpops.edge._resample import Resampler
from pumpops.edge._resume import Resume, load_resume, resume_refusal, save_resume
from pumpops.edge._state import RECENT_ROWS, AgentBase
from pumpops.edge._usage import release_library_pages, trim_heap
from pumpops.errors import IncompatibleBundleError, PumpopsError
from pumpops.sources import Frame

__all__ = ["PROBATION_WINDOWS", "ScoringRoom"]

#: Windows scored after an install in which a model that only fails is rolled back.
PROBATION_WINDOWS = 30

log = logging.getLogger("pumpops.agent")


class ScoringRoom(AgentBase):
    """Feeding readings through the loaded model."""

    _recent_count: int
    _pending_resume: Resume | None
    _saved_ts_ms: int | None

    # ------------------------------------------------------------------ model

    def _load_current(self, *, fresh: bool) -> None:
        """Load what the slots say is current (or nothing) and derive its calibration."""
        try:
            state = self.slots.current()
            bundle = self.slots.bundle()
        except PumpopsError as exc:
            log.error("the current slot does not verify (%s); rolling back", exc)
            self._rollback(f"current slot failed verification: {exc}")
            return
        if state is None or bundle is None:
            self.model = None
            return
        self.model = open_model(
            state,
            bundle,
            self.profile,
            default_period_s=self.config.agent.sample_period_s,
            default_max_gap_fill_s=self.config.agent.max_gap_fill_s,
        )
        self.model.fresh_install = fresh
        if self.health == "none":  # verified on open; it passed its health check when installed
            self.health = "ok"
        self._calibrate_from_what_is_known()
        trim_heap()  # the calibration's batches are freed: give their pages back
        release_library_pages()  # onnxruntime's code for opening the session ran once: let it go
        self._pending_resume = None
        if not fresh:  # a start (or a rollback): the window saved before it may still be good
            self._pending_resume, why = load_resume(self.state_dir)
            if why is not None:
                log.info("not resuming a saved window: %s", why)

    # ------------------------------------------------------------------ resume after a restart

    def _try_resume(self, model: LoadedModel, first_ts_ms: int) -> None:
        resume, self._pending_resume = self._pending_resume, None
        assert resume is not None
        assert model.window is not None
        assert model.alarm is not None
        assert model.threshold is not None
        why = resume_refusal(
            resume,
            manifest_sha256=model.slot.manifest_sha256,
            threshold=model.threshold,
            window_rows=model.window_rows,
            n_sensors=len(model.sensors),
            first_ts_ms=first_ts_ms,
            max_age_s=self.config.agent.resume_max_age_s,
        )
        if why is not None:
            log.info("warming up: not resuming the saved window (%s)", why)
            return
        try:
            model.alarm.restore(resume.alarm)
        except PumpopsError as exc:
            log.warning("warming up: the saved alarm state is unusable (%s)", exc)
            return
        for row in resume.rows:
            model.window.push(np.asarray(row, dtype=np.float64))
        model.last_ts_ms = resume.ts_ms
        self.counts["windows_resumed"] = self.counts.get("windows_resumed", 0) + 1
        log.info(
            "resumed the window saved %.0f s before (alarm %s): scoring at once",
            (first_ts_ms - resume.ts_ms) / 1000,
            "on" if model.alarm.on else "off",
        )

    def save_window(self) -> bool:
        """Save the window and alarm state for a restart (if it changed since the last save)."""
        model = self.model
        if model is None or model.window is None or model.alarm is None or model.threshold is None:
            return False
        if not model.window.ready or model.last_ts_ms is None or model.last_ts_ms == self._saved_ts_ms:
            return False
        started = time.perf_counter()
        save_resume(
            self.state_dir,
            Resume(
                manifest_sha256=model.slot.manifest_sha256,
                threshold=model.threshold,
                ts_ms=model.last_ts_ms,
                rows=tuple(tuple(r) for r in model.window.window().tolist()),
                alarm=model.alarm.state(),
            ),
        )
        self._saved_ts_ms = model.last_ts_ms
        log.debug("saved the window in %.1f ms", (time.perf_counter() - started) * 1000)
        return True

    # ------------------------------------------------------------------ rows

    def _remember(self, frame: Frame) -> None:
        self._recent_frames.append(frame)
        self._recent_count += frame.ts_ms.shape[0]
        while self._recent_count - self._recent_frames[0].ts_ms.shape[0] >= RECENT_ROWS:
            self._recent_count -= self._recent_frames.popleft().ts_ms.shape[0]

    def feed(self, frame: Frame) -> None:
        """Process one frame of readings."""
        self._remember(frame)
        self._upload_raw(frame)
        model = self.model
        if model is None:
            self.counts["rows_without_model"] += frame.ts_ms.shape[0]
            self.counts["rows"] += frame.ts_ms.shape[0]
            self._now_ms = int(frame.ts_ms[-1])
            return
        try:
            rows = model.mapper.rows(frame.channels, frame.values)
        except IncompatibleBundleError as exc:
            self._refuse_running(str(exc))
            return
        if self._resampler is None or self._resampler.n_sensors != rows.shape[1]:
            self._resampler = Resampler(rows.shape[1], model.period_ms, model.fill_rows)
        for ts, row in zip(frame.ts_ms.tolist(), rows, strict=True):
            self.counts["rows"] += 1
            try:
                grid = list(self._resampler.push(int(ts), row))
            except ValueError:
                self.counts["rows_out_of_order"] += 1
                continue
            for grid_ts, grid_row in grid:
                self._row(grid_ts, grid_row)
        self._now_ms = int(frame.ts_ms[-1])

    def _row(self, ts_ms: int, row: np.ndarray) -> None:
        model = self.model
        assert model is not None
        self._now_ms = ts_ms
        if not np.all(np.isfinite(row)):
            self.counts["rows_incomplete"] += 1
            if model.window is not None:
                model.window.clear()
            return
        if self.commissioner is not None:
            self.commissioner.add(row)
            if self.commissioner.done:
                self._finish_commissioning()
            return
        if model.window is None or model.alarm is None:
            return
        if self._pending_resume is not None and model.window.rows_seen == 0:
            self._try_resume(model, ts_ms)
        model.window.push(row)
        model.last_ts_ms = ts_ms
        if not model.window.ready:
            return
        try:
            score = model.score(model.window.window())
        except Exception as exc:  # onnxruntime raises untyped errors; count and judge the model
            self.counts["score_errors"] += 1
            self._judge_new_model(ok=False, reason=f"scoring failed: {type(exc).__name__}: {exc}")
            return
        finite = bool(np.isfinite(score))
        self.counts["windows_scored"] += 1
        if not finite:
            self.counts["scores_non_finite"] += 1
        self._judge_new_model(ok=finite, reason="the model outputs non-finite scores")
        if self.model is model:  # not rolled back
            self._scored(model, ts_ms, row, score, finite)

    def _scored(self, model: LoadedModel, ts_ms: int, row: np.ndarray, score: float, finite: bool) -> None:
        assert model.alarm is not None
        step = model.alarm.update(score)
        self._record_score(ts_ms, score, finite, step)
        if model.drift is not None:
            report = model.drift.update(row, score if finite else None, ts_ms)
            if report is not None:
                self._drift_report(report.to_dict())

    def _judge_new_model(self, *, ok: bool, reason: str) -> None:
        """A freshly installed model that only fails during its first windows is rolled back."""
        model = self.model
        if model is None or not model.fresh_install:
            return
        model.scored += 1
        model.failures += 0 if ok else 1
        if ok:
            model.fresh_install = False  # it works: probation over
        elif model.failures >= PROBATION_WINDOWS:
            self._rollback(f"{reason} ({model.failures} of its first windows)")

    def _refuse_running(self, reason: str) -> None:
        if self.health != "incompatible":
            log.error("the installed model cannot run on this pump: %s", reason)
        self.health = "incompatible"
        self.health_reasons = [reason]
