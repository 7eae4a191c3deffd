"""``pumpops train`` prints which pumps its metrics are on, and the held-out figures per kind and make."""

from __future__ import annotations

import json
from pathlib import Path

from _cli import cli_app  # type: ignore[import-not-found]
from typer.testing import CliRunner, Result

from pumpops.cli import pipeline as pipeline_cli


def _run(args: list[str]) -> Result:
    return CliRunner().invoke(cli_app(pipeline_cli), args)


def _config(ws: Path, data: Path, evaluation: str) -> Path:
    path = ws / "pipeline.toml"
    path.write_text(
        f'seed = 1\n[data]\nsource = "files"\npaths = ["{data}"]\ntrain_rows = 400\n'
        "[features]\nwindow_samples = 10\nmin_segment_samples = 30\n"
        f"[evaluation]\n{evaluation}\n[output]\nlog = false\n"
    )
    return path


def test_train_prints_the_split_and_the_held_out_figures(workspace: Path, skab_small: Path) -> None:
    config = _config(workspace, skab_small, 'holdout_devices = ["valve1/1"]')
    table = _run(["train", "--config", str(config)])
    assert table.exit_code == 0, (table.output, table.exception)
    out = table.stdout
    assert "split:           split by device: fitted on" in out
    assert "held-out pumps:  valve1/1" in out
    assert "(held-out pumps; fitted pumps:" in out
    assert "by fault kind and make — held-out pumps (fitted pumps in brackets):" in out
    assert "kind valve1" in out

    doc = json.loads(_run(["train", "--config", str(config), "--json"]).stdout)
    assert doc["split"]["mode"] == "by_device"
    assert doc["split"]["holdout"] == ["valve1/1"]
    assert "valve1/1" not in doc["split"]["fit"]
    assert doc["evaluation"]["heldout"]["devices"] == 1.0
    assert set(doc["evaluation"]["heldout"]["kind"]) == {"valve1"}
    assert doc["metrics"]["f1"] == doc["evaluation"]["heldout"]["all"]["f1"]


def test_auto_on_recording_files_says_it_is_off_and_why(workspace: Path, skab_small: Path) -> None:
    result = CliRunner().invoke(
        cli_app(pipeline_cli), ["train", "--config", str(_config(workspace, skab_small, ""))]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert "split auto: off for recording files" in result.stdout
    assert "held-out pumps:" not in result.stdout
