"""``pumpops sim faults`` / ``pumpops sim truth`` and ``pumpops sources skab``, on a bare app."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from pumpops.sim import _cli as sim_cli
from pumpops.sources import _cli as sources_cli


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
