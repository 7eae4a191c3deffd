"""Fleet data: champion and challenger are compared only on pumps neither was fitted on (issue 14)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from _valhelpers import GROUP, START_MS, fast_config

from pumpops.errors import ConfigError
from pumpops.pipeline import parse_config, run_pipeline
from pumpops.pipeline._snapshot import Dataset, Recording
from pumpops.sim import FleetSimulator, Scenario, build_fleet
from pumpops.validation import validate_candidate
from pumpops.validation._unseen import check_pumps_unseen, fitted_devices, scored_devices


class _Registry:
    """The three registry calls validation makes, over model folders on disk."""

    def __init__(self, folders: dict[str, Path]) -> None:
        self.folders = folders
        self.stored: list[Any] = []

    def champion(self, group: str) -> Any | None:
        return None

    def download_model(self, info: Any, dest: Path) -> Path:
        shutil.copytree(self.folders[info.ref], dest)
        return dest

    def store_validation(
        self, info: Any, *, passed: bool, report_json: str, against: Any | None, actor: str
    ) -> Any:
        self.stored.append((info.ref, passed, json.loads(report_json)))
        return info


def _train_on(workspace: Path, n: int, prefix: str, holdout: list[str] | None = None) -> Path:
    """A small model of the make, fitted by the pipeline on pumps ``<prefix>-0001`` … (1 h each)."""
    devices = build_fleet(n, seed=3, profiles=[GROUP], id_prefix=prefix)
    scenario = Scenario(
        devices=devices,
        start_ms=START_MS,
        duration_s=3600,
        seed=9,
        fault_rate_per_day=0.0,
        drift_rate_per_day=0.0,
        ambient=None,
    )
    sim = FleetSimulator(scenario)
    recordings = []
    sensors: tuple[str, ...] = ()
    for d in devices:
        trace = sim.device(d.device_id).trace()
        sensors = trace.sensors
        values = np.column_stack([trace.si(s) for s in sensors])
        recordings.append(Recording(d.device_id, "train", trace.ts_ms.astype(np.int64) * 1000, values))
    config = parse_config(
        {
            "data": {
                "source": "store",
                "group": GROUP,
                "since": "2025-06-01T00:00:00Z",
                "until": "2025-06-02T00:00:00Z",
            },
            "features": {"window_samples": 10, "min_segment_samples": 30},
            "threshold": {"quantile": 0.999, "factor": 2.0},
            "smoothing": {"k": 5, "n": 10},
            "evaluation": {"holdout_devices": holdout or []} if holdout else {"split": "none"},
            "output": {"log": False, "model_dir": str(workspace / "model")},
        }
    )
    data = Dataset(group=GROUP, sensors=sensors, recordings=tuple(recordings), meta={"source": "sim"})
    return run_pipeline(config, workspace=workspace, dataset=data, log=False).model_dir


@pytest.fixture(scope="module")
def on_suite_pumps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fitted on val-0001 … val-0004: pumps with the ids the simulated validation suite scores."""
    return _train_on(tmp_path_factory.mktemp("seen"), 4, "val")


@pytest.fixture(scope="module")
def suite_held_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve pumps val-0001 … val-0012, split by device: the nine the suite scores were held out."""
    held = [f"val-{i:04d}" for i in range(1, 10)]
    return _train_on(tmp_path_factory.mktemp("held"), 12, "val", holdout=held)


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fitted on other pumps (p-0001 … p-0004)."""
    return _train_on(tmp_path_factory.mktemp("other"), 4, "p")


def test_a_candidate_fitted_on_a_scored_pump_is_refused_and_nothing_is_stored(
    on_suite_pumps: Path, elsewhere: Path
) -> None:
    assert fitted_devices(on_suite_pumps) == {"val-0001", "val-0002", "val-0003", "val-0004"}
    registry = _Registry({"cand": on_suite_pumps, "champ": elsewhere})
    with pytest.raises(
        ConfigError, match=r"the candidate was fitted on 4 pump\(s\) that validation scored"
    ) as exc:
        validate_candidate(
            registry,
            SimpleNamespace(ref="cand"),
            champion=SimpleNamespace(ref="champ"),
            actor="test",
            config=fast_config(),
        )
    assert "val-0001" in str(exc.value)
    assert "split = 'by_device'" in str(exc.value)
    assert registry.stored == []


def test_a_champion_fitted_on_a_scored_pump_is_refused_too(on_suite_pumps: Path, elsewhere: Path) -> None:
    registry = _Registry({"cand": elsewhere, "champ": on_suite_pumps})
    with pytest.raises(ConfigError, match="the champion was fitted on"):
        validate_candidate(
            registry,
            SimpleNamespace(ref="cand"),
            champion=SimpleNamespace(ref="champ"),
            actor="test",
            config=fast_config(),
        )
    assert registry.stored == []


def test_pumps_held_out_by_the_split_can_be_scored(suite_held_out: Path, elsewhere: Path) -> None:
    lineage = json.loads((suite_held_out / "lineage.json").read_bytes())
    assert lineage["fit_devices"] == ["val-0010", "val-0011", "val-0012"]
    registry = _Registry({"cand": suite_held_out, "champ": elsewhere})
    done = validate_candidate(
        registry,
        SimpleNamespace(ref="cand"),
        champion=SimpleNamespace(ref="champ"),
        actor="test",
        config=fast_config(),
    )
    scored = scored_devices(done.report.context)
    assert scored  # the suite's pumps, none of them fitted on by either model
    assert not scored & fitted_devices(suite_held_out)
    assert not scored & fitted_devices(elsewhere)
    assert [ref for ref, _, _ in registry.stored] == ["cand"]


def test_models_before_the_split_count_every_calibrated_pump_as_fitted(tmp_path: Path) -> None:
    (tmp_path / "lineage.json").write_text(json.dumps({"devices": ["p-0001", "p-0002"]}))
    assert fitted_devices(tmp_path) == {"p-0001", "p-0002"}
    with pytest.raises(ConfigError, match=r"p-0002"):
        check_pumps_unseen({"candidate": tmp_path, "champion": None}, ["p-0002", "val-0001"])
    check_pumps_unseen({"candidate": tmp_path}, ["val-0001"])  # no overlap: no error
    assert fitted_devices(tmp_path / "missing") == set()
