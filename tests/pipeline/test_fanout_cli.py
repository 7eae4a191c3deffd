"""``pumpops pipeline run-groups``: every file reported, the trained registered, exit 1 when one failed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from _cli import cli_app  # type: ignore[import-not-found]
from typer.testing import CliRunner

from pumpops.cli import pipeline as pipeline_cli
from pumpops.cli import pipeline_groups
from pumpops.errors import ConfigError


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli_app(pipeline_cli, pipeline_groups), list(args))


def _pipeline(path: Path, data: Path) -> Path:
    path.write_text(
        f'seed = 1\n[data]\nsource = "files"\npaths = ["{data}"]\ntrain_rows = 400\n'
        "[features]\nwindow_samples = 10\nmin_segment_samples = 30\n"
    )
    return path


def test_run_groups_reports_each_group_and_registers_the_trained(
    workspace: Path, skab_small: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    good = _pipeline(workspace / "valves.toml", skab_small)
    bad = _pipeline(workspace / "nothing.toml", empty)  # no CSV files: this group fails alone
    result = invoke(
        "pipeline", "run-groups", "-c", str(good), "-c", str(bad), "--scheduler", "sequential", "--json"
    )
    assert result.exit_code == 1, (result.output, result.exception)
    rows = {row["group"]: row for row in json.loads(result.stdout)}
    assert rows["valves"]["status"] == "trained"
    assert rows["valves"]["model"] == "pumpops-skab-testbed/1"
    assert rows["nothing"]["status"] == "failed"
    assert rows["nothing"]["model"] is None
    assert str(empty) in rows["nothing"]["error"]
    assert "valves: trained" in result.stderr
    assert "nothing: FAILED" in result.stderr


def test_run_groups_bad_scheduler_is_a_usage_error(workspace: Path, skab_small: Path) -> None:
    good = _pipeline(workspace / "valves.toml", skab_small)
    result = invoke("pipeline", "run-groups", "-c", str(good), "--scheduler", "yarn")
    assert isinstance(result.exception, ConfigError)
    assert "'local', 'sequential' or a scheduler address" in str(result.exception)


def test_run_groups_missing_file_is_named(workspace: Path) -> None:
    result = invoke("pipeline", "run-groups", "-c", str(workspace / "absent.toml"))
    assert isinstance(result.exception, ConfigError)
    assert "absent.toml: does not exist" in str(result.exception)
