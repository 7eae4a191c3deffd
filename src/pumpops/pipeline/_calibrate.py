"""Calibrating a new pump against its group's trained model, from the pump's own normal period.

A group model is trained once; a pump that joins the group later needs only
its own reference statistics and threshold (a :class:`Calibration`), computed
from a normal period of its data with the same grid and hygiene as training.
:func:`calibrate_rows` is the pure decision; :func:`calibrate_new_device` reads
the store and updates the model folder's ``calibrations.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np

from pumpops.errors import ConfigError, InputError, NotFoundError
from pumpops.pipeline._config import PipelineConfig, canonical_json, parse_config
from pumpops.pipeline._data import read_ground_truth
from pumpops.pipeline._features import Interval, normal_rows, settings_from
from pumpops.pipeline._snapshot import Recording
from pumpops.pipeline.detectors import Calibration, Detector
from pumpops.store import TelemetryStore


def _model_config(model_dir: Path) -> PipelineConfig:
    try:
        data = json.loads((model_dir / "pipeline.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise NotFoundError(f"{model_dir} is not a pumpops model folder (no pipeline.json): {exc}") from exc
    return parse_config(data, source=str(model_dir / "pipeline.json"))


def calibrate_rows(
    detector: Detector,
    config: PipelineConfig,
    recording: Recording,
    excluded: list[Interval],
) -> Calibration:
    """Calibrate one device from a recording of its normal period, with the training grid and hygiene.

    Raises:
        InputError: fewer normal rows than the model's input window remain.
    """
    h = config.data.hygiene
    f = config.features
    fs = settings_from(
        f.resample_period_s, f.max_gap_fill_s, f.min_segment_samples, h.margin_s, h.exclude_labelled
    )
    rows, _ = normal_rows(recording, fs, excluded)
    need = max(2, detector.input_length)
    if rows.shape[0] < need:
        raise InputError(
            f"device {recording.device_id}: {rows.shape[0]} normal rows after hygiene, the model needs "
            f"at least {need}; give it a longer normal period"
        )
    return detector.calibrate(rows)


def calibrate_new_device(
    model_dir: Path,
    store: TelemetryStore,
    device_id: str,
    *,
    since: datetime,
    until: datetime,
    ground_truth: Path | None = None,
) -> Calibration:
    """Calibrate ``device_id`` from its readings in ``[since, until)`` and add it to ``calibrations.json``.

    Args:
        model_dir: a model folder written by ``pumpops train``.
        store: the telemetry store.
        device_id: the pump; it must be registered in the model's group.
        since: start of its normal period (timezone-aware).
        until: end of its normal period.
        ground_truth: fault records to leave out (default: the training config's, if any).

    Raises:
        NotFoundError: not a model folder, or the device is not registered.
        ConfigError: the device is in another group, or the times are naive.
        InputError: too few normal rows.
    """
    config = _model_config(model_dir)
    detector = Detector.load(model_dir / "detector")
    calibrations = json.loads((model_dir / "calibrations.json").read_bytes())
    device = store.device(device_id)
    if device is None:
        raise NotFoundError(f"device {device_id!r} is not registered")
    if device.group != calibrations["group"]:
        raise ConfigError(
            f"device {device_id} is in group {device.group!r}, the model is for {calibrations['group']!r}"
        )
    if since.tzinfo is None or until.tzinfo is None or until <= since:
        raise ConfigError("since and until must be timezone-aware, with until after since")
    frame = store.query(
        device_id,
        sensors=detector.sensors,
        since_us=round(since.timestamp() * 1e6),
        until_us=round(until.timestamp() * 1e6),
    )
    recording = Recording(
        device_id, "train", np.asarray(frame.ts_us, np.int64), np.asarray(frame.values, np.float64)
    )
    excluded: list[Interval] = []
    truth = ground_truth or config.data.hygiene.ground_truth
    if truth is not None and truth.is_file():
        excluded = [
            (int(e["start_ms"]) * 1000, int(e["end_ms"]) * 1000)
            for e in read_ground_truth(truth)
            if e["device_id"] == device_id and e["category"] in config.data.hygiene.exclude_categories
        ]
    calibration = calibrate_rows(detector, config, recording, excluded)
    calibrations["devices"][device_id] = calibration.to_dict()
    fd, tmp = tempfile.mkstemp(prefix=".calibrations-", dir=model_dir)
    with os.fdopen(fd, "wb") as fh:
        fh.write(canonical_json(calibrations) + b"\n")
    os.replace(tmp, model_dir / "calibrations.json")
    return calibration
