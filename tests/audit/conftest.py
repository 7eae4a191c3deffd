"""Fixtures of the audit tests: a fresh store per test on SQLite and on PostgreSQL.

The same pattern as ``tests/store/conftest.py``: SQLite gets a file in the
test's temporary folder; PostgreSQL (``$PUMPOPS_TEST_POSTGRES_URL``, default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) gets a schema with a
unique name per test, dropped afterwards. If the server is down, PostgreSQL
tests are skipped, except under ``CI=true`` where that fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pumpops.store import TelemetryStore, open_store

POSTGRES_URL = os.environ.get(
    "PUMPOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that needs a database on both engines."""
    explicit = any("db_url" in m.args[0] for m in metafunc.definition.iter_markers("parametrize"))
    if "db_url" in metafunc.fixturenames and not explicit:
        metafunc.parametrize("db_url", ENGINES, indirect=True)


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine]:
    """An engine on the test server's default schema, for creating and dropping test schemas."""
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


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, empty database on the engine named by ``request.param``."""
    engine_name = getattr(request, "param", "sqlite")
    if engine_name == "sqlite":
        yield f"sqlite:///{tmp_path / f'audit-{uuid.uuid4().hex[:8]}.db'}"
        return
    admin = request.getfixturevalue("postgres_admin")
    schema = f"pumpops_test_{uuid.uuid4().hex[:16]}"
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def store(db_url: str) -> Iterator[TelemetryStore]:
    """A fresh, upgraded store on ``db_url``, closed after the test."""
    with open_store(db_url) as opened:
        opened.upgrade()
        yield opened


@pytest.fixture
def raw(db_url: str, store: TelemetryStore) -> Iterator[Callable[[str], None]]:
    """Run SQL on the store's database directly, as someone tampering with it would."""
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)

    def run(statement: str) -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql(statement)

    yield run
    engine.dispose()
