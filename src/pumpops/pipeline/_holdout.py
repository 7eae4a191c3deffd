"""A trained model folder, read back, and held-out rows calibrated the way training calibrates.

Validation and packaging both score a model on data it was not trained on:
they read the folder ``pumpops train`` wrote (:func:`load_model_folder`),
calibrate each held-out device on its own normal period and build its test
rows on the training grid (:func:`calibrated_holdout`), or read SKAB-format
files as such data (:func:`load_labelled_files`). The pipeline owns its
folder format, grid and hygiene, so those parts call this instead of its
internals.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pumpops.errors import NotFoundError
from pumpops.pipeline._calibrate import calibrate_rows
from pumpops.pipeline._config import FilesData, PipelineConfig, parse_config
from pumpops.pipeline._data import load_files_dataset
from pumpops.pipeline._features import holdout_rows, settings_from
from pumpops.pipeline._snapshot import Recording
from pumpops.pipeline.detectors import Calibration, Detector

__all__ = [
    "CalibratedHoldout",
    "ModelFolder",
    "calibrated_holdout",
    "load_labelled_files",
    "load_model_folder",
]


@dataclass(frozen=True)
class ModelFolder:
    """A model folder written by ``pumpops train``, read once.

    Attributes:
        folder: where it is.
        detector: the training-time detector (``detector/``).
        config: the pipeline configuration it was trained with (``pipeline.json``).
        group: the device group of its manifest (empty if none).
        onnx_bytes: ``model.onnx``.
    """

    folder: Path
    detector: Detector
    config: PipelineConfig
    group: str
    onnx_bytes: bytes


def load_model_folder(folder: Path | str) -> ModelFolder:
    """Read a model folder written by ``pumpops train``.

    Raises:
        NotFoundError: the folder is not a pumpops model folder.
    """
    folder = Path(folder)
    try:
        onnx_bytes = (folder / "model.onnx").read_bytes()
        config_doc = json.loads((folder / "pipeline.json").read_bytes())
        manifest = json.loads((folder / "manifest.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise NotFoundError(f"{folder} is not a pumpops model folder: {exc}") from exc
    config = parse_config(config_doc, source=str(folder / "pipeline.json"))
    detector = Detector.load(folder / "detector")
    return ModelFolder(folder, detector, config, str(manifest.get("group", "")), onnx_bytes)


@dataclass(frozen=True)
class CalibratedHoldout:
    """One held-out device: its calibration and its test rows on the training grid.

    Attributes:
        calibration: from the device's own normal period.
        ts_us: ``(m,)`` grid times of the test rows.
        rows: ``(m, S)`` test rows.
        labels: ``(m,)`` int8 labels, or None when nothing labels them.
    """

    calibration: Calibration
    ts_us: np.ndarray
    rows: np.ndarray
    labels: np.ndarray | None


def calibrated_holdout(model: ModelFolder, calibration: Recording, test: Recording) -> CalibratedHoldout:
    """Calibrate a held-out device on ``calibration`` and build its ``test`` rows, as training would.

    Raises:
        InputError: the normal period is shorter than the model's input window.
    """
    f = model.config.features
    fs = settings_from(f.resample_period_s, f.max_gap_fill_s, f.min_segment_samples, 0.0, True)
    cal = calibrate_rows(model.detector, model.config, calibration, [])
    ts, x, y = holdout_rows(test, fs, None)
    return CalibratedHoldout(cal, ts, x, y)


def load_labelled_files(folder: Path, sensors: Sequence[str], *, train_rows: int) -> list[Recording]:
    """The labelled SKAB-format files under ``folder``, each split after ``train_rows`` rows.

    Raises:
        NotFoundError: no SKAB files in ``folder``.
        ConfigError: the files lack one of ``sensors``.
    """
    config = parse_config(
        {
            "data": {
                "source": "files",
                "paths": [str(folder)],
                "train_rows": train_rows,
                "sensors": list(sensors),
                "include_unlabelled": False,
            }
        }
    )
    assert isinstance(config.data, FilesData)
    return list(load_files_dataset(config).recordings)
