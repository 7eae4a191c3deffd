"""``pumpops sim faults`` / ``pumpops sim truth`` and ``pumpops sources skab``, on a bare app."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pumpops.cli import sim as sim_cli
from pumpops.cli import sources as sources_cli


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    sim_cli.register(app)
    sources_cli.register(app)
    return app


def test_sim_cli_faults_lists_every_kind() -> None:
    result = CliRunner().invoke(_app(), ["sim", "faults"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for kind in ("cavitation", "bearing_wear", "seal_leak", "impeller_wear", "valve_blockage"):
        assert f"{kind} (fault)" in result.output
    assert "setpoint_change (drift (benign))" in result.output


def test_sim_cli_truth_writes_the_ground_truth(tmp_path: Path) -> None:
    out = tmp_path / "truth.json"
    args = ["sim", "truth", str(out), "--devices", "6", "--seed", "3", "--duration-s", "7200"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert len(doc["devices"]) == 6
    assert doc["seed"] == 3


def test_sources_cli_skab_lists_files(tmp_path: Path) -> None:
    rows = "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;Thermocouple;Voltage;"
    rows += "Volume Flow RateRMS\n2020-03-09 10:14:33;0.02;0.04;1.3;0.05;79.3;26.0;233.0;32.0\n"
    (tmp_path / "0.csv").write_text(rows)
    result = CliRunner().invoke(_app(), ["sources", "skab", str(tmp_path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "skab-" in result.output


# -- issue 11: --output table|json|csv, one duration form ---------------------------------------

SKAB_HEADER = (
    "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;Thermocouple;Voltage;"
)
SKAB_HEADER += "Volume Flow RateRMS\n"
SKAB_ROW = "2020-03-09 10:14:33;0.02;0.04;1.3;0.05;79.3;26.0;233.0;32.0\n"


def _commands(tmp_path: Path) -> dict[str, list[str]]:
    folder = tmp_path / ("skab-folder-with-a-rather-long-name-" + "z" * 80) / "valve1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "0.csv").write_text(SKAB_HEADER + SKAB_ROW)
    return {
        "sim faults": ["sim", "faults"],
        "sim truth": ["sim", "truth", str(tmp_path / "t.json"), "--devices", "3", "--duration", "2h"],
        "sources skab": ["sources", "skab", str(folder)],
    }


@pytest.mark.parametrize("command", ["sim faults", "sim truth", "sources skab"])
def test_sim_cli_read_commands_json_output_parses(tmp_path: Path, command: str) -> None:
    for flags in (["--output", "json"], ["--json"]):
        result = CliRunner().invoke(_app(), [*_commands(tmp_path)[command], *flags])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)


@pytest.mark.parametrize("command", ["sim faults", "sim truth", "sources skab"])
def test_sim_cli_read_commands_csv_output_has_a_header_row(tmp_path: Path, command: str) -> None:
    result = CliRunner().invoke(_app(), [*_commands(tmp_path)[command], "-o", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output)))
    assert len(rows) >= 2
    assert all(len(row) == len(rows[0]) for row in rows)
    assert rows[0][0] in {"kind", "field", "experiment"}


def test_sources_cli_skab_table_off_a_terminal_is_not_cut(tmp_path: Path) -> None:
    args = _commands(tmp_path)["sources skab"]
    result = CliRunner().invoke(_app(), args)  # CliRunner's output is not a terminal
    assert result.exit_code == 0, result.output
    assert args[-1] in result.output  # the title: the folder in full


def test_sim_cli_truth_duration_takes_a_unit(tmp_path: Path) -> None:
    out = tmp_path / "truth.json"
    result = CliRunner().invoke(
        _app(), ["sim", "truth", str(out), "--devices", "2", "--duration", "2h", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["duration_s"] == 7200.0
    doc = json.loads(out.read_text())
    assert doc["end_ms"] - doc["start_ms"] == 7_200_000
    help_text = CliRunner().invoke(_app(), ["sim", "truth", "--help"], terminal_width=200).output
    assert "--duration-s" not in help_text  # the old form is a hidden alias


def test_sim_cli_truth_bad_duration_is_a_usage_error_naming_the_flag(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["sim", "truth", str(tmp_path / "t.json"), "--duration", "a while"])
    assert result.exit_code == 2, result.output
    assert "--duration" in result.output
    assert not (tmp_path / "t.json").exists()


@pytest.mark.parametrize(("make", "code"), [("malformed", 3), ("truncated", 3), ("missing", 4), ("empty", 4)])
def test_sources_cli_skab_exit_codes(tmp_path: Path, make: str, code: int) -> None:
    folder = tmp_path / "skab"
    if make != "missing":
        folder.mkdir()
    if make == "malformed":
        (folder / "0.csv").write_text(SKAB_HEADER + SKAB_ROW.replace("0.02", "zero"))
    if make == "truncated":
        (folder / "0.csv").write_text(SKAB_HEADER + SKAB_ROW.rstrip("\n"))
    result = subprocess.run(
        [sys.executable, "-m", "pumpops", "sources", "skab", str(folder)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == code, result.stderr
    assert str(folder) in result.stderr
