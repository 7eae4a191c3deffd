"""The evaluate step: score every calibrated pump's evaluation period, report per split, kind and make.

Pure computation over the features and the fitted detector (no I/O but
reading the ground truth in :func:`label_kinds`). With a ``by_device`` split
(:mod:`pumpops.pipeline._split`) the headline metrics are the held-out pumps'
and the fitted pumps' are beside them as ``insample_*``; ``evaluation.json``
holds both, pooled, per fault kind and per make (:func:`~pumpops.pipeline._metrics.breakdown`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pumpops.pipeline._config import FilesData, PipelineConfig
from pumpops.pipeline._data import read_ground_truth, read_ground_truth_makes
from pumpops.pipeline._features import DeviceFeatures
from pumpops.pipeline._metrics import ScoredDevice, breakdown, flatten, summarise
from pumpops.pipeline._split import DeviceSplit
from pumpops.pipeline.detectors import Calibration, Detector

EventKinds = dict[str, list[tuple[int, int, str]]]


def label_kinds(config: PipelineConfig) -> tuple[dict[str, list[tuple[int, int, str]]], dict[str, str]]:
    """Per device, the labelled events' ``(start_us, end_us, kind)``, and each device's make.

    From the ground truth where there is one; recording files label their own rows,
    and an experiment's kind is then its folder (``valve1/0`` → ``valve1``).
    """
    path = (
        None
        if isinstance(config.data, FilesData)
        else (config.evaluation.ground_truth or config.data.hygiene.ground_truth)
    )
    if path is None:
        return {}, {}
    kinds: dict[str, list[tuple[int, int, str]]] = {}
    for event in read_ground_truth(path):
        if event["category"] in config.evaluation.label_categories:
            kinds.setdefault(str(event["device_id"]), []).append(
                (int(event["start_ms"]) * 1000, int(event["end_ms"]) * 1000, str(event.get("kind", "")))
            )
    return kinds, read_ground_truth_makes(path)


def _row_kinds(dev: DeviceFeatures, events: list[tuple[int, int, str]], fallback: str) -> np.ndarray:
    """The kind of the labelled event each test row is in (``""`` outside labelled rows)."""
    labelled = np.asarray(dev.test_labels) > 0 if dev.test_labels is not None else np.zeros(0, bool)
    kinds = np.full(dev.test_ts_us.size, "", dtype=object)
    kinds[labelled] = fallback
    for start, end, kind in events:
        inside = labelled & (dev.test_ts_us >= start) & (dev.test_ts_us < end)
        kinds[inside] = kind or fallback
    return kinds


def finite(value: Any) -> Any:
    """``value`` with every non-finite float as None (canonical JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def flat_evaluation(evaluation: dict[str, Any]) -> dict[str, float]:
    """The held-out and in-sample breakdowns as dotted MLflow metric names (None left out)."""
    flat: dict[str, float] = {}
    for role in ("heldout", "insample"):
        doc = evaluation.get(role)
        if doc:
            clean = {
                "devices": doc.get("devices", 0.0),
                "all": {k: v for k, v in doc.get("all", {}).items() if v is not None},
                **{
                    g: {n: {k: v for k, v in m.items() if v is not None} for n, m in doc.get(g, {}).items()}
                    for g in ("kind", "make")
                },
            }
            flat.update(flatten(role, clean))
    return flat


def evaluate_devices(
    devices: Sequence[DeviceFeatures],
    calibrations: Mapping[str, Calibration],
    detector: Detector,
    split: DeviceSplit,
    *,
    kinds: EventKinds,
    makes: Mapping[str, str],
    group: str,
    enabled: bool,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Score each calibrated device's evaluation rows with its own threshold and smoothing.

    Returns:
        The flat metrics (headline = held-out pumps with a ``by_device`` split, else
        every pump; ``insample_*`` beside them) and the ``evaluation.json`` document
        (non-finite numbers as None).
    """
    held_set = set(split.holdout)
    scored: dict[str, list[ScoredDevice]] = {"heldout": [], "insample": []}
    unlabelled_rows = alarm_rows = scored_rows = 0
    for dev in devices:
        if dev.device_id not in calibrations or dev.test.shape[0] == 0:
            continue
        cal = calibrations[dev.device_id]
        alarms = detector.alarms_from_scores(detector.score(dev.test, cal), cal)
        scored_rows += int(alarms.size)
        alarm_rows += int(alarms.sum())
        if dev.test_labels is None:
            unlabelled_rows += int(alarms.size)
            continue
        folder_kind = dev.device_id.rsplit("/", 1)[0] if "/" in dev.device_id else "labelled"
        scored["heldout" if dev.device_id in held_set else "insample"].append(
            ScoredDevice(
                dev.device_id,
                makes.get(dev.device_id, group),
                dev.test_labels,
                _row_kinds(dev, kinds.get(dev.device_id, []), folder_kind),
                alarms,
                dev.test_ts_us,
            )
        )
    by_device = split.mode == "by_device"
    metrics: dict[str, float] = {}
    if enabled:
        headline = scored["heldout"] if by_device else scored["insample"]
        metrics.update(summarise([(d.labels, d.alarms, d.ts_us) for d in headline]))
        if by_device:
            insample = summarise([(d.labels, d.alarms, d.ts_us) for d in scored["insample"]])
            metrics.update({f"insample_{k}": v for k, v in insample.items()})
    metrics.update(
        {
            "split_by_device": 1.0 if by_device else 0.0,
            "devices_heldout": float(len(split.holdout)),
            "test_rows": float(scored_rows),
            "test_rows_unlabelled": float(unlabelled_rows),
            "alarm_rate": alarm_rows / scored_rows if scored_rows else 0.0,
        }
    )
    evaluation = {
        "split": split.to_dict(),
        "heldout": breakdown(scored["heldout"]) if by_device else None,
        "insample": breakdown(scored["insample"]) if enabled else None,
    }
    return metrics, finite(evaluation)
