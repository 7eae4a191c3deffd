"""Fixtures of the monitoring tests: a store with a small registered fleet, on a fake, SQLite and PostgreSQL.

PostgreSQL (``$PUMPOPS_TEST_POSTGRES_URL``) gets a schema of its own per test,
dropped afterwards; its tests are skipped when the server is down, except
under ``CI=true``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pumpops.registry import EventSink
from pumpops.store import open_store

from ._monitoring_fake import FakeMonitoringStore
from ._monitoring_records import FLEET

POSTGRES_URL = os.environ.get(
    "PUMPOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


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


@pytest.fixture(params=["fake", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fleet_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A store (fake, SQLite or PostgreSQL) with :data:`FLEET` registered."""
    if request.param == "fake":
        store: Any = FakeMonitoringStore()
    else:
        store = open_store(_url(request, tmp_path))
        store.upgrade()
    store.register_devices(FLEET)
    yield store
    store.close()


def _url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'monitoring.db'}"
    admin: sa.Engine = request.getfixturevalue("postgres_admin")
    schema = f"pumpops_test_{uuid.uuid4().hex[:16]}"
    request.addfinalizer(lambda: _drop(admin, schema))
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


def _drop(admin: sa.Engine, schema: str) -> None:
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def sink(fleet_store: Any) -> EventSink:
    """Events stored only (no broker)."""
    return EventSink(fleet_store)
