"""The thin measurement layer: held-out data, ONNX and training-time scores, alarms, size, latency, memory.

Reads a model folder written by ``pumpops train`` (``model.onnx``,
``pipeline.json``, ``detector/``), builds held-out data (SKAB files, or a
deterministic simulated suite for the model's make), calibrates every
held-out device on its own first normal period (as a new pump is calibrated),
scores it with onnxruntime on one thread and with the loaded
:class:`~pumpops.pipeline.detectors.Detector`, and hands the numbers to the
pure gates in ``_gates.py``. :func:`validate_model` is the whole round.

Peak memory is the growth of the process's resident-set high-water mark
while a fresh session is created and scores a batch: the mark is reset
through ``/proc/self/clear_refs`` and read from ``VmHWM`` (Linux). Not
tracemalloc: onnxruntime allocates its arena and tensors in C++, outside
Python's allocator, so tracemalloc would not see the model's memory at all.
Not a plain ``getrusage`` delta either: ``ru_maxrss`` is the peak since the
process started and cannot be reset, so after any earlier, bigger work the
delta is zero. Where ``clear_refs`` is not available the ``ru_maxrss`` delta
is the fallback and the report says so.

May import: schema, fleet, sim, pipeline, errors, numpy, onnxruntime. Never
MLflow, the store or the registry (the pipeline's modules used here load
neither MLflow nor SQLAlchemy; a test holds that line).
"""

from __future__ import annotations

import gc
import resource
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from pumpops.errors import ConfigError
from pumpops.fleet import Device, load_profiles
from pumpops.pipeline import (
    ModelFolder,
    Recording,
    calibrated_holdout,
    event_delays,
    load_labelled_files,
    load_model_folder,
    open_session,
    summarise,
)
from pumpops.pipeline.detectors import INPUT_CENTER, INPUT_SCALE, INPUT_WINDOW, Calibration, Detector
from pumpops.sim import (
    AmbientModel,
    DriftKind,
    Event,
    FaultKind,
    FleetSimulator,
    Onset,
    Scenario,
    build_fleet,
)
from pumpops.validation._config import MeasurementSection, ValidationConfig
from pumpops.validation._gates import (
    BehaviourMeasurement,
    DetectionMetrics,
    ParityMeasurement,
    ResourceMeasurement,
    ValidationReport,
    check_behaviour,
    check_budgets,
    check_champion,
    check_parity,
    decide,
)
from pumpops.validation._memory import reset_peak_rss, rss_kib
from pumpops.validation._post_drift import PostDriftData, check_post_drift

__all__ = [
    "HeldOut",
    "HoldoutDevice",
    "simulated_holdout",
    "skab_holdout",
    "validate_model",
]

#: wear progresses: these faults ramp up (over 70 % of their interval), the others step in
_GRADUAL = frozenset({FaultKind.BEARING_WEAR, FaultKind.IMPELLER_WEAR})
SIM_START_MS = 1_748_736_000_000  # 2025-06-01T00:00:00Z: fixed, so the suite is the same every time
_MIB = 1024.0 * 1024.0


@dataclass(frozen=True)
class HoldoutDevice:
    """One held-out device: a normal period to calibrate on, then a labelled test period.

    Attributes:
        device_id: the device or recording.
        role: ``fault``, ``normal``, ``drift`` (simulated suite) or ``recording`` (files).
        kind: the fault or drift kind for the simulated suite, else empty.
        calibration: its first normal period (split ``train``).
        test: the period that is scored (split ``test``), labels 1 inside faults.
    """

    device_id: str
    role: str
    kind: str
    calibration: Recording
    test: Recording


@dataclass(frozen=True)
class HeldOut:
    """Held-out data for one validation, and where it came from (for the report)."""

    devices: tuple[HoldoutDevice, ...]
    source: dict[str, Any]


# ------------------------------------------------------------------------------- held-out data


def _profile_for_group(group: str) -> str | None:
    profiles = load_profiles()
    if group in profiles:
        return group
    base = group.rsplit("-", 1)[0] if group.rsplit("-", 1)[-1].isdigit() else group
    return base if base in profiles else None


def simulated_holdout(group: str, sensors: Sequence[str], *, seed: int, m: MeasurementSection) -> HeldOut:
    """The behaviour suite: one device per fault kind, one clean, one per benign drift kind.

    Every device runs ``calibration_s`` of normal operation, then ``test_s``
    in which its event (if any) starts ``event_start_s`` in and lasts to the
    end. Faults are at ``fault_severity``; with ``gradual_wear`` bearing and
    impeller wear ramp up, the other faults step in. The set-point change
    moves to ``setpoint_factor`` times the pump's own speed; the
    recalibration biases ``discharge_pressure`` (or the first sensor) by the
    simulator's full recalibration step; the ambient device has the default
    daily and seasonal cycle. Same arguments, same numbers.

    Args:
        group: the model's device group (a make's profile id, optionally ``-<n>``).
        sensors: the model's sensors, in its column order.
        seed: the seed of the suite.
        m: the ``[measurement]`` settings.

    Raises:
        ConfigError: the group's make cannot be simulated, or lacks a model sensor.
    """
    profile = _profile_for_group(group)
    if profile is None or profile == "skab-testbed":
        raise ConfigError(
            f"group {group!r} is not a simulated make; validate it on recorded data (--data SKAB_DIR)"
        )
    kinds: list[tuple[str, str]] = [("fault", k.value) for k in FaultKind]
    kinds += [("normal", ""), ("drift", DriftKind.SETPOINT_CHANGE.value)]
    kinds += [("drift", DriftKind.SENSOR_RECALIBRATION.value)]
    devices = build_fleet(len(kinds) + 1, seed=seed, profiles=[profile], id_prefix="val")
    main, ambient_dev = devices[:-1], devices[-1]
    duration_s = m.calibration_s + m.test_s
    start = SIM_START_MS + round((m.calibration_s + m.event_start_s) * 1000)
    end = SIM_START_MS + round(duration_s * 1000)

    def scenario(devs: Sequence[Device], events: Sequence[Event], ambient: AmbientModel | None) -> Scenario:
        return Scenario(
            devices=tuple(devs),
            start_ms=SIM_START_MS,
            duration_s=duration_s,
            seed=seed,
            fault_rate_per_day=0.0,
            drift_rate_per_day=0.0,
            events=tuple(events),
            ambient=ambient,
        )

    recal_sensor = "discharge_pressure" if "discharge_pressure" in sensors else sensors[0]
    probe = FleetSimulator(scenario(main, (), None))
    events = []
    for device, (role, kind) in zip(main, kinds, strict=True):
        if role == "fault":
            fault = FaultKind(kind)
            onset = Onset.GRADUAL if m.gradual_wear and fault in _GRADUAL else Onset.SUDDEN
            events.append(Event(device.device_id, fault, start, end, onset, m.fault_severity))
        elif kind == DriftKind.SETPOINT_CHANGE.value:
            ratio = round(probe.device(device.device_id).base_ratio * m.setpoint_factor, 4)
            events.append(Event(device.device_id, DriftKind.SETPOINT_CHANGE, start, end, speed_ratio=ratio))
        elif kind == DriftKind.SENSOR_RECALIBRATION.value:
            offset = probe.device(device.device_id).recalibration_scale(recal_sensor)
            events.append(
                Event(
                    device.device_id,
                    DriftKind.SENSOR_RECALIBRATION,
                    start,
                    end,
                    sensor=recal_sensor,
                    offset=float(offset),
                )
            )
    plan = [
        (
            FleetSimulator(scenario(main, events, None)),
            main,
            kinds,
        ),
        (
            FleetSimulator(scenario((ambient_dev,), (), AmbientModel())),
            (ambient_dev,),
            [("drift", DriftKind.AMBIENT_TEMPERATURE.value)],
        ),
    ]
    cut_us = (SIM_START_MS + round(m.calibration_s * 1000)) * 1000
    out = []
    for simulator, devs, roles in plan:
        for device, (role, kind) in zip(devs, roles, strict=True):
            trace = simulator.device(device.device_id).trace()
            missing = [s for s in sensors if s not in trace.sensors]
            if missing:
                raise ConfigError(f"make {profile} has no sensor(s) {missing} that the model needs")
            values = np.column_stack([trace.si(s) for s in sensors])
            ts_us = trace.ts_ms.astype(np.int64) * 1000
            labels = np.zeros(ts_us.size, dtype=np.int8)
            if role == "fault":
                labels[(ts_us >= start * 1000) & (ts_us < end * 1000)] = 1
            cal, test = ts_us < cut_us, ts_us >= cut_us
            out.append(
                HoldoutDevice(
                    device.device_id,
                    role,
                    kind,
                    Recording(device.device_id, "train", ts_us[cal], values[cal], labels[cal]),
                    Recording(device.device_id, "test", ts_us[test], values[test], labels[test]),
                )
            )
    source = {
        "kind": "simulated",
        "seed": seed,
        "profile": profile,
        "calibration_s": m.calibration_s,
        "test_s": m.test_s,
        "event_start_s": m.event_start_s,
        "gradual_wear": m.gradual_wear,
        "fault_severity": m.fault_severity,
        "setpoint_factor": m.setpoint_factor,
        "recalibrated_sensor": recal_sensor,
        "devices": {d.device_id: f"{d.role}:{d.kind}" if d.kind else d.role for d in out},
    }
    return HeldOut(tuple(out), source)


def skab_holdout(folder: Path, sensors: Sequence[str], *, train_rows: int = 400) -> HeldOut:
    """SKAB-format files as held-out data: each file's first ``train_rows`` calibrate, the rest is scored.

    Raises:
        NotFoundError: no SKAB files in ``folder``.
        ConfigError: the files lack a model sensor.
    """
    by_id: dict[str, dict[str, Recording]] = {}
    for rec in load_labelled_files(folder, sensors, train_rows=train_rows):
        by_id.setdefault(rec.device_id, {})[rec.split] = rec
    devices = tuple(
        HoldoutDevice(name, "recording", "", parts["train"], parts["test"])
        for name, parts in sorted(by_id.items())
        if "train" in parts and "test" in parts
    )
    return HeldOut(
        devices, {"kind": "skab", "folder": str(folder), "train_rows": train_rows, "recordings": len(devices)}
    )


# ------------------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class _Scored:
    device: HoldoutDevice
    ts_us: np.ndarray
    labels: np.ndarray
    onnx: np.ndarray
    reference: np.ndarray
    alarms: np.ndarray


def _onnx_scores(
    session: ort.InferenceSession, detector: Detector, x: np.ndarray, cal: Calibration, batch: int
) -> np.ndarray:
    windows = detector.windows(x)
    parts = [
        session.run(
            None, {INPUT_WINDOW: windows[i : i + batch], INPUT_CENTER: cal.center, INPUT_SCALE: cal.scale}
        )[0]
        for i in range(0, windows.shape[0], batch)
    ]
    return np.concatenate(parts).astype(np.float64) if parts else np.empty(0)


def _score(model: ModelFolder, session: ort.InferenceSession, held: HeldOut, batch: int) -> list[_Scored]:
    out = []
    for dev in held.devices:
        rows = calibrated_holdout(model, dev.calibration, dev.test)
        cal, ts, x, y = rows.calibration, rows.ts_us, rows.rows, rows.labels
        onnx_scores = _onnx_scores(session, model.detector, x, cal, batch)
        reference = model.detector.score(x, cal)
        alarms = model.detector.alarms_from_scores(onnx_scores, cal)
        labels = np.zeros(ts.size, dtype=np.int8) if y is None else y
        out.append(_Scored(dev, ts, labels, onnx_scores, reference, alarms))
    return out


def _parity(scored: list[_Scored]) -> ParityMeasurement:
    rows = sum(int(s.onnx.size) for s in scored)
    if rows == 0:
        return ParityMeasurement(float("nan"), 0)
    diffs = [float(np.max(np.abs(s.onnx - s.reference))) for s in scored if s.onnx.size]
    return ParityMeasurement(max(diffs), rows)


def _detection(scored: list[_Scored]) -> DetectionMetrics:
    m = summarise([(s.labels, s.alarms, s.ts_us) for s in scored])
    return DetectionMetrics(
        f1=m["f1"],
        far=m["far"],
        mean_delay_s=m["mean_delay_s"],
        events=int(m["events"]),
        events_missed=int(m["events_missed"]),
    )


def _behaviour(scored: list[_Scored]) -> BehaviourMeasurement:
    delays: dict[str, float | None] = {}
    drift: dict[str, float] = {}
    normal: list[np.ndarray] = []
    for s in scored:
        if s.device.role == "fault":
            found = event_delays(s.labels, s.alarms, s.ts_us)
            delays[s.device.kind] = found[0] if found else None
        elif s.device.role == "drift":
            drift[s.device.kind] = float(s.alarms.mean()) if s.alarms.size else float("nan")
        elif s.device.role == "normal":
            normal.append(s.alarms)
    rows = np.concatenate(normal) if normal else np.empty(0, dtype=bool)
    far = float(rows.mean()) if rows.size else float("nan")
    return BehaviourMeasurement(delays, far, drift)


# ---------------------------------------------------------------------------------- resources


def _resources(model: ModelFolder, window_source: np.ndarray, m: MeasurementSection) -> ResourceMeasurement:
    detector = model.detector
    cal = detector.calibrate(window_source[: max(2, detector.input_length)])
    windows = detector.windows(window_source)
    batch = np.ascontiguousarray(np.resize(windows, (m.memory_batch_windows, *windows.shape[1:])))
    one = np.ascontiguousarray(windows[-1:])
    feeds = {INPUT_WINDOW: one, INPUT_CENTER: cal.center, INPUT_SCALE: cal.scale}

    gc.collect()
    before = rss_kib("VmRSS")
    if before is not None and reset_peak_rss():
        method = "VmHWM after resetting it through /proc/self/clear_refs, minus VmRSS before"
        session = open_session(model.onnx_bytes)
        session.run(None, {**feeds, INPUT_WINDOW: batch})
        peak = rss_kib("VmHWM")
        peak_mb = ((peak or before) - before) / 1024.0
    else:
        method = "getrusage ru_maxrss delta (a lower bound: the peak cannot be reset)"
        start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        session = open_session(model.onnx_bytes)
        session.run(None, {**feeds, INPUT_WINDOW: batch})
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) / 1024.0

    for _ in range(10):  # warm-up: first runs allocate
        session.run(None, feeds)
    times = []
    for _ in range(m.latency_runs):
        t0 = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return ResourceMeasurement(
        model_bytes=len(model.onnx_bytes),
        latency_ms=statistics.median(times) * 1000.0,
        peak_memory_mb=max(0.0, peak_mb),
        memory_method=method,
        latency_runs=m.latency_runs,
    )


# ----------------------------------------------------------------------------------- the round


def validate_model(
    candidate_dir: Path | str,
    *,
    champion_dir: Path | str | None = None,
    config: ValidationConfig | None = None,
    data: Path | str | int | None = None,
    subject: str | None = None,
    post_drift: PostDriftData | None = None,
) -> ValidationReport:
    """Measure a candidate model folder (and the champion's) and decide every gate.

    Args:
        candidate_dir: a model folder written by ``pumpops train``.
        champion_dir: the current champion's model folder (None: first model of the group).
        config: tolerances, budgets and measurement settings (default: every default).
        data: a folder of SKAB-format files, or a seed for the simulated suite
            (None: ``measurement.simulate_seed``).
        subject: how the report names the candidate (default: its folder).
        post_drift: the group's data around a drift (a drift-triggered retrain): adds the
            ``post_drift`` gate (``_post_drift.py``), judged on it and on the simulated suite.

    Returns:
        The report; ``report.passed`` is the verdict.

    Raises:
        NotFoundError: a folder is not a model folder, or holds no SKAB files.
        ConfigError: the data cannot serve this model (another make, missing sensors).
        InputError: a held-out device has too short a normal period to calibrate on.
    """
    cfg = config or ValidationConfig()
    m = cfg.measurement
    candidate = load_model_folder(Path(candidate_dir))
    champion = None if champion_dir is None else load_model_folder(Path(champion_dir))
    sensors = candidate.detector.sensors
    if champion is not None and champion.detector.sensors != sensors:
        raise ConfigError(
            f"champion sensors {list(champion.detector.sensors)} differ from the candidate's {list(sensors)}"
        )
    simulatable = _profile_for_group(candidate.group) not in (None, "skab-testbed")
    if isinstance(data, (str, Path)):
        held = skab_holdout(Path(data), sensors)
        suite = (
            simulated_holdout(candidate.group, sensors, seed=m.simulate_seed, m=m) if simulatable else None
        )
    else:
        seed = m.simulate_seed if data is None else int(data)
        held = simulated_holdout(candidate.group, sensors, seed=seed, m=m)
        suite = held
    session = open_session(candidate.onnx_bytes)
    scored = _score(candidate, session, held, m.score_batch_windows)
    suite_scored = (
        scored
        if suite is held
        else ([] if suite is None else _score(candidate, session, suite, m.score_batch_windows))
    )
    champion_metrics = None
    champ_scored: list[_Scored] | None = None
    if champion is not None:
        champ_scored = _score(champion, open_session(champion.onnx_bytes), held, m.score_batch_windows)
        champion_metrics = _detection(champ_scored)
    behaviour = (
        _behaviour(suite_scored)
        if suite is not None
        else BehaviourMeasurement(
            {}, float("nan"), {}, skipped=f"group {candidate.group!r} cannot be simulated"
        )
    )
    source = next((s.device.test.values for s in scored if s.device.test.values.shape[0]), None)
    if source is None:
        raise ConfigError("the held-out data has no test rows to time the model on")
    resources = _resources(candidate, source[: max(candidate.detector.input_length * 2, 512)], m)
    results = [
        check_parity(_parity(scored + (suite_scored if suite is not held else [])), cfg.parity_tolerance()),
        check_champion(_detection(scored), champion_metrics, cfg.champion_tolerances()),
        check_behaviour(behaviour, cfg.behaviour_budgets()),
        check_budgets(resources, cfg.resource_budgets()),
    ]
    if post_drift is not None:
        suite_champ: list[_Scored] | None = None
        if champion is not None and suite is not None:
            suite_champ = (
                champ_scored
                if suite is held
                else _score(champion, open_session(champion.onnx_bytes), suite, m.score_batch_windows)
            )
        from pumpops.validation._post_drift_measure import measure_post_drift  # noqa: PLC0415 - it uses this module

        measured = measure_post_drift(
            candidate,
            champion,
            post_drift,
            suite_scored,
            suite_champ,
            cfg.behaviour.max_fault_delay_s,
            m.score_batch_windows,
        )
        results.append(check_post_drift(measured))
    context = {
        "candidate": str(candidate.folder),
        "champion": None if champion is None else str(champion.folder),
        "group": candidate.group,
        "data": held.source,
        "behaviour_data": None if suite is None else suite.source,
        "config": cfg.model_dump(mode="json"),
        "post_drift": None if post_drift is None else dict(post_drift.source),
    }
    return decide(results, subject=subject or str(candidate.folder), context=context)
