"""Per-group training as tasks on a real local Dask cluster (2 worker processes) against the sequential path.

The same configs are trained both ways from one SQLite store, each way in its
own workspace and MLflow database: the models must be the same bytes, a group
that cannot be trained must be reported on its own without losing the others,
and MLflow must hold exactly one run per trained group.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from pumpops.errors import ConfigError
from pumpops.pipeline import FanoutReport, PipelineConfig, check_scheduler, parse_config, train_groups
from pumpops.pipeline._fanout import drop_orphan_runs
from pumpops.pipeline._run import run_pipeline
from pumpops.schema import ReadingBatch
from pumpops.sim import FleetSimulator, Scenario, build_fleet
from pumpops.store import open_store

GROUPS = ("acme-ansi-1", "acme-ansi-2", "acme-ansi-3")
EXPERIMENT = "fanout-test"
START_MS = 1_748_736_000_000  # 2025-06-01T00:00:00Z
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def group_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Three groups of two pumps, one hour at 1 Hz each, no faults."""
    folder = tmp_path_factory.mktemp("groups")
    url = f"sqlite:///{folder / 'store.db'}"
    fleet = build_fleet(6, seed=3, profiles=["acme-ansi"], groups_per_profile=3)
    assert sorted({d.group for d in fleet}) == list(GROUPS)
    scenario = Scenario(
        devices=fleet,
        start_ms=START_MS,
        duration_s=3600.0,
        seed=9,
        fault_rate_per_day=0.0,
        drift_rate_per_day=0.0,
        ambient=None,
    )
    simulator = FleetSimulator(scenario)
    with open_store(url) as store:
        store.upgrade()
        store.register_devices(fleet)
        for device in fleet:
            trace = simulator.device(device.device_id).trace()
            values = np.column_stack([trace.si(s) for s in trace.sensors])
            ts_us = trace.ts_ms.astype(np.int64) * 1000
            digest = hashlib.sha256(device.device_id.encode()).hexdigest()
            store.write_batches(
                [ReadingBatch(device.device_id, "m-0", digest, ts_us, trace.sensors, values, 0)]
            )
    return url


def _config(group: str) -> PipelineConfig:
    return parse_config(
        {
            "seed": 0,
            "data": {
                "source": "store",
                "group": group,
                "since": "2025-06-01T00:00:00Z",
                "until": "2025-06-02T00:00:00Z",
            },
            "features": {"window_samples": 20},
            "detector": {"kind": "pca_t2q"},
            "evaluation": {"enabled": False},
            "output": {"experiment": EXPERIMENT, "log": True},
        },
        source=f"test {group}",
    )


@pytest.fixture(scope="module")
def configs() -> dict[str, PipelineConfig]:
    named = {group: _config(group) for group in GROUPS}
    named["ghost"] = _config("no-such-group")  # no registered devices: fails on its own
    return named


def _train(url: str, configs: dict[str, PipelineConfig], folder: Path, scheduler: str) -> FanoutReport:
    return train_groups(
        configs,
        workspace=folder,
        database_url=url,
        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
        scheduler=scheduler,
        workers=2,
    )


@pytest.fixture(scope="module")
def both(
    group_store: str, configs: dict[str, PipelineConfig], tmp_path_factory: pytest.TempPathFactory
) -> tuple[FanoutReport, FanoutReport, Path]:
    sequential = _train(group_store, configs, tmp_path_factory.mktemp("seq"), "sequential")
    dask_ws = tmp_path_factory.mktemp("dask")
    on_dask = _train(group_store, configs, dask_ws, "local")
    return sequential, on_dask, dask_ws


def test_fanout_on_two_workers_gives_the_sequential_models(
    both: tuple[FanoutReport, FanoutReport, Path],
) -> None:
    sequential, on_dask, _ = both
    assert on_dask.workers == 2
    assert sequential.workers == 1
    for group in GROUPS:
        one, other = sequential.result(group), on_dask.result(group)
        assert other.onnx_sha256 == one.onnx_sha256
        assert other.onnx_path.read_bytes() == one.onnx_path.read_bytes()
        assert other.dataset_digest == one.dataset_digest
        assert other.metrics == one.metrics
        assert other.devices == one.devices
        assert len(other.devices) == 2
    assert {o.worker for o in sequential.outcomes} == {"parent"}
    ran_on = {o.worker for o in on_dask.outcomes if o.ok}
    assert ran_on
    assert all(w.startswith("tcp://") for w in ran_on), ran_on
    assert all(o.cpu_s > 0 for o in on_dask.outcomes if o.ok)


def test_fanout_failing_group_is_reported_alone(both: tuple[FanoutReport, FanoutReport, Path]) -> None:
    for report in both[:2]:
        assert [o.name for o in report.outcomes] == [*GROUPS, "ghost"]  # the order given
        assert [o.name for o in report.failed] == ["ghost"]
        ghost = report.failed[0]
        assert ghost.result is None
        assert ghost.error_type == "ConfigError"
        assert ghost.error is not None
        assert "no-such-group" in ghost.error
        with pytest.raises(KeyError, match="no-such-group"):
            report.result("ghost")
        assert all(report.result(g).run_id for g in GROUPS)


def test_fanout_logs_one_mlflow_run_per_group(both: tuple[FanoutReport, FanoutReport, Path]) -> None:
    _, on_dask, folder = both
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    by_group: dict[str, list[str]] = {}
    for run in runs:
        by_group.setdefault(run.data.tags["pumpops.group"], []).append(run.info.run_id)
    assert by_group == {g: [on_dask.result(g).run_id] for g in GROUPS}
    assert on_dask.orphan_runs == []
    # the artifacts are where a run trained alone keeps them: the workspace's mlartifacts
    model = client.download_artifacts(on_dask.result(GROUPS[0]).run_id or "", "model/model.onnx")
    assert Path(model).read_bytes() == on_dask.result(GROUPS[0]).onnx_path.read_bytes()


def test_fanout_drops_a_lost_workers_duplicate_run(
    group_store: str, configs: dict[str, PipelineConfig], tmp_path: Path
) -> None:
    """A worker that logged and died leaves a run; the rerun's result is the one kept."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    since_ms = int(time.time() * 1000) - 1
    only = {GROUPS[0]: configs[GROUPS[0]]}
    report = train_groups(
        only, workspace=tmp_path, database_url=group_store, tracking_uri=uri, scheduler="sequential"
    )
    # the leftover of the lost attempt: the same group, config and data, logged again
    leftover = run_pipeline(only[GROUPS[0]], workspace=tmp_path, database_url=group_store, tracking_uri=uri)
    kept = report.result(GROUPS[0]).run_id
    assert leftover.run_id != kept
    dropped = drop_orphan_runs(report.outcomes, only, uri, since_ms)
    assert dropped == [leftover.run_id]
    client = MlflowClient(tracking_uri=uri)
    assert client.get_run(leftover.run_id or "").info.lifecycle_stage == "deleted"
    assert client.get_run(kept or "").info.lifecycle_stage == "active"
    assert drop_orphan_runs(report.outcomes, only, uri, since_ms) == []  # nothing left to drop


@pytest.mark.parametrize("bad", ["dask", "http://host:8786", "", "tcp://"])
def test_check_scheduler_bad_value_names_the_choices(bad: str) -> None:
    with pytest.raises(ConfigError, match="'local', 'sequential' or a scheduler address"):
        check_scheduler(bad)


def test_train_groups_bad_worker_count_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="workers -1"):
        train_groups({}, workspace=tmp_path, scheduler="sequential", workers=-1)
