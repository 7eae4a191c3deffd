"""Database URLs: which engine, which PostgreSQL schema, and the errors of bad or unreachable ones."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from pumpops.errors import ConfigError, StoreError
from pumpops.store import open_store
from pumpops.store._postgres import postgres_url

PSYCOPG = "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("url", "expected", "schema"),
    [
        ("postgresql://u@h/db", PSYCOPG, None),
        (f"{PSYCOPG}?schema=fleet_7", f"{PSYCOPG}?options=-csearch_path%3Dfleet_7", "fleet_7"),
        (
            "postgresql://u@h/db?options=-c%20search_path%3Dabc",
            f"{PSYCOPG}?options=-c+search_path%3Dabc",
            "abc",
        ),
        (
            "postgresql://u@h/db?options=-cstatement_timeout%3D5000&schema=s",
            f"{PSYCOPG}?options=-cstatement_timeout%3D5000+-csearch_path%3Ds",
            "s",
        ),
    ],
)
def test_postgres_url_normalised_and_schema_found(url: str, expected: str, schema: str | None) -> None:
    parsed, found = postgres_url(url)
    assert parsed.render_as_string(hide_password=False) == expected
    assert found == schema


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://u@h/db",
        "postgresql://u@h/db?schema=bad-name",
        "postgresql://u@h/db?schema=a&schema=b",
        "mysql://u@h/db",
        "http://example.com",
    ],
)
def test_open_store_unsupported_url_is_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        open_store(url)


def test_open_store_unreachable_postgres_is_store_error() -> None:
    with (
        open_store("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2") as store,
        pytest.raises(StoreError),
    ):
        store.counts()


def test_open_store_sqlite_in_missing_folder_is_store_error(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path}/no/such/folder/x.db") as store, pytest.raises(StoreError):
        store.upgrade()


@pytest.mark.postgres
def test_open_store_schema_parameter_creates_schema_on_upgrade(postgres_admin: sa.Engine) -> None:
    schema = f"pumpops_test_{uuid.uuid4().hex[:16]}"
    base = postgres_admin.url.render_as_string(hide_password=False)
    try:
        with open_store(f"{base}?schema={schema}") as store:
            store.upgrade()
            store.upgrade()
            assert store.counts()["readings"] == 0
        with postgres_admin.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names(schema=schema))
        assert {"devices", "messages", "readings", "dead_letters", "alembic_version"} <= tables
    finally:
        with postgres_admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
