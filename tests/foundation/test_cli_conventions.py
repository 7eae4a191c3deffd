"""The conventions every command shares (issue 11): exit codes, workspaces, interrupts, output width."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import pumpops.cli as cli
from pumpops.cli._support import (
    EXIT_CODES_HELP,
    ExitCode,
    OutputFormat,
    emit_record,
    emit_rows,
    parse_time_us,
)
from pumpops.errors import (
    BrokerError,
    CheckFailed,
    ConfigError,
    InputError,
    NotFoundError,
    PumpopsError,
    StoreError,
    TamperedArtifactError,
)

SRC = Path(cli.__file__).resolve().parent


def _pumpops(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pumpops", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("bad flag"), 2),
        (InputError("bad row"), 3),
        (NotFoundError("no such model"), 4),
        (StoreError("database down"), 5),
        (BrokerError("broker down"), 5),
        (CheckFailed("2 gates failed"), 1),
        (TamperedArtifactError("hash differs"), 1),
        (PumpopsError("other"), 1),
        (KeyboardInterrupt(), 130),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_cli_exit_code_scheme(monkeypatch: pytest.MonkeyPatch, error: BaseException, code: int) -> None:
    def raising() -> None:
        raise error

    monkeypatch.setattr(cli, "app", raising)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == code


def test_cli_sigterm_ends_a_command_like_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    cleaned: list[str] = []

    def long_command() -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0.1) if hasattr(signal, "sigtimedwait") else None
            raise AssertionError("SIGTERM did not interrupt the command")
        finally:
            cleaned.append("finally ran")

    monkeypatch.setattr(cli, "app", long_command)
    try:
        with pytest.raises(SystemExit) as exited:
            cli.main()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert exited.value.code == ExitCode.INTERRUPTED
    assert cleaned == ["finally ran"]


def test_cli_help_documents_exit_codes_and_completion() -> None:
    result = CliRunner().invoke(cli.app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    flat = " ".join(result.output.split())
    assert " ".join(EXIT_CODES_HELP.split()) in flat
    assert "--install-completion" in result.output


def test_cli_folder_without_workspace_is_refused_and_left_untouched(tmp_path: Path) -> None:
    proc = _pumpops("-w", str(tmp_path), "db", "status", cwd=tmp_path)
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert "not a pumpops workspace" in proc.stderr
    assert "pumpops init" in proc.stderr
    assert "-w" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no pumpops.db, no mlflow.db


def test_cli_missing_workspace_folder_is_a_usage_error(tmp_path: Path) -> None:
    proc = _pumpops("-w", str(tmp_path / "nope"), "db", "status", cwd=tmp_path)
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert "does not exist" in proc.stderr
    assert not (tmp_path / "nope").exists()


def test_cli_relative_workspace_is_resolved_once(tmp_path: Path) -> None:
    assert _pumpops("init", "ws", cwd=tmp_path).returncode == 0
    proc = _pumpops("-w", "ws", "db", "status", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "ws" / "pumpops.db").is_file()
    assert not (tmp_path / "pumpops.db").exists()


def test_cli_settings_are_loaded_only_through_the_workspace_check() -> None:
    """Friction 2 has one choke point: no command module loads settings around settings_from."""
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")  # pumpops/cli: the choke point (_support) and `init` (_root) aside
        if path.name not in {"_support.py", "_root.py"}
        and re.search(r"\bload_settings\(", path.read_text("utf-8"))
    ]
    assert offenders == []


def test_emit_rows_off_a_terminal_prints_long_values_whole(capsys: pytest.CaptureFixture[str]) -> None:
    long = "pumpops-" + "x" * 180
    emit_rows([{"name": long, "value": 1.5}], output=OutputFormat.TABLE, columns=("name", "value"))
    out = capsys.readouterr().out
    assert long in out
    assert max(len(line) for line in out.splitlines()) > 180


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_emit_rows_every_format_has_the_same_columns(
    capsys: pytest.CaptureFixture[str], fmt: OutputFormat
) -> None:
    rows = [{"device": "p-1", "value": 2.0, "extra": {"a": 1}}, {"device": "p-2", "value": None}]
    emit_rows(rows, output=fmt, columns=("device", "value"))
    out = capsys.readouterr().out
    if fmt is OutputFormat.JSON:
        assert json.loads(out) == [{"device": "p-1", "value": 2.0}, {"device": "p-2", "value": None}]
    elif fmt is OutputFormat.CSV:
        assert out.splitlines() == ["device,value", "p-1,2", "p-2,"]
    else:
        assert "device" in out
        assert "p-2" in out


def test_emit_record_json_is_an_object(capsys: pytest.CaptureFixture[str]) -> None:
    emit_record({"a": 1, "path": Path("/x")}, output=OutputFormat.JSON)
    assert json.loads(capsys.readouterr().out) == {"a": 1, "path": "/x"}


@pytest.mark.parametrize(
    ("text", "expected_us"),
    [
        ("2026-01-01T00:00:00Z", 1_767_225_600_000_000),
        ("2026-01-01T00:00:00", 1_767_225_600_000_000),
        ("2026-01-01T01:00:00+01:00", 1_767_225_600_000_000),
        ("1h", 7_200_000_000 - 3_600_000_000),
        ("90s", 7_200_000_000 - 90_000_000),
    ],
)
def test_parse_time_us_accepts_iso_and_relative(text: str, expected_us: int) -> None:
    assert parse_time_us(text, option="--since", now_s=7200.0) == expected_us


@pytest.mark.parametrize("text", ["yesterday", "1 hour", "-1h", "2026-13-01"])
def test_parse_time_us_rejects_naming_the_flag(text: str) -> None:
    with pytest.raises(ConfigError, match="--until"):
        parse_time_us(text, option="--until")


def test_cli_usage_error_answers_without_loading_the_hub() -> None:
    """Friction 8: --help and usage errors import no heavy library (checked by import, not time)."""
    code = (
        "import sys, pumpops.cli\n"
        "heavy = sorted(m for m in ('mlflow', 'sklearn', 'sqlalchemy', 'onnx', 'onnxruntime', 'pandas',"
        " 'fastapi', 'uvicorn', 'amqtt', 'tuf', 'pint', 'numpy') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""


def test_typer_bool_flags_take_no_value() -> None:
    """Friction 9: --json is a flag everywhere, never shown as taking a value."""
    from typer.main import get_command

    bad = []

    def walk(command: object, path: str) -> None:
        for param in getattr(command, "params", []):
            if "--json" in getattr(param, "opts", []) and not getattr(param, "is_flag", False):
                bad.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(get_command(cli.app), "pumpops")
    assert bad == []
    assert isinstance(cli.app, typer.Typer)
