"""Running a pipeline: snapshot → features → fit → calibrate → evaluate → export → log.

Each step but the last is cached (:class:`~pumpops.pipeline._cache.StepCache`)
under a key made of the config sections it reads, the digests of what it
consumes and the code version; the snapshot is content-addressed. The same
config on the same data therefore gives the same bytes: the dataset digest,
the ONNX file, the calibrations and the metrics.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from pumpops.errors import ConfigError, InputError
from pumpops.pipeline._cache import StepCache, file_digest
from pumpops.pipeline._config import FilesData, PipelineConfig, StoreData, canonical_json
from pumpops.pipeline._data import (
    load_files_dataset,
    load_store_dataset,
    read_ground_truth,
    read_intervals_file,
)
from pumpops.pipeline._evaluate import evaluate_devices, flat_evaluation, label_kinds
from pumpops.pipeline._features import DeviceFeatures, Interval, build_features, settings_from
from pumpops.pipeline._interrupt import InterruptGuard
from pumpops.pipeline._snapshot import Dataset, read_bundle, write_bundle, write_snapshot
from pumpops.pipeline._split import DeviceSplit, choose_split
from pumpops.pipeline._tracking import (
    code_revision,
    log_run,
    onnx_flavor_files,
    package_set,
    package_set_hash,
    resolve_tracking_uri,
)
from pumpops.pipeline.detectors import Calibration, Detector, build_detector
from pumpops.schema import CANONICAL_SENSORS
from pumpops.store import TelemetryStore, open_store

_MODEL_FILES = (
    "model.onnx",
    "manifest.json",
    "calibrations.json",
    "metrics.json",
    "evaluation.json",
    "lineage.json",
    "pipeline.json",
    "environment.txt",
)
STEPS = ("snapshot", "features", "fit", "calibrate", "evaluate", "export")
_T = TypeVar("_T")


@dataclass
class RunResult:
    """What a pipeline run produced.

    Attributes:
        run_id: the MLflow run id, or None when logging was off.
        artifact_uri: where MLflow keeps the run's artifacts (None when not logged).
        dataset_digest: SHA-256 of the dataset snapshot.
        config_hash: SHA-256 of the config's canonical JSON.
        metrics: evaluation metrics (deterministic: same config and data, same numbers).
        timings_s: seconds per step (not deterministic, not part of ``metrics``).
        onnx_path: the exported model in the model folder.
        onnx_sha256: SHA-256 of the ONNX bytes.
        model_dir: the folder with ``model.onnx``, ``manifest.json``,
            ``calibrations.json``, ``metrics.json``, ``lineage.json``,
            ``pipeline.json``, ``environment.txt`` and ``detector/`` (the fitted detector).
        steps: ``(step, "computed" | "cached" | "written" | "reused")`` in order.
        devices: devices calibrated.
        skipped_devices: devices without enough normal data to calibrate.
        split: the pumps fitted on and the pumps reported on (``[evaluation] split``).
        evaluation: ``evaluation.json``: the split, and the held-out and in-sample
            metrics pooled, per fault kind and per make.
    """

    run_id: str | None
    artifact_uri: str | None
    dataset_digest: str
    config_hash: str
    metrics: dict[str, float]
    timings_s: dict[str, float]
    onnx_path: Path
    onnx_sha256: str
    model_dir: Path
    steps: list[tuple[str, str]] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    skipped_devices: list[str] = field(default_factory=list)
    split: DeviceSplit | None = None
    evaluation: dict[str, Any] = field(default_factory=dict)

    def recomputed(self) -> list[str]:
        """The steps that did work this time (a snapshot written counts)."""
        return [step for step, how in self.steps if how in ("computed", "written")]


def _timed_step(timings: dict[str, float], name: str, fn: Callable[[], _T]) -> _T:
    start = time.perf_counter()
    try:
        return fn()
    finally:
        timings[name] = round(time.perf_counter() - start, 6)


def _detector_args(config: PipelineConfig, sensors: tuple[str, ...]) -> dict[str, Any]:
    f = config.features
    args: dict[str, Any] = {
        "sensors": list(sensors),
        "seed": config.seed,
        "window": f.window_samples,
        "baseline_window": f.baseline_window_samples,
        "score_window": f.score_window_samples,
        "detrend_weight": f.detrend_weight,
        "threshold_quantile": config.threshold.quantile,
        "threshold_factor": config.threshold.factor,
        "trim_z": config.threshold.trim_z,
        "alarm_k": config.smoothing.k,
        "alarm_n": config.smoothing.n,
        "alarm_release": config.smoothing.release_factor,
        "alarm_hold": config.smoothing.hold_samples,
        **config.detector.hyper,
    }
    if f.detrend is not None:
        args["detrend"] = list(f.detrend)
    return args


def make_detector(config: PipelineConfig, sensors: tuple[str, ...]) -> Detector:
    """Build the unfitted detector the config describes (its registry checks the hyper-parameters).

    Raises:
        ConfigError: unknown kind or invalid hyper-parameters (named ``detector...``).
    """
    args = _detector_args(config, sensors)
    kind = config.detector.kind
    sensors_arg = args.pop("sensors")
    try:
        return build_detector(kind, sensors=sensors_arg, **args)
    except ConfigError as exc:
        raise ConfigError(f"detector (kind {kind!r}, hyper {config.detector.hyper}): {exc}") from exc


def check_detector(config: PipelineConfig) -> None:
    """Check ``[detector]`` against the registry before any data is read.

    The sensors are not known yet for a store source, so the check uses the
    configured ones or every canonical sensor (the hyper-parameters do not
    depend on which).

    Raises:
        ConfigError: unknown kind or invalid hyper-parameters.
    """
    sensors = (*(config.data.sensors or CANONICAL_SENSORS), *(config.features.detrend or ()))
    make_detector(config, tuple(dict.fromkeys(sensors)))


def _hygiene_intervals(config: PipelineConfig) -> tuple[dict[str, list[Interval]], dict[str, Any]]:
    hygiene = config.data.hygiene
    per_device: dict[str, list[Interval]] = {}
    everywhere: list[Interval] = []
    digests: dict[str, Any] = {}
    if hygiene.ground_truth is not None:
        digests["ground_truth"] = file_digest(hygiene.ground_truth)
        for event in read_ground_truth(hygiene.ground_truth):
            if event["category"] in hygiene.exclude_categories:
                per_device.setdefault(event["device_id"], []).append(
                    (int(event["start_ms"]) * 1000, int(event["end_ms"]) * 1000)
                )
    items: list[dict[str, Any]] = [i.model_dump(mode="json") for i in hygiene.alarm_intervals]
    if hygiene.alarm_intervals_file is not None:
        digests["alarm_intervals_file"] = file_digest(hygiene.alarm_intervals_file)
        items += read_intervals_file(hygiene.alarm_intervals_file)
    from pumpops.pipeline._config import Interval as IntervalModel  # noqa: PLC0415 - name clash

    for raw in items:
        try:
            interval = IntervalModel.model_validate(raw)
        except ValueError as exc:
            raise ConfigError(f"data.hygiene.alarm_intervals: invalid interval {raw!r}: {exc}") from exc
        span = (round(interval.start.timestamp() * 1e6), round(interval.end.timestamp() * 1e6))
        if interval.device_id is None:
            everywhere.append(span)
        else:
            per_device.setdefault(interval.device_id, []).append(span)
    if everywhere:
        per_device["*"] = everywhere
    return per_device, digests


def _label_intervals(config: PipelineConfig) -> tuple[dict[str, list[Interval]] | None, str | None]:
    if isinstance(config.data, FilesData):
        return None, None  # the files carry their own labels
    path = config.evaluation.ground_truth or config.data.hygiene.ground_truth
    if path is None:
        return None, None
    labels: dict[str, list[Interval]] = {}
    for event in read_ground_truth(path):
        if event["category"] in config.evaluation.label_categories:
            labels.setdefault(event["device_id"], []).append(
                (int(event["start_ms"]) * 1000, int(event["end_ms"]) * 1000)
            )
    return labels, file_digest(path)


def _write_json(path: Path, value: Any) -> None:
    path.write_bytes(canonical_json(value) + b"\n")


def _read_features(folder: Path) -> tuple[list[DeviceFeatures], dict[str, Any], str]:
    meta, arrays, digest = read_bundle(folder)
    devices = []
    for i, dev in enumerate(meta["devices"]):
        devices.append(
            DeviceFeatures(
                device_id=dev["device_id"],
                train=arrays[f"{i}.train"],
                test_ts_us=arrays[f"{i}.test_ts_us"],
                test=arrays[f"{i}.test"],
                test_labels=arrays.get(f"{i}.test_labels"),
            )
        )
    return devices, meta, digest


def run_pipeline(  # noqa: PLR0915 - the steps read best in order, in one place
    config: PipelineConfig,
    *,
    workspace: Path,
    store: TelemetryStore | None = None,
    database_url: str = "",
    use_cache: bool = True,
    tracking_uri: str | None = None,
    log: bool | None = None,
    dataset: Dataset | None = None,
    progress: Callable[[str], None] | None = None,
) -> RunResult:
    """Run every step of a pipeline and log the run.

    Args:
        config: the validated config.
        workspace: where snapshots, the cache, models and the default tracking DB live.
        store: the telemetry store for a ``store`` data source (default: opened
            from ``data.database_url`` or ``database_url``).
        database_url: the store URL when neither ``store`` nor ``data.database_url`` is given.
        use_cache: False recomputes every step (and replaces its cache entry).
        tracking_uri: where to log (default: the workspace's setting, see
            :func:`~pumpops.pipeline._tracking.resolve_tracking_uri`); register
            the run with a registry on the same URI.
        log: overrides ``output.log``.
        dataset: data already in memory (e.g. straight from the simulator, for
            benchmarks); ``[data]`` is then not read, but still recorded.
        progress: called with the name of each step as it starts (``load``,
            ``snapshot``, ``features``, ``fit``, ``calibrate``, ``evaluate``,
            ``export``, ``log``); it may raise to stop the run (an interrupt).

    Returns:
        The run's result.

    Raises:
        ConfigError: the config does not fit the data (unknown group, no normal data, ...).
        InputError: the data is unusable.
        ServiceError: the store or the tracking server failed.
    """
    workspace = Path(workspace)
    check_detector(config)
    cache = StepCache(workspace / "cache", enabled=use_cache)
    timings: dict[str, float] = {}
    steps: list[tuple[str, str]] = []

    def _timed(timings: dict[str, float], name: str, fn: Callable[[], _T]) -> _T:
        if progress is not None:
            progress(name)
        return _timed_step(timings, name, fn)

    # 1. snapshot -------------------------------------------------------------------------
    def load() -> Dataset:
        if dataset is not None:
            return dataset
        if isinstance(config.data, StoreData):
            url = config.data.database_url or database_url
            if store is not None:
                return load_store_dataset(config, store)
            if not url:
                raise ConfigError("data.database_url: no store given and no database URL configured")
            with open_store(url) as opened:
                return load_store_dataset(config, opened)
        return load_files_dataset(config)

    data = _timed(timings, "load", load)
    digest, snapshot_dir, written = _timed(
        timings, "snapshot", lambda: write_snapshot(workspace / "snapshots", data)
    )
    steps.append(("snapshot", "written" if written else "reused"))
    sensors = data.sensors
    detector_template = make_detector(config, sensors)  # fail fast on bad hyper-parameters

    # 2. features -------------------------------------------------------------------------
    hygiene, hygiene_digests = _hygiene_intervals(config)
    labels, labels_digest = _label_intervals(config)
    h = config.data.hygiene
    fs = settings_from(
        config.features.resample_period_s,
        config.features.max_gap_fill_s,
        config.features.min_segment_samples,
        h.margin_s,
        h.exclude_labelled,
    )
    features_inputs = {
        "snapshot": digest,
        "features": {
            k: getattr(config.features, k)
            for k in ("resample_period_s", "max_gap_fill_s", "min_segment_samples")
        },
        "hygiene": h.model_dump(mode="json", exclude={"ground_truth", "alarm_intervals_file"}),
        "hygiene_files": hygiene_digests,
        "labels": {"categories": list(config.evaluation.label_categories), "file": labels_digest},
    }

    def compute_features(folder: Path) -> None:
        per_device = {d: spans + hygiene.get("*", []) for d, spans in hygiene.items() if d != "*"}
        for rec in data.recordings:
            per_device.setdefault(rec.device_id, list(hygiene.get("*", [])))
        devices, totals = build_features(data, fs, excluded=per_device, labels=labels)
        arrays: list[tuple[str, np.ndarray]] = []
        meta_devices = []
        for i, dev in enumerate(devices):
            meta_devices.append({"device_id": dev.device_id, "train_rows": int(dev.train.shape[0])})
            arrays += [
                (f"{i}.train", dev.train),
                (f"{i}.test_ts_us", dev.test_ts_us),
                (f"{i}.test", dev.test),
            ]
            if dev.test_labels is not None:
                arrays.append((f"{i}.test_labels", dev.test_labels))
        write_bundle(folder, {"devices": meta_devices, "sensors": list(sensors), "totals": totals}, arrays)

    features_dir, _ = _timed(
        timings, "features", lambda: cache.run("features", features_inputs, compute_features)
    )
    devices, features_meta, features_digest = _read_features(features_dir)
    min_rows = max(2, detector_template.input_length)
    usable = [d for d in devices if d.train.shape[0] >= min_rows]
    skipped = [d.device_id for d in devices if d.train.shape[0] < min_rows]
    if not usable:
        raise InputError(
            f"no device has {min_rows} or more rows of normal data after hygiene "
            f"(devices: {[d.device_id for d in devices]}); widen data.since/until or relax data.hygiene"
        )

    # which pumps are fitted on and which are reported on (issue 14: honest selection)
    event_kinds, makes = label_kinds(config)
    split = choose_split(
        config.evaluation,
        devices=[d.device_id for d in usable],
        scorable=[d.device_id for d in devices if d.test.shape[0] > 0],
        makes=makes,
        fleet=not isinstance(config.data, FilesData),
        seed=config.seed,
    )
    fit_set = set(split.fit)
    fitted = [d for d in usable if d.device_id in fit_set]

    # 3. fit ------------------------------------------------------------------------------
    fit_inputs = {
        "features": features_digest,
        "detector": config.detector.kind,
        "args": _detector_args(config, sensors),
        "fit_devices": [d.device_id for d in fitted],
    }

    def compute_fit(folder: Path) -> None:
        detector = make_detector(config, sensors)
        with InterruptGuard():  # a library that swallows Ctrl-C does not get a half-fitted model through
            detector.fit([d.train for d in fitted])
        detector.save(folder / "detector")

    fit_dir, fit_key = _timed(timings, "fit", lambda: cache.run("fit", fit_inputs, compute_fit))
    detector = Detector.load(fit_dir / "detector")

    # 4. calibrate ------------------------------------------------------------------------
    def compute_calibrate(folder: Path) -> None:
        cals = {d.device_id: detector.calibrate(d.train).to_dict() for d in usable}
        _write_json(folder / "calibrations.json", {"group": data.group, "devices": cals})

    cal_dir, cal_key = _timed(
        timings,
        "calibrate",
        lambda: cache.run("calibrate", {"fit": fit_key, "features": features_digest}, compute_calibrate),
    )
    cal_doc = json.loads((cal_dir / "calibrations.json").read_bytes())
    calibrations = {k: Calibration.from_dict(v) for k, v in cal_doc["devices"].items()}

    # 5. evaluate -------------------------------------------------------------------------
    def compute_evaluate(folder: Path) -> None:
        metrics, evaluation = evaluate_devices(
            devices,
            calibrations,
            detector,
            split,
            kinds=event_kinds,
            makes=makes,
            group=data.group,
            enabled=config.evaluation.enabled,
        )
        metrics.update(
            {
                "devices_fit": float(len(fitted)),
                "train_rows": float(sum(d.train.shape[0] for d in fitted)),
                "train_rows_excluded": float(features_meta["totals"]["excluded_rows"]),
                "devices_calibrated": float(len(calibrations)),
            }
        )
        _write_json(
            folder / "metrics.json", {k: (v if np.isfinite(v) else None) for k, v in sorted(metrics.items())}
        )
        _write_json(folder / "evaluation.json", evaluation)

    eval_dir, _ = _timed(
        timings,
        "evaluate",
        lambda: cache.run(
            "evaluate",
            {
                "fit": fit_key,
                "calibrate": cal_key,
                "features": features_digest,
                "enabled": config.evaluation.enabled,
                "split": split.to_dict(),
                "kinds": {k: [list(e) for e in v] for k, v in sorted(event_kinds.items())},
                "makes": makes,
            },
            compute_evaluate,
        ),
    )
    metrics = {
        k: float("nan") if v is None else float(v)
        for k, v in json.loads((eval_dir / "metrics.json").read_bytes()).items()
    }
    evaluation = json.loads((eval_dir / "evaluation.json").read_bytes())

    # 6. export ---------------------------------------------------------------------------
    def compute_export(folder: Path) -> None:
        onnx_bytes = detector.to_onnx()
        (folder / "model.onnx").write_bytes(onnx_bytes)
        manifest = detector.manifest()
        manifest["model_sha256"] = hashlib.sha256(onnx_bytes).hexdigest()
        manifest["group"] = data.group
        # The agent resamples live readings onto the same grid the model was trained on.
        manifest["sampling"] = {
            "period_s": config.features.resample_period_s,
            "max_gap_fill_s": config.features.max_gap_fill_s,
        }
        _write_json(folder / "manifest.json", manifest)

    export_dir, _ = _timed(timings, "export", lambda: cache.run("export", {"fit": fit_key}, compute_export))
    steps += cache.events

    onnx_bytes = (export_dir / "model.onnx").read_bytes()
    onnx_sha = hashlib.sha256(onnx_bytes).hexdigest()
    model_dir = config.output.model_dir or workspace / "models" / f"{data.group}-{onnx_sha[:12]}"
    model_dir.mkdir(parents=True, exist_ok=True)
    for src in (
        export_dir / "model.onnx",
        export_dir / "manifest.json",
        cal_dir / "calibrations.json",
        eval_dir / "metrics.json",
        eval_dir / "evaluation.json",
    ):
        shutil.copyfile(src, model_dir / src.name)
    # The fitted detector itself, so a new pump of the group can be calibrated later.
    shutil.copytree(fit_dir / "detector", model_dir / "detector", dirs_exist_ok=True)
    revision = code_revision()
    lineage = {
        "dataset_digest": digest,
        "config_hash": config.config_hash,
        "code_commit": revision.commit,
        "code_dirty": revision.dirty,
        "package_set_sha256": package_set_hash(),
        "seed": config.seed,
        "model_sha256": onnx_sha,
        "detector_kind": config.detector.kind,
        "group": data.group,
        "sensors": list(sensors),
        "devices": sorted(calibrations),
        # the pumps whose rows fitted the model, and those it was reported on without fitting (issue 14)
        "fit_devices": [d.device_id for d in fitted],
        "holdout_devices": list(split.holdout),
        "split": split.mode,
    }
    _write_json(model_dir / "lineage.json", lineage)
    (model_dir / "pipeline.json").write_bytes(canonical_json(config.model_dump(mode="json")) + b"\n")
    (model_dir / "environment.txt").write_text("\n".join(package_set()) + "\n", encoding="utf-8")

    # 7. log ------------------------------------------------------------------------------
    run_id = artifact_uri = None
    if config.output.log if log is None else log:
        tags = {
            "pumpops.dataset_digest": digest,
            "pumpops.config_hash": config.config_hash,
            "pumpops.package_set_sha256": package_set_hash(),
            "pumpops.seed": str(config.seed),
            "pumpops.group": data.group,
            "pumpops.model_sha256": onnx_sha,
            "pumpops.snapshot": str(snapshot_dir),
            **revision.as_tags(),
        }
        params = {
            "seed": config.seed,
            "data": config.data.model_dump(mode="json"),
            "features": config.features.model_dump(mode="json"),
            "detector": config.detector.model_dump(mode="json"),
            "threshold": config.threshold.model_dump(mode="json"),
            "smoothing": config.smoothing.model_dump(mode="json"),
            "evaluation": config.evaluation.model_dump(mode="json"),
            "dataset_digest": digest,
            "config_hash": config.config_hash,
        }

        def log_to_mlflow() -> tuple[str, str]:
            with tempfile.TemporaryDirectory(prefix="pumpops-flavor-") as tmp:
                # MLflow's onnx flavor (MLmodel) beside the model folder's files, which stay as they are
                flavor = onnx_flavor_files(model_dir / "model.onnx", Path(tmp))
                return log_run(
                    tracking_uri=tracking_uri or resolve_tracking_uri(workspace),
                    workspace=workspace,
                    experiment=config.output.experiment,
                    run_name=config.output.run_name or f"{data.group}-{config.detector.kind}",
                    params=params,
                    metrics={
                        **metrics,
                        **flat_evaluation(evaluation),
                        **{f"time_{k}_s": v for k, v in timings.items()},
                    },
                    tags=tags,
                    artifacts=[("model", model_dir / name) for name in _MODEL_FILES]
                    + [("model", path) for path in flavor]
                    + [("model/detector", p) for p in sorted((model_dir / "detector").iterdir())],
                )

        run_id, artifact_uri = _timed(timings, "log", log_to_mlflow)
    return RunResult(
        run_id=run_id,
        artifact_uri=artifact_uri,
        dataset_digest=digest,
        config_hash=config.config_hash,
        metrics=metrics,
        timings_s=timings,
        onnx_path=model_dir / "model.onnx",
        onnx_sha256=onnx_sha,
        model_dir=model_dir,
        steps=steps,
        devices=sorted(calibrations),
        skipped_devices=skipped,
        split=split,
        evaluation=evaluation,
    )
