from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from pumpops.cli import app


def _command_paths(group: object, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    for name, command in getattr(group, "commands", {}).items():
        yield from _command_paths(command, (*prefix, name))


_ALL = list(_command_paths(typer.main.get_command(app)))


@pytest.mark.parametrize("path", _ALL, ids=[" ".join(p) or "pumpops" for p in _ALL])
def test_cli_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    # A command without a docstring shows no description line under "Usage".
    assert len(result.output.strip().splitlines()) > 3


def test_cli_init_creates_workspace_and_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["init", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ws" / "pumpops.toml").is_file()
    assert (tmp_path / "ws" / "pumpops.db").is_file()


def test_cli_bad_settings_give_message_not_traceback(tmp_path: Path) -> None:
    (tmp_path / "pumpops.toml").write_text('broker_url = "http://nope"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "pumpops", "-w", str(tmp_path), "db", "upgrade"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "broker_url" in proc.stderr
    assert "Traceback" not in proc.stderr
