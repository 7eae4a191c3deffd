"""The agent's updating room: desired state, update checks, install with a health check, rollback.

One update cycle asks the TUF repository (:class:`EdgeUpdater`) for the
version the hub desires (or the newest), installs a new one into the inactive
A/B slot (:class:`Slots`) only if it passes its health check on this pump's
recent readings, and reports the outcome on ``state``. A refused version is
not tried again until the hub moves on; a failed current slot or a new model
that only fails is rolled back. Nothing here stops detection: the installed
model keeps scoring whatever the repository does.

The same verified metadata carries the hub's signed recalibration orders: an
order for this device that is new and not expired makes it recommission
(gather a new normal period, ``recalibrate``), once per order number
(``_recalibration.py``). A ``recalibrate`` number in the MQTT ``desired``
message is a hint to look, never an order: unsigned or replayed, it is refused
and the reason reported in ``last_update_error``.
May import: edge modules, errors, numpy.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from pumpops.edge._commission import _center_scale
from pumpops.edge._health import HealthDecision, decide_health, measure_health
from pumpops.edge._recalibration import decide_recalibration
from pumpops.edge._resample import RowMapper
from pumpops.edge._state import RECENT_ROWS, AgentBase
from pumpops.errors import IncompatibleBundleError, PumpopsError

if TYPE_CHECKING:
    from pumpops.schema import Bundle

__all__ = ["NO_DATA", "UpdatingRoom"]

#: Why a first install waits: the health check needs this pump's readings.
NO_DATA = "no calibration and no recent readings to check the model with (retried with data)"

log = logging.getLogger("pumpops.agent")


class UpdatingRoom(AgentBase):
    """Keeping the right model installed."""

    _refused: dict[str, str]
    _kill_at: str | None
    #: the order number an MQTT ``desired`` named (a hint, in memory only, judged at the next check)
    _recal_hint: int | None = None
    #: why the standing ``desired`` message's hint was refused (reported at every check until it changes)
    _recal_hint_refused: str | None = None

    def check_for_update(self) -> None:
        """One update cycle: verify and download (TUF), install into a slot if healthy, report.

        The ``desired`` version from MQTT is a hint (``EdgeUpdater.update``): an older
        version than the running one is installed only when the hub's signed intent
        pins it. A refused hint is reported in ``last_update_error`` at every check
        while the hub's message stands, and the newest signed version is kept or
        installed instead; the hint is never persisted.
        """
        now = self._clock_ms()
        self._persist["last_update_check_ms"] = now
        self._persist.pop("desired_version", None)  # a hint lives in memory only (older agents kept it)
        hint = self._desired
        current = self.slots.current()
        running = None if current is None else str(current.model_version)
        log.info("checking the repository (desired: %s)", hint or "the newest signed version")
        try:
            installed = self.updater.update(hint, running=running)
        except PumpopsError as exc:
            self.counts["update_checks_failed"] = self.counts.get("update_checks_failed", 0) + 1
            self.last_update_error = f"{type(exc).__name__}: {exc}"
            log.warning("update check failed, keeping the installed model: %s", self.last_update_error)
        else:
            self._persist["last_update_ok_ms"] = now
            self.counts["update_checks_ok"] = self.counts.get("update_checks_ok", 0) + 1
            self.last_update_error = installed.hint_refused
            if installed.hint_refused is not None:
                log.warning("%s", installed.hint_refused)
            if current is None or str(current.model_version) != installed.version:
                if installed.version in self._refused:
                    self.last_update_error = self._refused[installed.version]
                else:
                    self._install(installed.folder, installed.version)
            self._follow_recalibration(getattr(installed, "recalibrations", {}) or {})
        self._persist["last_update_error"] = self.last_update_error
        self._save_persist()
        self._report_state(force=True)

    def _follow_recalibration(self, orders: Mapping[str, Any]) -> None:
        """Recommission on a new, unexpired signed order for this device; report what was refused."""
        if not orders and self._recal_hint is None and self._recal_hint_refused is None:
            return
        followed = self._persist.get("recalibration_order")
        followed = followed if isinstance(followed, int) and not isinstance(followed, bool) else 0
        hint, self._recal_hint = self._recal_hint, None  # a hint is judged once, when it came
        decision = decide_recalibration(
            orders, self.device_id, followed=followed, now_ms=round(self._wall() * 1000), hint=hint
        )
        refused = decision.refused
        new: list[str] = []
        if refused is not None and hint is not None and refused.startswith(f"recalibration order {hint} "):
            self._recal_hint_refused = refused  # stands while the hub's retained message does
            new.append(refused)
            refused = None
        elif refused is not None:
            new.append(refused)
        for text in new:
            self.counts["recalibrations_refused"] = self.counts.get("recalibrations_refused", 0) + 1
            log.warning("%s", text)
        for said in (self._recal_hint_refused, refused):
            if said:
                self.last_update_error = (
                    said if not self.last_update_error else f"{self.last_update_error}; {said}"
                )
        if not decision.follow:
            return
        self._persist["recalibration_order"] = decision.order
        self._save_persist()
        self.counts["recalibrations"] = self.counts.get("recalibrations", 0) + 1
        log.warning(
            "recalibrating on the hub's signed order %s (%s): gathering a new normal period",
            decision.order,
            decision.reason or "no reason given",
        )
        cast(Callable[[], None], getattr(self, "recalibrate"))()  # noqa: B009 - the calibrating room's method

    def _install(self, folder: Path, version: str) -> None:
        try:
            state = self.slots.install(folder, self._health_check, hook=self._install_hook)
        except IncompatibleBundleError as exc:
            if NO_DATA in str(exc):
                # A normal first install: the model is checked on this pump's readings, and there
                # are none yet. It waits for a minute of them, not for the next refresh.
                self._next_check_ms = min(self._next_check_ms, self._clock_ms() + 60_000)
                if self.model is None:
                    self.health = "waiting"
                    self.health_reasons = [str(exc)]
                log.info("version %s is installed once there are readings to check it with", version)
                return
            self.health = "refused"
            self.health_reasons = [str(exc)]
            self.last_update_error = str(exc)
            # refused for what it is: not tried again until the hub moves on
            self._refused[version] = str(exc)
            log.error("update refused, the old model keeps running: %s", exc)
            return
        except PumpopsError as exc:
            self.last_update_error = f"{type(exc).__name__}: {exc}"
            log.error("install failed, the old model keeps running: %s", exc)
            return
        log.info("installed %s v%s into slot %s", state.model_name, state.model_version, state.slot)
        self.health = "ok"
        self.health_reasons = []
        self._resampler = None
        self._load_current(fresh=True)

    def _install_hook(self, step: str) -> None:
        if self._kill_at == step:
            log.warning("fault injection: killing the agent at install step %r", step)
            os.kill(os.getpid(), signal.SIGKILL)

    def _recent_rows(self, bundle: Bundle) -> list[np.ndarray]:
        """The last readings, as rows of ``bundle``'s sensors (its units), oldest first."""
        sensors = bundle.manifest.inputs.sensors
        mapper = RowMapper(self.profile, [(s.name, s.unit) for s in sensors], [s.from_units for s in sensors])
        out: list[np.ndarray] = []
        for frame in self._recent_frames:
            try:
                rows = mapper.rows(frame.channels, frame.values)
            except IncompatibleBundleError:
                return []
            out.extend(r for r in rows if np.all(np.isfinite(r)))
        return out[-RECENT_ROWS:]

    def _health_check(self, bundle: Bundle) -> HealthDecision:
        n_sensors = len(bundle.manifest.inputs.sensors)
        rows = bundle.manifest.inputs.window_rows
        recent = self._recent_rows(bundle)
        windows = None
        center = scale = None
        if len(recent) >= rows:
            arr = np.asarray(recent[-(rows + self.config.agent.health_windows - 1) :])
            view = np.lib.stride_tricks.sliding_window_view(arr, rows, axis=0)
            windows = np.ascontiguousarray(np.moveaxis(view, -1, 1))
        if self.device_id not in bundle.manifest.calibrations:
            # A device without a hub calibration: judge the model on its own recent (or stored) data.
            ref = self._normal_period(n_sensors)
            base = ref if ref is not None else (np.asarray(recent) if recent else None)
            if base is None or base.shape[0] < 2:
                return HealthDecision(False, (NO_DATA,))
            center, scale = _center_scale(base)
        measured = measure_health(
            bundle,
            self.device_id,
            windows,
            center=None if center is None else center.tolist(),
            scale=None if scale is None else scale.tolist(),
        )
        budget = bundle.manifest.build.budgets.get("max_latency_ms")
        return decide_health(measured, None if budget is None else float(budget))

    def _rollback(self, reason: str) -> None:
        try:
            state = self.slots.rollback()
        except PumpopsError as exc:
            log.error("cannot roll back (%s): %s", reason, exc)
            self.health = "failed"
            self.health_reasons = [reason, str(exc)]
            self.model = None
            return
        log.error("rolled back to %s v%s: %s", state.model_name, state.model_version, reason)
        self.health = "rolled_back"
        self.health_reasons = [reason]
        self._resampler = None
        self._load_current(fresh=False)
        self._report_state(force=True)

    def _take_recalibrate_hint(self, doc: object) -> None:
        """Remember a ``recalibrate`` number of a ``desired`` message as a hint (judged at the check)."""
        raw = doc.get("recalibrate") if isinstance(doc, dict) else None
        if raw is None:
            return
        if isinstance(raw, int) and not isinstance(raw, bool) and 0 < raw < 2**31:
            self._recal_hint = raw
            log.info("hub hints at recalibration order %d: checking the signed metadata", raw)
        else:
            self._recal_hint_refused = f"recalibration hint {str(raw)[:40]!r} refused: not an order number"
            self.counts["recalibrations_refused"] = self.counts.get("recalibrations_refused", 0) + 1
            log.warning("%s", self._recal_hint_refused)

    def _take_desired(self) -> bool:
        if self.uplink is None:
            return False
        wanted = False
        while True:
            try:
                raw = self.uplink.desired.get_nowait()
            except Exception:  # queue.Empty
                return wanted
            try:
                doc = json.loads(raw) if raw else {}
                version = doc.get("version") if isinstance(doc, dict) else None
            except ValueError:
                log.warning("ignoring a desired-state message that is not JSON")
                continue
            self._recal_hint_refused = None  # a new message: the old one's refusal no longer stands
            self._take_recalibrate_hint(doc)
            # A hint, not a command: judged against the signed intent at each check, never persisted.
            self._desired = None if version is None else str(version)[:64]
            wanted = True
            log.info("hub desires version %s", self._desired or "newest")
