"""The pipeline end to end: caching, reproducibility, MLflow lineage, store and SKAB sources."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest

from pumpops.pipeline import RunResult, parse_config, run_pipeline
from pumpops.pipeline._config import PipelineConfig
from pumpops.pipeline._run import STEPS

CACHED_STEPS = [s for s in STEPS if s != "snapshot"]


def skab_config(folder: Path, **detector: object) -> PipelineConfig:
    return parse_config(
        {
            "seed": 3,
            "data": {"source": "files", "paths": [str(folder)], "train_rows": 400},
            "features": {"window_samples": 10, "min_segment_samples": 30},
            "detector": {"kind": "pca_t2q", "hyper": detector},
            "threshold": {"quantile": 0.99, "factor": 1.2},
            "smoothing": {"k": 3, "n": 5},
            "output": {"experiment": "test-skab"},
        }
    )


def same_metrics(a: dict[str, float], b: dict[str, float]) -> bool:
    """Equal, with NaN (e.g. the delay when every event was missed) equal to itself."""
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def run(config: PipelineConfig, workspace: Path, tracking_uri: str, **kw: object) -> RunResult:
    return run_pipeline(config, workspace=workspace, tracking_uri=tracking_uri, **kw)  # type: ignore[arg-type]


def test_run_second_time_recomputes_nothing(skab_small: Path, tmp_path: Path, tracking_uri: str) -> None:
    first = run(skab_config(skab_small), tmp_path, tracking_uri, log=False)
    assert first.recomputed() == list(STEPS)
    second = run(skab_config(skab_small), tmp_path, tracking_uri, log=False)
    assert second.recomputed() == []
    assert second.steps == [("snapshot", "reused")] + [(s, "cached") for s in CACHED_STEPS]
    assert second.onnx_sha256 == first.onnx_sha256
    assert same_metrics(second.metrics, first.metrics)


def test_run_changed_detector_param_recomputes_fit_onward_only(
    skab_small: Path, tmp_path: Path, tracking_uri: str
) -> None:
    run(skab_config(skab_small), tmp_path, tracking_uri, log=False)
    changed = run(skab_config(skab_small, variance=0.8), tmp_path, tracking_uri, log=False)
    assert changed.steps == [
        ("snapshot", "reused"),
        ("features", "cached"),
        ("fit", "computed"),
        ("calibrate", "computed"),
        ("evaluate", "computed"),
        ("export", "computed"),
    ]


def test_run_no_cache_recomputes_every_step(skab_small: Path, tmp_path: Path, tracking_uri: str) -> None:
    run(skab_config(skab_small), tmp_path, tracking_uri, log=False)
    again = run(skab_config(skab_small), tmp_path, tracking_uri, log=False, use_cache=False)
    assert again.steps == [("snapshot", "reused")] + [(s, "computed") for s in CACHED_STEPS]


def test_run_same_config_same_data_is_byte_identical(
    skab_small: Path, tmp_path: Path, tracking_uri: str
) -> None:
    a = run(skab_config(skab_small), tmp_path / "a", tracking_uri, log=False)
    b = run(skab_config(skab_small), tmp_path / "b", tracking_uri, log=False, use_cache=False)
    assert a.onnx_path.read_bytes() == b.onnx_path.read_bytes()
    assert a.dataset_digest == b.dataset_digest
    assert same_metrics(a.metrics, b.metrics)
    for name in ("calibrations.json", "manifest.json", "metrics.json", "lineage.json"):
        assert (a.model_dir / name).read_bytes() == (b.model_dir / name).read_bytes(), name
    assert (tmp_path / "a" / "snapshots" / a.dataset_digest / "data.bin").is_file()


def test_run_evaluates_skab_holdout(skab_small: Path, tmp_path: Path, tracking_uri: str) -> None:
    result = run(skab_config(skab_small), tmp_path, tracking_uri, log=False)
    m = result.metrics
    assert m["events"] == 3  # one labelled fault per valve file
    assert 0.0 <= m["far"] <= 1.0
    assert 0.0 <= m["mar"] <= 1.0
    assert 0.0 <= m["f1"] <= 1.0
    assert m["test_rows"] > 0
    assert len(result.devices) == 4  # the label-free file calibrates too
    assert result.onnx_path.read_bytes()[:2] == b"\x08\x08"  # ONNX protobuf: ir_version 8


def test_run_is_logged_with_lineage(skab_small: Path, tmp_path: Path, tracking_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    result = run(skab_config(skab_small), tmp_path, tracking_uri)
    assert result.run_id is not None
    with warnings.catch_warnings():
        # MLflow's SQLAlchemy store uses the deprecated ``noload`` strategy (SADeprecationWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="mlflow")
        logged = MlflowClient(tracking_uri).get_run(result.run_id).data
        artifacts = {a.path for a in MlflowClient(tracking_uri).list_artifacts(result.run_id, "model")}
    assert logged.tags["pumpops.dataset_digest"] == result.dataset_digest
    assert logged.tags["pumpops.config_hash"] == result.config_hash
    assert len(logged.tags["pumpops.package_set_sha256"]) == 64
    assert logged.tags["pumpops.code_commit"]
    assert logged.tags["pumpops.code_dirty"] in ("true", "false", "unknown")
    assert logged.params["seed"] == "3"
    assert logged.params["detector.kind"] == "pca_t2q"
    assert logged.params["dataset_digest"] == result.dataset_digest
    assert logged.metrics["f1"] == pytest.approx(result.metrics["f1"])
    artifacts = {a.path for a in MlflowClient(tracking_uri).list_artifacts(result.run_id, "model")}
    assert {
        "model/model.onnx",
        "model/manifest.json",
        "model/calibrations.json",
        "model/lineage.json",
    } <= artifacts


def test_run_unknown_hyper_parameter_is_config_error(
    skab_small: Path, tmp_path: Path, tracking_uri: str
) -> None:
    from pumpops.errors import ConfigError

    with pytest.raises(ConfigError, match="bogus"):
        run(skab_config(skab_small, bogus=1), tmp_path, tracking_uri, log=False)


def store_config(url: str, truth: Path, **hygiene: object) -> PipelineConfig:
    return parse_config(
        {
            "data": {
                "source": "store",
                "group": "acme-ansi",
                "since": "2025-06-01T00:00:00Z",
                "until": "2025-06-01T03:00:00Z",
                "database_url": url,
                "hygiene": {"ground_truth": str(truth), "margin_s": 120, **hygiene},
            },
            "features": {"window_samples": 30},
            "smoothing": {"k": 5, "n": 10},
            "evaluation": {"since": "2025-06-01T03:00:00Z", "until": "2025-06-01T04:00:00Z"},
            "output": {"experiment": "test-fleet"},
        }
    )


def test_run_store_group_excludes_labelled_faults(
    fleet_store: tuple[str, Path], tmp_path: Path, tracking_uri: str
) -> None:
    url, truth = fleet_store
    clean = run(store_config(url, truth), tmp_path, tracking_uri, log=False)
    assert clean.devices == ["p-0001", "p-0002", "p-0003"]
    # each device's 20 min fault plus 2 x 120 s of margin is left out of training
    assert clean.metrics["train_rows_excluded"] == 3 * (20 * 60 + 2 * 120)
    assert clean.metrics["events"] == 3
    dirty = run(store_config(url, truth, exclude_categories=[]), tmp_path, tracking_uri, log=False)
    assert dirty.metrics["train_rows_excluded"] == 0
    assert dirty.dataset_digest == clean.dataset_digest  # same data; hygiene is a features-step input
    assert dirty.steps[:2] == [("snapshot", "reused"), ("features", "computed")]


def test_run_store_alarm_intervals_excluded(
    fleet_store: tuple[str, Path], tmp_path: Path, tracking_uri: str
) -> None:
    url, truth = fleet_store
    alarms = tmp_path / "alarms.json"
    alarms.write_text(
        json.dumps([{"device_id": "p-0001", "start": "2025-06-01T02:00:00Z", "end": "2025-06-01T02:10:00Z"}])
    )
    base = run(store_config(url, truth, margin_s=0), tmp_path, tracking_uri, log=False)
    more = run(
        store_config(url, truth, margin_s=0, alarm_intervals_file=str(alarms)),
        tmp_path,
        tracking_uri,
        log=False,
    )
    assert more.metrics["train_rows_excluded"] - base.metrics["train_rows_excluded"] == 600


def test_run_missing_ground_truth_is_config_error(
    fleet_store: tuple[str, Path], tmp_path: Path, tracking_uri: str
) -> None:
    from pumpops.errors import ConfigError

    url, _ = fleet_store
    with pytest.raises(ConfigError, match=r"missing\.json"):
        run(store_config(url, tmp_path / "missing.json"), tmp_path, tracking_uri, log=False)
