"""Fixtures for the validation tests: small models trained by the real pipeline on simulated data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _valhelpers import train

from pumpops.pipeline import parse_config, run_pipeline


@pytest.fixture(scope="session")
def good_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tmp_path_factory.mktemp("good"), faulty=False)


@pytest.fixture(scope="session")
def bad_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Trained on data full of faults (no hygiene), without benign drift and without detrending."""
    return train(tmp_path_factory.mktemp("bad"), faulty=True, careless=True)


@pytest.fixture(scope="session")
def faulty_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The good recipe, but trained on data full of faults (no hygiene)."""
    return train(tmp_path_factory.mktemp("faulty"), faulty=True)


SKAB_FILES = ("valve1/0.csv", "valve1/1.csv", "valve2/0.csv")


@pytest.fixture(scope="session")
def skab_small(skab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of three labelled SKAB files in their sub-folders."""
    root = tmp_path_factory.mktemp("skab")
    for name in SKAB_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(skab_dir / name, root / name)
    return root


def train_skab(
    workspace: Path, folder: Path, *, exclude_labelled: bool = True, train_rows: int = 400
) -> Path:
    """Train on SKAB files; ``exclude_labelled=False`` with every row: the anomalies are learnt as normal."""
    config = parse_config(
        {
            "seed": 3,
            "data": {
                "source": "files",
                "paths": [str(folder)],
                "train_rows": train_rows,
                "hygiene": {"exclude_labelled": exclude_labelled},
            },
            "features": {"window_samples": 10, "min_segment_samples": 30},
            "detector": {"kind": "pca_t2q"},
            "threshold": {"quantile": 0.99, "factor": 1.2},
            "smoothing": {"k": 3, "n": 5},
            "evaluation": {"enabled": False},
            "output": {"log": False, "model_dir": str(workspace / "model")},
        }
    )
    return run_pipeline(config, workspace=workspace, log=False).model_dir


@pytest.fixture(scope="session")
def skab_model(skab_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_skab(tmp_path_factory.mktemp("skab-good"), skab_small)


@pytest.fixture(scope="session")
def skab_dirty_model(skab_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Trained on every row of the files, anomalies included (hygiene off)."""
    return train_skab(tmp_path_factory.mktemp("skab-dirty"), skab_small, exclude_labelled=False, train_rows=0)
