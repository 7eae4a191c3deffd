"""Fixtures of the packaging tests: one small SKAB model per session, logged to MLflow and registered.

Training takes about a second and an MLflow tracking database about two, so
both are shared by the session; each test writes bundles and a store of its own.
"""

from __future__ import annotations

import shutil
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from pumpops.pipeline import RunResult, parse_config, run_pipeline
from pumpops.registry import EventSink, ModelVersionInfo, Registry
from pumpops.store import TelemetryStore, open_store

SKAB_FILES = ("anomaly-free/anomaly-free.csv", "valve1/0.csv")


@pytest.fixture(scope="session")
def skab_small(skab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two SKAB files (the label-free one cut to 1,200 rows, one labelled)."""
    root = tmp_path_factory.mktemp("skab")
    for name in SKAB_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if name.startswith("anomaly-free"):
            lines = (skab_dir / name).read_bytes().splitlines(keepends=True)[:1201]
            (root / name).write_bytes(b"".join(lines))
        else:
            shutil.copyfile(skab_dir / name, root / name)
    return root


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow tracking database for the session."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def trained(skab_small: Path, tracking_uri: str, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """A logged PCA model of the SKAB test bed."""
    config = parse_config(
        {
            "seed": 3,
            "data": {"source": "files", "paths": [str(skab_small)], "train_rows": 400},
            "features": {"window_samples": 10, "min_segment_samples": 30},
            "detector": {"kind": "pca_t2q"},
            "threshold": {"quantile": 0.99, "factor": 1.2},
            "smoothing": {"k": 3, "n": 5},
            "output": {"experiment": "test-release"},
        }
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(mlflow|alembic|sqlalchemy)")
        return run_pipeline(config, workspace=tmp_path_factory.mktemp("ws"), tracking_uri=tracking_uri)


@pytest.fixture(scope="session")
def model_dir(trained: RunResult) -> Path:
    """The trained model's folder."""
    return trained.model_dir


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TelemetryStore]:
    """A fresh, upgraded SQLite store."""
    with open_store(f"sqlite:///{tmp_path / 'pumpops.db'}") as opened:
        opened.upgrade()
        yield opened


@pytest.fixture
def sink(store: TelemetryStore) -> EventSink:
    """Events stored only."""
    return EventSink(store)


@pytest.fixture
def registry(sink: EventSink, tracking_uri: str) -> Registry:
    """A registry on the session's MLflow and this test's store."""
    return Registry(tracking_uri, sink)


@pytest.fixture
def registered(registry: Registry, trained: RunResult) -> ModelVersionInfo:
    """The trained model registered under a name of this test's own (not yet validated)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(mlflow|alembic|sqlalchemy)")
        return registry.register(
            model_dir=trained.model_dir,
            run_id=trained.run_id,
            name=f"t-{uuid.uuid4().hex[:8]}",
            actor="tester",
        )
