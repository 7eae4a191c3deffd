"""The store's commands (``pumpops db``, ``devices``, ``telemetry query|dead-letters``) on both engines."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from pumpops.cli import store as store_cli
from pumpops.errors import ConfigError, NotFoundError
from pumpops.fleet import Device
from pumpops.schema import DeadLetter, ReadingBatch
from pumpops.settings import init_workspace
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
    init_workspace(tmp_path)
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
    assert "to revision 0010" in output
    code, output, _ = run("db", "upgrade", "--db", url)
    assert "already at revision 0010" in output
    code, output, _ = run("db", "status", "--db", url)
    assert code == 0, output
    assert "revision 0010 (up to date)" in output
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
    _, _, exc = run("telemetry", "query", "--db", filled, "-d", "p-1", "--since", "yesterday")
    assert isinstance(exc, ConfigError)
    assert "--since 'yesterday'" in str(exc)
    assert "ISO 8601" in str(exc)


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


# -- issue 11: --output table|json|csv, --database-url, relative times, workspaces ---------------

LONG_ID = "pump-" + "x" * 59  # the longest id: with the other columns, wider than 80 columns
LONG_DETAIL = "the detail " + "y" * 200  # longer than any terminal


@pytest.fixture
def long_filled(filled: str) -> str:
    """The filled database plus a device with a very long id, and one dead letter of it."""
    with open_store(filled) as store:
        store.register_devices([Device(LONG_ID, "north", "acme-ansi", "pilot")])
        store.write_dead_letters(
            [
                DeadLetter(
                    f"pumpops/v1/north/{LONG_ID}/telemetry", b"{}", "unknown_device", LONG_DETAIL, T0, LONG_ID
                )
            ]
        )
    return filled


READ_COMMANDS = {
    "devices list": ("devices", "list"),
    "db status": ("db", "status"),
    "telemetry query": ("telemetry", "query", "-d", "p-1"),
    "telemetry dead-letters": ("telemetry", "dead-letters"),
}


@pytest.mark.parametrize("command", list(READ_COMMANDS))
def test_cli_store_read_commands_json_output_parses(long_filled: str, command: str) -> None:
    for flags in (("--output", "json"), ("--json",), ("-o", "json")):
        code, output, exc = run(*READ_COMMANDS[command], "--database-url", long_filled, *flags)
        assert code == 0, (output, exc)
        data = json.loads(output)
        assert data, output


@pytest.mark.parametrize("command", list(READ_COMMANDS))
def test_cli_store_read_commands_csv_output_has_a_header_row(long_filled: str, command: str) -> None:
    code, output, exc = run(*READ_COMMANDS[command], "--db", long_filled, "--output", "csv")
    assert code == 0, (output, exc)
    rows = list(csv.reader(io.StringIO(output)))
    assert len(rows) >= 2
    assert all(len(row) == len(rows[0]) for row in rows)
    assert not any(cell.replace(".", "").isdigit() for cell in rows[0])  # names, not values


@pytest.mark.parametrize("command", ["devices list", "telemetry dead-letters"])
def test_cli_store_table_off_a_terminal_is_not_cut(long_filled: str, command: str) -> None:
    code, output, exc = run(*READ_COMMANDS[command], "--db", long_filled)
    assert code == 0, (output, exc)
    assert LONG_ID in output  # whole, on one line
    if command == "telemetry dead-letters":
        assert LONG_DETAIL in output


def test_cli_telemetry_query_json_has_one_record_per_instant(filled: str) -> None:
    code, output, _ = run("telemetry", "query", "--db", filled, "-d", "p-1", "--json")
    assert code == 0, output
    assert json.loads(output) == [
        {
            "time": "2026-01-01T00:00:00Z",
            "discharge_pressure": 651554.5642044103,
            "bearing_temperature": 338.15,
        },
        {"time": "2026-01-01T00:00:01Z", "discharge_pressure": 652000.0, "bearing_temperature": None},
        {"time": "2026-01-01T00:00:02Z", "discharge_pressure": None, "bearing_temperature": 339.0},
    ]


def test_cli_telemetry_query_since_accepts_a_relative_time(filled: str) -> None:
    # the readings are of 2026-01-01; "since 1h before now" is after all of them (the clock is later)
    code, output, exc = run("telemetry", "query", "--db", filled, "-d", "p-1", "--since", "1h", "-o", "json")
    assert code == 0, (output, exc)
    assert json.loads(output) == []
    code, output, exc = run("telemetry", "query", "--db", filled, "-d", "p-1", "--since", "100000d", "--json")
    assert len(json.loads(output)) == 3


def test_cli_devices_list_in_a_bare_folder_names_pumpops_init_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PUMPOPS_DATABASE_URL", raising=False)
    monkeypatch.delenv("PUMPOPS_WORKSPACE", raising=False)
    result = subprocess.run(
        [sys.executable, "-m", "pumpops", "devices", "list"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "pumpops init" in result.stderr
    assert not (tmp_path / "pumpops.db").exists()
    assert list(tmp_path.iterdir()) == []
