"""The agent's calibrating room: which calibration the running model uses, and commissioning.

Order of preference: this device's own commissioned normal period
(``normal-period.npy``, scored through the model by :func:`commission`), then
the bundle's calibration for this device, else commissioning: gather
``calibration_rows`` normal rows, calibrate on them and keep them. A
calibration builds the model's window, alarm logic and drift monitor.
``recalibrate`` (after maintenance) forgets the device calibration and gathers
again. The drift monitor's shift test takes the device's normal period as its
reference; calibrated from a bundle (no normal rows of its own), the device
gathers ``calibration_rows`` complete rows for it first and keeps them
(``shift-reference.npy``, with the model they were gathered under: a new model
version gathers again).
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
from pumpops.edge._shift import ShiftTest
from pumpops.edge._state import NORMAL_PERIOD_FILE, RECALIBRATE_FILE, AgentBase
from pumpops.edge._usage import trim_heap
from pumpops.edge._window import WindowBuffer
from pumpops.errors import InputError

__all__ = ["CalibratingRoom"]

log = logging.getLogger("pumpops.agent")

#: The shift test's reference rows of a bundle-calibrated device (``normal-period.npy`` otherwise).
SHIFT_REFERENCE_FILE = "shift-reference.npy"
#: False alarms per drift report of the shift test on a stationary pump (docs/monitoring.md).
SHIFT_ALPHA = 0.01


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
                self._set_calibration(cal, "device", normal)
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

    def _normal_period(self, n_sensors: int, name: str = NORMAL_PERIOD_FILE) -> np.ndarray | None:
        path = self.state_dir / name
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

    def _set_calibration(self, cal: dict[str, Any], source: str, normal: np.ndarray | None = None) -> None:
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
            model.drift = self._drift_monitor(names, np.asarray(quantiles, dtype=np.float64), normal)
        self.commissioner = None
        log.info("calibrated from the %s: threshold %.4g", source, model.threshold)

    def _drift_monitor(
        self, names: list[str], quantiles: np.ndarray, normal: np.ndarray | None
    ) -> DriftMonitor:
        """PSI, the score change test and the shift test (reference: the normal rows, kept or gathered)."""
        model = self.model
        assert model is not None
        a = self.config.agent
        ref_key = f"{model.slot.model_name}:{model.slot.model_version}"
        shift_test: ShiftTest | None = None
        gather = 0
        rows = normal if normal is not None else self._shift_reference(len(names), ref_key)
        if rows is not None:
            try:
                shift_test = ShiftTest(names, rows, window_rows=a.drift_window_rows, alpha=SHIFT_ALPHA)
            except InputError as exc:  # e.g. fewer rows than the test needs: PSI and the score test only
                log.warning("the normal rows give the shift test no reference (%s)", exc)
        else:
            gather = a.calibration_rows
            log.info("drift: gathering %d rows of this pump as the shift test's reference", gather)

        def keep(rows: np.ndarray) -> None:
            buffer = Path(str(self.state_dir / SHIFT_REFERENCE_FILE) + ".tmp")
            with open(buffer, "wb") as fh:
                np.save(fh, rows, allow_pickle=False)
            write_atomic(self.state_dir / SHIFT_REFERENCE_FILE, buffer.read_bytes())
            buffer.unlink()
            self._persist["shift_reference_for"] = ref_key
            self._save_persist()
            log.info("drift: the shift test's reference is %d rows of this pump", rows.shape[0])

        return DriftMonitor(
            names,
            quantiles,
            window_rows=a.drift_window_rows,
            report_every_rows=a.drift_report_rows,
            score_unit=abs(model.threshold) if model.threshold else 1.0,
            shift_test=shift_test,
            gather_reference=gather,
            shift_window_rows=a.drift_window_rows,
            shift_alpha=SHIFT_ALPHA,
            on_reference=keep,
            shift_confirm_s=a.drift_confirm_s,
        )

    def _shift_reference(self, n_sensors: int, ref_key: str) -> np.ndarray | None:
        """The kept shift reference, if it was gathered under this model."""
        if self._persist.get("shift_reference_for") != ref_key:
            return None
        return self._normal_period(n_sensors, SHIFT_REFERENCE_FILE)

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
        self._set_calibration(cal, "device", rows)
        del rows
        trim_heap()  # the normal period and its scored batches are freed: give their pages back
        self._report_state(force=True)

    def recalibrate(self) -> None:
        """Forget this device's calibration and gather a new normal period (after maintenance)."""
        log.info("recalibration requested: gathering a new normal period")
        self._persist["recalibrate"] = True
        self._save_persist()
        (self.state_dir / NORMAL_PERIOD_FILE).unlink(missing_ok=True)
        (self.state_dir / SHIFT_REFERENCE_FILE).unlink(missing_ok=True)
        self._persist.pop("shift_reference_for", None)
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
