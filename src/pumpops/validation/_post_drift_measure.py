"""Measuring the post-drift gate: the candidate and the champion on the group's data around a drift.

Scores each device's slices with onnxruntime (``_measure.py``'s scoring), the
alarms by the detector's own rule, and pools them into a
:class:`~pumpops.validation._post_drift.PostDriftMeasurement` that
:func:`~pumpops.validation._post_drift.check_post_drift` judges.
May import: as ``_measure.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnxruntime as ort

from pumpops.errors import ConfigError, InputError
from pumpops.pipeline import ModelFolder, Recording, calibrated_holdout, event_delays, open_session
from pumpops.validation._measure import _onnx_scores, _Scored
from pumpops.validation._post_drift import PostDriftData, PostDriftDevice, PostDriftMeasurement

__all__ = ["measure_post_drift"]


def _columns(rec: Recording | None, index: Sequence[int]) -> Recording | None:
    if rec is None:
        return None
    return Recording(rec.device_id, rec.split, rec.ts_us, rec.values[:, list(index)], rec.anomaly)


def _alarm_fraction(
    model: ModelFolder,
    session: ort.InferenceSession,
    calibration: Recording | None,
    test: Recording | None,
    batch: int,
) -> tuple[int, int] | str:
    """(alarmed rows, rows) of ``test`` scored after calibrating on ``calibration``, or why not."""
    if calibration is None or test is None or test.ts_us.size == 0:
        return "no rows"
    try:
        rows = calibrated_holdout(model, calibration, test)
    except InputError as exc:
        return f"too little data: {exc}"
    if rows.ts_us.size == 0:
        return "no rows on the model's grid"
    scores = _onnx_scores(session, model.detector, rows.rows, rows.calibration, batch)
    alarms = np.asarray(model.detector.alarms_from_scores(scores, rows.calibration), dtype=bool)
    return int(alarms.sum()), int(alarms.size)


def _recall(scored: list[_Scored], max_delay_s: float) -> tuple[float, dict[str, bool]]:
    caught: dict[str, bool] = {}
    for s in scored:
        if s.device.role == "fault":
            found = event_delays(s.labels, s.alarms, s.ts_us)
            caught[s.device.kind] = bool(found) and found[0] is not None and found[0] <= max_delay_s
    return (sum(caught.values()) / len(caught) if caught else float("nan")), caught


def measure_post_drift(  # noqa: PLR0917 - the round's parts, passed on
    candidate: ModelFolder,
    champion: ModelFolder | None,
    data: PostDriftData,
    suite_candidate: list[_Scored],
    suite_champion: list[_Scored] | None,
    max_fault_delay_s: float,
    batch: int,
) -> PostDriftMeasurement:
    """The post-drift gate's numbers (``_post_drift.py`` says what each one is)."""
    sensors = candidate.detector.sensors
    missing = [s for s in sensors if s not in data.sensors]
    if missing:
        raise ConfigError(
            f"the post-drift data lacks the model's sensor(s) {missing} (has {list(data.sensors)})"
        )
    index = [data.sensors.index(s) for s in sensors]
    cand_session = open_session(candidate.onnx_bytes)
    champ_session = None if champion is None else open_session(champion.onnx_bytes)
    counts = {"candidate": [0, 0], "stale": [0, 0], "pre": [0, 0]}
    per_device: dict[str, dict[str, float | None]] = {}
    skipped: dict[str, str] = {}
    for dev in data.devices:
        d = PostDriftDevice(
            dev.device_id,
            *(
                _columns(r, index)
                for r in (dev.pre_calibration, dev.pre_test, dev.post_train, dev.post_holdout)
            ),
        )
        row: dict[str, float | None] = {}
        plan: list[
            tuple[str, ModelFolder | None, ort.InferenceSession | None, Recording | None, Recording | None]
        ]
        plan = [("candidate", candidate, cand_session, d.post_train, d.post_holdout)]
        if champion is not None:
            plan += [
                ("stale", champion, champ_session, d.pre_calibration, d.post_holdout),
                ("pre", champion, champ_session, d.pre_calibration, d.pre_test),
            ]
        for name, model, session, cal, test in plan:
            assert model is not None
            assert session is not None
            got = _alarm_fraction(model, session, cal, test, batch)
            if isinstance(got, str):
                skipped[f"{dev.device_id}:{name}"] = got
                row[f"{name}_far"] = None
                continue
            counts[name][0] += got[0]
            counts[name][1] += got[1]
            row[f"{name}_far"] = got[0] / got[1]
        per_device[dev.device_id] = row

    def frac(name: str) -> float:
        alarmed, rows = counts[name]
        return alarmed / rows if rows else float("nan")

    cand_recall, cand_caught = _recall(suite_candidate, max_fault_delay_s)
    champ_recall, champ_caught = (
        (float("nan"), {}) if suite_champion is None else _recall(suite_champion, max_fault_delay_s)
    )
    faults = {k: [v, champ_caught.get(k)] for k, v in cand_caught.items()}
    return PostDriftMeasurement(
        candidate_far=frac("candidate"),
        pre_drift_far=frac("pre"),
        stale_far=frac("stale"),
        candidate_recall=cand_recall,
        champion_recall=champ_recall,
        holdout_rows=counts["candidate"][1],
        pre_rows=counts["pre"][1],
        per_device=per_device,
        faults=faults,
        skipped=skipped,
        far_tolerance=data.far_tolerance,
        notes=dict(data.source),
    )
