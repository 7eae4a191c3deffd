"""Fixtures of the store tests: one fresh database per test, on SQLite and on PostgreSQL.

SQLite gets a file in the test's temporary folder. PostgreSQL (the server at
``$PUMPOPS_TEST_POSTGRES_URL``, default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``)
gets a schema with a unique name per test, dropped afterwards, so tests do not
see each other nor other test modules using the same server. If the server is
down, PostgreSQL tests are skipped, except under ``CI=true`` where that fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pumpops.fleet import Device
from pumpops.store import TelemetryStore, open_store

POSTGRES_URL = os.environ.get(
    "PUMPOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

StoreFactory = Callable[[], TelemetryStore]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that needs a store on both engines, unless it names its engines itself."""
    if "store_url" not in metafunc.fixturenames:
        return
    explicit = any(
        "store_url" in marker.args[0] for marker in metafunc.definition.iter_markers("parametrize")
    )
    if not explicit:
        metafunc.parametrize("store_url", ENGINES, indirect=True)


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
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """A factory of URLs of fresh, empty databases on the engine named by ``request.param``."""
    engine_name = getattr(request, "param", "sqlite")
    schemas: list[str] = []
    admin = request.getfixturevalue("postgres_admin") if engine_name == "postgres" else None

    def make() -> str:
        if engine_name == "sqlite":
            return f"sqlite:///{tmp_path / f'store-{uuid.uuid4().hex[:8]}.db'}"
        schema = f"pumpops_test_{uuid.uuid4().hex[:16]}"
        schemas.append(schema)
        # The documented libpq way; upgrade() creates the schema.
        return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"

    yield make
    if admin is not None:
        for schema in schemas:  # one transaction each: a partitioned schema takes many locks
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def make_store(store_url: Callable[[], str]) -> Iterator[StoreFactory]:
    """A factory of fresh, upgraded, empty stores, closed after the test."""
    opened: list[TelemetryStore] = []

    def make() -> TelemetryStore:
        store = open_store(store_url())
        opened.append(store)
        store.upgrade()
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> TelemetryStore:
    """A fresh, upgraded store with devices ``p-1`` and ``p-2`` registered."""
    store = make_store()
    store.register_devices(
        [Device("p-1", "site-a", "acme-ansi", "g1"), Device("p-2", "site-b", "sakura-esp", "g2")]
    )
    return store
