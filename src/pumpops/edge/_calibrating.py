"""The agent's calibrating room: which calibration the running model uses, and commissioning.

Order of preference: this device's own commissioned normal period
(``normal-period.npy``, scored through the model by :func:`commission`), then
the bundle's calibration for this device, else commissioning: gather
``calibration_rows`` normal rows, calibrate on them and keep them. A
calibration builds the model's window, alarm logic and drift monitor.
``recalibrate`` (after maintenance) forgets the device calibration and gathers
again.
May import: edge modules, errors, ``_atomic``, numpy.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pumpops._atomic import write_atomic
from pumpops.edge._alarms import AlarmLogic
from pumpops.edge._commission import Commissioner, commission
from pumpops.edge._drift import DriftMonitor
from pumpops.edge._state import NORMAL_PERIOD_FILE, RECALIBRATE_FILE, AgentBase
from pumpops.edge._usage import trim_heap
from pumpops.edge._window import WindowBuffer
from pumpops.errors import InputError

__all__ = ["CalibratingRoom"]

log = logging.getLogger("pumpops.agent")


class CalibratingRoom(AgentBase):
    """Calibrating the loaded model for this device."""

    def _calibrate_from_what_is_known(self) -> None:
        """Device calibration (a commissioned normal period) first, then the bundle's, else commission."""
        model = self.model
        if model is None:
            return
        normal = self._normal_period(len(model.sensors))
        if normal is not None and not self._recalibrating():
            try:
                cal = commission(
                    normal,
                    model.score_batch,
                    window_rows=model.window_rows,
                    **model.detector.threshold.as_kwargs(),
                )
            except InputError as exc:
                log.warning("the stored normal period does not calibrate this model (%s); commissioning", exc)
            else:
                self._set_calibration(cal, "device")
                return
        cal_b = model.bundle.manifest.calibrations.get(self.device_id)
        if cal_b is not None and not self._recalibrating():
            self._set_calibration(cal_b.model_dump(), "bundle")
            return
        self.commissioner = Commissioner(len(model.sensors), self.config.agent.calibration_rows)
        model.calibration_source = "calibrating"
        log.info(
            "no calibration for %s: gathering %d normal rows",
            self.device_id,
            self.config.agent.calibration_rows,
        )

    def _normal_period(self, n_sensors: int) -> np.ndarray | None:
        path = self.state_dir / NORMAL_PERIOD_FILE
        if not path.is_file():
            return None
        try:
            rows = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            log.warning("%s is unreadable (%s); it will be gathered again", path, exc)
            return None
        if rows.ndim != 2 or rows.shape[1] != n_sensors:
            return None
        return np.asarray(rows, dtype=np.float64)

    def _recalibrating(self) -> bool:
        return bool(self._persist.get("recalibrate"))

    def _set_calibration(self, cal: dict[str, Any], source: str) -> None:
        model = self.model
        assert model is not None
        model.center = np.asarray(cal["center"], dtype=np.float64).astype(model.dtype)
        model.scale = np.asarray(cal["scale"], dtype=np.float64).astype(model.dtype)
        model.threshold = float(cal["threshold"])
        model.calibration_source = source
        names = [name for name, _ in model.sensors]
        model.window = WindowBuffer(len(names), model.window_rows)
        model.alarm = AlarmLogic.from_manifest(model.bundle.manifest.alarm.smoothing, model.threshold)
        quantiles = cal.get("quantiles") or ()
        model.drift = None
        if len(quantiles) == len(names):
            model.drift = DriftMonitor(
                names,
                np.asarray(quantiles, dtype=np.float64),
                window_rows=self.config.agent.drift_window_rows,
                report_every_rows=self.config.agent.drift_report_rows,
                score_unit=abs(model.threshold) if model.threshold else 1.0,
            )
        self.commissioner = None
        log.info("calibrated from the %s: threshold %.4g", source, model.threshold)

    def _finish_commissioning(self) -> None:
        assert self.commissioner is not None
        assert self.model is not None
        rows = self.commissioner.rows()
        model = self.model
        try:
            cal = commission(
                rows, model.score_batch, window_rows=model.window_rows, **model.detector.threshold.as_kwargs()
            )
        except InputError as exc:
            log.warning("commissioning failed (%s); gathering again", exc)
            self.commissioner = Commissioner(len(model.sensors), self.config.agent.calibration_rows)
            return
        buffer = Path(str(self.state_dir / NORMAL_PERIOD_FILE) + ".tmp")
        with open(buffer, "wb") as fh:
            np.save(fh, rows, allow_pickle=False)
        write_atomic(self.state_dir / NORMAL_PERIOD_FILE, buffer.read_bytes())
        buffer.unlink()
        self._persist.pop("recalibrate", None)
        self._save_persist()
        (self.state_dir / RECALIBRATE_FILE).unlink(missing_ok=True)
        self._set_calibration(cal, "device")
        del rows
        trim_heap()  # the normal period and its scored batches are freed: give their pages back
        self._report_state(force=True)

    def recalibrate(self) -> None:
        """Forget this device's calibration and gather a new normal period (after maintenance)."""
        log.info("recalibration requested: gathering a new normal period")
        self._persist["recalibrate"] = True
        self._save_persist()
        (self.state_dir / NORMAL_PERIOD_FILE).unlink(missing_ok=True)
        if self.model is not None:
            self.model.window = None
            self.model.alarm = None
            self.model.drift = None
            self._calibrate_from_what_is_known()
        self._report_state(force=True)

    def calibration_status(self) -> str:
        """``calibrated (bundle|device)``, ``calibrating h/n`` or ``none``."""
        if self.model is None:
            return "none"
        if self.commissioner is not None:
            have, need = self.commissioner.progress
            return f"calibrating {have}/{need}"
        return f"calibrated ({self.model.calibration_source})"
