"""The evaluate step's per-device split (issue 14): fit on some pumps, report on the others."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pumpops.errors import ConfigError
from pumpops.pipeline import PipelineConfig, parse_config, run_pipeline
from pumpops.pipeline._metrics import ScoredDevice, breakdown
from pumpops.pipeline._snapshot import Dataset, Recording
from pumpops.sim import Event, FaultKind, FleetSimulator, Scenario, build_fleet, write_ground_truth

START_MS = 1_748_736_000_000  # 2025-06-01T00:00:00Z
HOUR_MS = 3_600_000
KINDS = list(FaultKind)


def fleet(n: int, truth: Path) -> Dataset:
    """``n`` pumps of one make, 2 h each: the first hour trains, the second is scored.

    Pump ``i`` has a fault of kind ``KINDS[i % 5]`` from minute 70 to 100.
    """
    devices = build_fleet(n, seed=1, profiles=["acme-ansi"])
    events = [
        Event(
            d.device_id,
            KINDS[i % len(KINDS)],
            START_MS + HOUR_MS + 10 * 60_000,
            START_MS + HOUR_MS + 40 * 60_000,
            severity=1.0,
        )
        for i, d in enumerate(devices)
    ]
    scenario = Scenario(
        devices=devices,
        start_ms=START_MS,
        duration_s=7200,
        seed=5,
        fault_rate_per_day=0.0,
        drift_rate_per_day=0.0,
        ambient=None,
        events=tuple(events),
    )
    write_ground_truth(truth, scenario)
    sim = FleetSimulator(scenario)
    recordings = []
    sensors: tuple[str, ...] = ()
    for d in devices:
        trace = sim.device(d.device_id).trace()
        sensors = trace.sensors
        values = np.column_stack([trace.si(s) for s in sensors])
        ts = trace.ts_ms.astype(np.int64) * 1000
        cut = ts < (START_MS + HOUR_MS) * 1000
        recordings.append(Recording(d.device_id, "train", ts[cut], values[cut]))
        recordings.append(Recording(d.device_id, "test", ts[~cut], values[~cut]))
    return Dataset(group="acme-ansi", sensors=sensors, recordings=tuple(recordings), meta={"source": "sim"})


def config(truth: Path, **evaluation: Any) -> PipelineConfig:
    return parse_config(
        {
            "seed": 2,
            "data": {
                "source": "store",
                "group": "acme-ansi",
                "since": "2025-06-01T00:00:00Z",
                "until": "2025-06-01T01:00:00Z",
                "hygiene": {"ground_truth": str(truth)},
            },
            "features": {"window_samples": 10, "min_segment_samples": 30},
            "threshold": {"quantile": 0.995, "factor": 1.5},
            "smoothing": {"k": 3, "n": 5},
            "evaluation": {"ground_truth": str(truth), **evaluation},
            "output": {"log": False},
        }
    )


@pytest.fixture(scope="module")
def six(tmp_path_factory: pytest.TempPathFactory) -> tuple[Dataset, Path]:
    truth = tmp_path_factory.mktemp("six") / "truth.json"
    return fleet(6, truth), truth


def _perturbed(data: Dataset, devices: set[str]) -> Dataset:
    """The same data, with the training rows of ``devices`` changed (scaled, shifted)."""
    recs = tuple(
        Recording(r.device_id, r.split, r.ts_us, r.values * 1.3 + 0.5)
        if r.device_id in devices and r.split == "train"
        else r
        for r in data.recordings
    )
    return Dataset(group=data.group, sensors=data.sensors, recordings=recs, meta=data.meta)


def test_held_out_pumps_are_never_fitted_on_and_the_metrics_are_theirs(
    six: tuple[Dataset, Path], tmp_path: Path
) -> None:
    data, truth = six
    cfg = config(truth, split="by_device", holdout_devices=["p-0005", "p-0006"])
    result = run_pipeline(cfg, workspace=tmp_path / "a", dataset=data, log=False)

    assert result.split is not None
    assert result.split.mode == "by_device"
    lineage = json.loads((result.model_dir / "lineage.json").read_bytes())
    assert lineage["fit_devices"] == ["p-0001", "p-0002", "p-0003", "p-0004"]
    assert lineage["holdout_devices"] == ["p-0005", "p-0006"]
    assert result.devices == [f"p-000{i}" for i in range(1, 7)]  # every pump is calibrated on its own period

    evaluation = json.loads((result.model_dir / "evaluation.json").read_bytes())
    assert evaluation == result.evaluation
    held, fitted = evaluation["heldout"], evaluation["insample"]
    assert (held["devices"], fitted["devices"]) == (2.0, 4.0)
    # the headline metrics are the held-out pumps', the fitted pumps' are beside them
    assert result.metrics["f1"] == pytest.approx(held["all"]["f1"])
    assert result.metrics["insample_f1"] == pytest.approx(fitted["all"]["f1"])
    assert result.metrics["events"] == 2.0
    assert result.metrics["insample_events"] == 4.0
    # per fault kind from the simulator's ground truth: p-0005 valve_blockage, p-0006 cavitation
    assert set(held["kind"]) == {KINDS[4].value, KINDS[0].value}
    assert set(fitted["kind"]) == {k.value for k in KINDS[:4]}
    assert set(held["make"]) == {"acme-ansi"}
    assert held["kind"][KINDS[0].value]["events"] == 1.0

    # changing the held-out pumps' training rows does not change the model: it never saw them
    other = run_pipeline(
        cfg, workspace=tmp_path / "b", dataset=_perturbed(data, {"p-0005", "p-0006"}), log=False
    )
    assert other.onnx_sha256 == result.onnx_sha256
    # ... while changing a fitted pump's rows does (so the comparison above can fail)
    fitted_changed = run_pipeline(
        cfg, workspace=tmp_path / "c", dataset=_perturbed(data, {"p-0001"}), log=False
    )
    assert fitted_changed.onnx_sha256 != result.onnx_sha256


def test_auto_splits_fleet_data_with_enough_pumps_and_says_why_not_otherwise(
    six: tuple[Dataset, Path], tmp_path: Path
) -> None:
    data, truth = six
    auto = run_pipeline(config(truth), workspace=tmp_path / "a", dataset=data, log=False)
    assert auto.split is not None
    assert auto.split.mode == "by_device"
    assert len(auto.split.holdout) == 2  # round(0.25 x 6)
    assert not set(auto.split.holdout) & set(auto.split.fit)
    again = run_pipeline(config(truth), workspace=tmp_path / "b", dataset=data, log=False, use_cache=False)
    assert again.split == auto.split
    assert again.metrics == auto.metrics

    three = fleet(3, tmp_path / "truth3.json")
    small = run_pipeline(config(tmp_path / "truth3.json"), workspace=tmp_path / "c", dataset=three, log=False)
    assert small.split is not None
    assert small.split.mode == "none"
    assert "only 3 pumps" in small.split.reason
    assert "min_devices" in small.split.reason
    assert "insample_f1" not in small.metrics
    assert small.metrics["split_by_device"] == 0.0
    assert small.evaluation["heldout"] is None


def test_split_none_reports_on_the_fitted_pumps_as_before(six: tuple[Dataset, Path], tmp_path: Path) -> None:
    data, truth = six
    result = run_pipeline(config(truth, split="none"), workspace=tmp_path, dataset=data, log=False)
    assert result.split is not None
    assert result.split.mode == "none"
    assert "not held out" in result.split.reason
    assert result.metrics["events"] == 6.0
    assert result.metrics["devices_fit"] == 6.0
    assert "insample_f1" not in result.metrics


def test_bad_holdout_lists_are_refused_naming_what_to_fix(six: tuple[Dataset, Path], tmp_path: Path) -> None:
    data, truth = six
    with pytest.raises(ConfigError, match=r"holdout_devices: \['p-9999'\] are not pumps of this data"):
        run_pipeline(
            config(truth, holdout_devices=["p-0001", "p-9999"]), workspace=tmp_path, dataset=data, log=False
        )
    every = [f"p-000{i}" for i in range(1, 7)]
    with pytest.raises(ConfigError, match="none is left to fit on"):
        run_pipeline(config(truth, holdout_devices=every), workspace=tmp_path, dataset=data, log=False)
    with pytest.raises(ConfigError, match="split is 'none'"):
        config(truth, split="none", holdout_devices=["p-0001"])
    with pytest.raises(ConfigError, match=r"evaluation\.holdout_fraction"):
        config(truth, holdout_fraction=1.0)


def test_split_metrics_are_logged_to_mlflow(
    six: tuple[Dataset, Path], tmp_path: Path, tracking_uri: str
) -> None:
    from mlflow.tracking import MlflowClient

    data, truth = six
    cfg = config(truth, split="by_device", holdout_devices=["p-0005", "p-0006"])
    result = run_pipeline(cfg, workspace=tmp_path, dataset=data, tracking_uri=tracking_uri, log=True)
    assert result.run_id is not None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="mlflow")
        client = MlflowClient(tracking_uri)
        run = client.get_run(result.run_id).data
        artifacts = {a.path for a in client.list_artifacts(result.run_id, "model")}
    assert run.params["evaluation.split"] == "by_device"
    assert run.metrics["f1"] == pytest.approx(result.evaluation["heldout"]["all"]["f1"])
    assert run.metrics["heldout.devices"] == 2.0
    assert run.metrics["insample.f1"] == pytest.approx(result.metrics["insample_f1"])
    kind = KINDS[0].value
    assert run.metrics[f"heldout.kind.{kind}.mar"] == pytest.approx(
        result.evaluation["heldout"]["kind"][kind]["mar"]
    )
    assert run.metrics["heldout.make.acme-ansi.far"] == pytest.approx(
        result.evaluation["heldout"]["make"]["acme-ansi"]["far"]
    )
    assert "model/evaluation.json" in artifacts


def test_breakdown_per_make_and_kind_pools_the_right_devices() -> None:
    ts = np.arange(4) * 1_000_000
    a = ScoredDevice(
        "a", "m1", np.array([0, 1, 1, 0]), np.array(["", "x", "x", ""]), np.array([1, 1, 1, 0]), ts
    )
    b = ScoredDevice(
        "b", "m2", np.array([0, 0, 1, 1]), np.array(["", "", "y", "y"]), np.array([0, 0, 0, 0]), ts
    )
    out = breakdown([a, b])
    assert out["make"]["m1"]["far"] == 0.5
    assert out["make"]["m1"]["mar"] == 0.0
    assert out["make"]["m2"]["far"] == 0.0
    assert out["make"]["m2"]["mar"] == 1.0
    assert out["kind"]["x"]["events_missed"] == 0.0
    assert out["kind"]["y"]["events_missed"] == 1.0
    assert out["kind"]["x"]["mean_delay_s"] == 0.0
    # kind y's false alarms are every normal row's: a's first row alarms
    assert out["kind"]["y"]["fp"] == 1.0
    assert out["kind"]["y"]["tn"] == 3.0
    assert breakdown([])["all"] == {}


def test_files_of_the_same_name_under_two_paths_are_both_read(skab_small: Path) -> None:
    """``paths = [valve1, valve2]``: valve2/0.csv is not dropped as a repeat of valve1/0.csv (it was)."""
    from pumpops.pipeline._data import load_files_dataset

    cfg = parse_config(
        {
            "data": {
                "source": "files",
                "paths": [str(skab_small / "valve1"), str(skab_small / "valve2"), str(skab_small / "valve1")],
            }
        }
    )
    names = sorted({r.device_id for r in load_files_dataset(cfg).recordings})
    assert names == ["0", "1", "valve2/0"]  # the valve1 folder given twice is read once
