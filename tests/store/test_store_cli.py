"""The store's commands (``pumpops db``, ``devices``, ``telemetry query|dead-letters``) on both engines."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from pumpops.errors import NotFoundError
from pumpops.fleet import Device
from pumpops.schema import DeadLetter, ReadingBatch
from pumpops.store import _cli as store_cli
from pumpops.store import open_store

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def _app() -> typer.Typer:
    """A root command like ``pumpops.cli.app`` with only the store's commands."""
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def root(ctx: typer.Context) -> None:
        """Test root."""
        ctx.obj = {"workspace": None}

    store_cli.register(app)
    return app


@pytest.fixture
def url(store_url: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty database's URL; the current directory is an empty workspace."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PUMPOPS_DATABASE_URL", raising=False)
    monkeypatch.delenv("PUMPOPS_WORKSPACE", raising=False)
    return store_url()


def run(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(_app(), list(args))
    return result.exit_code, result.output, result.exception


@pytest.fixture
def filled(url: str) -> str:
    """A database with device p-1 and a few readings with a gap."""
    with open_store(url) as store:
        store.upgrade()
        store.register_devices([Device("p-1", "north", "acme-ansi", "pilot")])
        values = np.array([[651_554.5642044103, 338.15], [652_000.0, np.nan], [np.nan, 339.0]])
        ts = T0 + np.array([0, 1, 2], dtype=np.int64) * 1_000_000
        digest = hashlib.sha256(b"m1").hexdigest()
        store.write_batches(
            [ReadingBatch("p-1", "m1", digest, ts, ("discharge_pressure", "bearing_temperature"), values, T0)]
        )
    return url


def test_cli_db_status_before_upgrade_says_not_created(url: str) -> None:
    code, output, _ = run("db", "status", "--db", url)
    assert code == 0, output
    assert "not created" in output
    assert "pumpops db upgrade" in output


def test_cli_db_upgrade_then_status_shows_revision_and_counts(url: str) -> None:
    code, output, _ = run("db", "upgrade", "--db", url)
    assert code == 0, output
    assert "to revision 0006" in output
    code, output, _ = run("db", "upgrade", "--db", url)
    assert "already at revision 0006" in output
    code, output, _ = run("db", "status", "--db", url)
    assert code == 0, output
    assert "revision 0006 (up to date)" in output
    assert "readings" in output


def test_cli_db_uses_database_url_from_environment(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUMPOPS_DATABASE_URL", url)
    code, output, _ = run("db", "upgrade")
    assert code == 0, output
    with open_store(url) as store:
        assert store.counts()["devices"] == 0


def test_cli_devices_register_then_list(url: str) -> None:
    run("db", "upgrade", "--db", url)
    args = [
        "devices",
        "register",
        "--db",
        url,
        "--device-id",
        "p-7",
        "--site",
        "north",
        "--profile",
        "sakura-esp",
    ]
    code, output, _ = run(*args)
    assert code == 0, output
    assert "registered p-7" in output
    code, output, _ = run(*args, "--group", "offshore")
    assert "updated p-7" in output
    code, output, _ = run("devices", "list", "--db", url)
    assert code == 0, output
    assert "p-7" in output
    assert "sakura-esp" in output
    assert "offshore" in output


def test_cli_devices_register_unknown_profile_is_not_found(url: str) -> None:
    run("db", "upgrade", "--db", url)
    args = ["devices", "register", "--db", url, "--device-id", "p-7", "--site", "north", "--profile", "nope"]
    code, _, exc = run(*args)
    assert code != 0
    assert isinstance(exc, NotFoundError)
    assert "acme-ansi" in str(exc)  # the known profiles are listed


def test_cli_telemetry_query_csv_prints_si_values_with_units(filled: str) -> None:
    code, output, _ = run("telemetry", "query", "--db", filled, "--device", "p-1", "--format", "csv")
    assert code == 0, output
    assert output.splitlines() == [
        "time (UTC),discharge_pressure [Pa],bearing_temperature [K]",
        "2026-01-01T00:00:00Z,651554.5642044103,338.15",
        "2026-01-01T00:00:01Z,652000.0,",
        "2026-01-01T00:00:02Z,,339.0",
    ]


def test_cli_telemetry_query_bounds_sensor_and_limit(filled: str) -> None:
    code, output, _ = run(
        "telemetry", "query", "--db", filled, "-d", "p-1", "-s", "bearing_temperature", "--format", "csv",
        "--since", "2026-01-01T01:00:00+01:00", "--until", "2026-01-01T00:00:03", "--limit", "1",
    )  # fmt: skip
    assert code == 0, output
    assert output.splitlines() == ["time (UTC),bearing_temperature [K]", "2026-01-01T00:00:00Z,338.15"]


def test_cli_telemetry_query_table_shows_unit_headers_and_values(filled: str) -> None:
    code, output, _ = run("telemetry", "query", "--db", filled, "-d", "p-1", "-s", "discharge_pressure")
    assert code == 0, output
    assert "discharge_pressure" in output
    assert "[Pa]" in output  # the unit, on the header's second line
    assert "651555" in output  # 6 significant digits
    assert "2026-01-01T00:00:01Z" in output


def test_cli_telemetry_query_bad_time_is_usage_error(filled: str) -> None:
    code, output, _ = run("telemetry", "query", "--db", filled, "-d", "p-1", "--since", "yesterday")
    assert code == 2
    assert "ISO-8601" in output


def test_cli_telemetry_query_unknown_sensor_is_not_found(filled: str) -> None:
    code, _, exc = run("telemetry", "query", "--db", filled, "-d", "p-1", "-s", "pressure")
    assert code != 0
    assert isinstance(exc, NotFoundError)


def test_cli_telemetry_query_unknown_device_is_not_found(filled: str) -> None:
    code, _, exc = run("telemetry", "query", "--db", filled, "-d", "ghost")
    assert code != 0
    assert isinstance(exc, NotFoundError)


def test_cli_telemetry_dead_letters_lists_and_filters_by_reason(filled: str) -> None:
    with open_store(filled) as store:
        store.write_dead_letters(
            [
                DeadLetter("pumpops/v1/n/x/telemetry", b"\xff[not json", "malformed_json", "bad [red]", T0),
                DeadLetter("pumpops/v1/n/q/telemetry", b"{}", "unknown_device", "register q", T0 + 1, "q"),
            ]
        )
    code, output, _ = run("telemetry", "dead-letters", "--db", filled)
    assert code == 0, output
    assert "malformed_json" in output
    assert "unknown_device" in output
    assert "bad [red]" in output  # shown literally, not as Rich markup
    assert "payload: 10 B: \\xff[not json" in output  # raw bytes, escaped
    code, output, _ = run("telemetry", "dead-letters", "--db", filled, "--reason", "unknown_device")
    assert "unknown_device" in output
    assert "malformed_json" not in output
