"""The running model: an onnxruntime session opened from a verified bundle, and its calibration.

:class:`LoadedModel` holds everything the scoring path derives from the bundle
(sensors and units, window, grid period, gap fill, the typed detector manifest
with its threshold rule, the device's centre, scale and threshold, and the
window, alarm logic and drift monitor built from them); :func:`open_model`
opens one. Nothing here is model-specific: it all comes from the bundle.
May import: edge modules, schema, numpy, onnxruntime.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from pumpops.edge._alarms import AlarmLogic
from pumpops.edge._drift import DriftMonitor
from pumpops.edge._health import _provider, session_options
from pumpops.edge._resample import Profile, RowMapper
from pumpops.edge._slots import SlotState
from pumpops.edge._window import WindowBuffer

if TYPE_CHECKING:
    from pumpops.schema import Bundle, DetectorManifest

__all__ = ["LoadedModel", "open_model"]

log = logging.getLogger("pumpops.agent")


@dataclass
class LoadedModel:
    """The running model and everything derived from its bundle."""

    slot: SlotState
    bundle: Bundle
    session: ort.InferenceSession
    provider: str
    input_names: list[str]
    dtype: type[np.floating[Any]]
    sensors: tuple[tuple[str, str], ...]
    window_rows: int
    period_ms: int
    fill_rows: int
    mapper: RowMapper
    detector: DetectorManifest
    center: np.ndarray | None = None
    scale: np.ndarray | None = None
    threshold: float | None = None
    calibration_source: str = "none"
    window: WindowBuffer | None = None
    alarm: AlarmLogic | None = None
    drift: DriftMonitor | None = None
    fresh_install: bool = False
    scored: int = 0
    failures: int = 0
    last_ts_ms: int | None = None

    def score(self, window: np.ndarray) -> float:
        """Score one window with the device's calibration."""
        assert self.center is not None
        assert self.scale is not None
        feeds = dict(
            zip(
                self.input_names,
                (window[np.newaxis].astype(self.dtype), self.center, self.scale),
                strict=True,
            )
        )
        return float(np.asarray(self.session.run(None, feeds)[0]).ravel()[0])

    def score_batch(self, windows: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Scores of a batch of windows with a given centre and scale (commissioning)."""
        feeds = dict(
            zip(
                self.input_names,
                (windows.astype(self.dtype), center.astype(self.dtype), scale.astype(self.dtype)),
                strict=True,
            )
        )
        return np.asarray(self.session.run(None, feeds)[0], dtype=np.float64).ravel()


def open_model(
    state: SlotState,
    bundle: Bundle,
    profile: Profile,
    *,
    default_period_s: float,
    default_max_gap_fill_s: float,
) -> LoadedModel:
    """Open the bundle's model in onnxruntime (:func:`session_options`: least memory) for ``profile``'s pump.

    Args:
        state: the slot the bundle lies in.
        bundle: the verified bundle.
        profile: the pump's manufacturer profile (native sensors and units).
        default_period_s: the grid period when the detector manifest names none.
        default_max_gap_fill_s: the longest gap filled when the detector manifest names none.
    """
    m = bundle.manifest
    provider = _provider(m.target.execution_providers, ort.get_available_providers())
    options = session_options()
    session = ort.InferenceSession(str(bundle.model_path), sess_options=options, providers=[provider])
    sensors = tuple((s.name, s.unit) for s in m.inputs.sensors)
    detector = m.detector_manifest()
    sampling = detector.sampling
    period_s = default_period_s if sampling.period_s is None else sampling.period_s
    gap_s = default_max_gap_fill_s if sampling.max_gap_fill_s is None else sampling.max_gap_fill_s
    log.info(
        "model %s v%s in slot %s, %s, %d sensors x %d rows every %g s",
        m.model_name, m.model_version, state.slot, provider, len(sensors), m.inputs.window_rows, period_s,
    )  # fmt: skip
    return LoadedModel(
        slot=state,
        bundle=bundle,
        session=session,
        provider=provider,
        input_names=[i.name for i in session.get_inputs()],
        dtype=np.float32 if m.inputs.dtype == "float32" else np.float64,
        sensors=sensors,
        window_rows=m.inputs.window_rows,
        period_ms=max(1, round(period_s * 1000)),
        fill_rows=round(gap_s / period_s),
        mapper=RowMapper(profile, sensors, [s.from_units for s in m.inputs.sensors]),
        detector=detector,
    )
