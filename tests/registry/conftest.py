"""Fixtures of the registry tests: one MLflow tracking DB and two small SKAB models per session.

Creating an MLflow tracking database costs about 2 s, training a model a few
seconds, so both are shared by the session. Each test registers under its own
model name (:func:`model_name`) and gets its own pumpops store, so tests do not
see each other's versions, aliases, history or events. The store runs on
SQLite, and on PostgreSQL (``$PUMPOPS_TEST_POSTGRES_URL``, a schema per test)
where a test asks for ``db_url``; PostgreSQL tests are skipped when the server
is down, except under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pumpops.pipeline import RunResult, parse_config, run_pipeline
from pumpops.registry import EventSink, Registry
from pumpops.store import TelemetryStore, open_store

POSTGRES_URL = os.environ.get(
    "PUMPOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MOSQUITTO = ("127.0.0.1", 1883)
SKAB_FILES = ("anomaly-free/anomaly-free.csv", "valve1/0.csv", "valve1/1.csv")


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow tracking database for the whole session."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def skab_tiny(skab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three SKAB files (one label-free, cut to 1,200 rows; two labelled)."""
    root = tmp_path_factory.mktemp("skab")
    for name in SKAB_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if name.startswith("anomaly-free"):
            lines = (skab_dir / name).read_bytes().splitlines(keepends=True)[:1201]
            (root / name).write_bytes(b"".join(lines))
        else:
            shutil.copyfile(skab_dir / name, root / name)
    return root


def _train(folder: Path, workspace: Path, tracking_uri: str, variance: float) -> RunResult:
    config = parse_config(
        {
            "seed": 3,
            "data": {"source": "files", "paths": [str(folder)], "train_rows": 400},
            "features": {"window_samples": 10, "min_segment_samples": 30},
            "detector": {"kind": "pca_t2q", "hyper": {"variance": variance}},
            "threshold": {"quantile": 0.99, "factor": 1.2},
            "smoothing": {"k": 3, "n": 5},
            "output": {"experiment": "test-registry"},
        }
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(mlflow|alembic|sqlalchemy)")
        return run_pipeline(config, workspace=workspace, tracking_uri=tracking_uri)


@pytest.fixture(scope="session")
def runs(skab_tiny: Path, tracking_uri: str, tmp_path_factory: pytest.TempPathFactory) -> list[RunResult]:
    """Two logged pipeline runs of the same group with different models (PCA variance 0.9 and 0.8)."""
    workspace = tmp_path_factory.mktemp("workspace")
    return [_train(skab_tiny, workspace, tracking_uri, v) for v in (0.9, 0.8)]


@pytest.fixture
def model_name() -> str:
    """A registered model name of this test's own."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TelemetryStore]:
    """A fresh, upgraded SQLite store."""
    with open_store(f"sqlite:///{tmp_path / 'pumpops.db'}") as opened:
        opened.upgrade()
        yield opened


@pytest.fixture
def registry(store: TelemetryStore, tracking_uri: str) -> Registry:
    """A registry on the session's MLflow and this test's store; events are stored only."""
    return Registry(tracking_uri, EventSink(store))


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine]:
    """An engine on the test server's default schema, for dropping test schemas."""
    engine = sa.create_engine(POSTGRES_URL, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        engine.dispose()
        message = f"PostgreSQL not reachable at {POSTGRES_URL}: {str(exc.orig).strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, empty database: SQLite, or a PostgreSQL schema of this test's own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / f'registry-{uuid.uuid4().hex[:8]}.db'}"
        return
    admin = request.getfixturevalue("postgres_admin")
    schema = f"pumpops_test_{uuid.uuid4().hex[:16]}"
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="session")
def mosquitto() -> tuple[str, int]:
    """The Mosquitto on 127.0.0.1:1883 (skipped when it is not running, failed under ``CI=true``)."""
    try:
        socket.create_connection(MOSQUITTO, timeout=1).close()
    except OSError:
        if os.environ.get("CI") == "true":
            pytest.fail("Mosquitto is not running on 127.0.0.1:1883")
        pytest.skip("Mosquitto is not running on 127.0.0.1:1883")
    return MOSQUITTO
