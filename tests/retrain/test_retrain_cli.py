"""``pumpops retrain run|policy`` and ``pumpops approve`` through the console entry point (exit codes)."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest

from pumpops.cli import main
from pumpops.fleet import Device
from pumpops.settings import init_workspace, load_settings
from pumpops.store import open_store


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace with one registered device in group g1; no PUMPOPS_* variables leak in."""
    for name in ("PUMPOPS_DATABASE_URL", "PUMPOPS_WORKSPACE", "PUMPOPS_ACTOR", "PUMPOPS_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "ws"
    init_workspace(folder)
    with open_store(load_settings(folder).resolved_database_url) as store:
        store.upgrade()
        store.register_devices([Device("p-1", "site-a", "acme-ansi", "g1")])
    return folder


def pumpops(
    workspace: Path, *args: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """Run ``pumpops -w <workspace> ...`` as the console script does: errors become exit codes."""
    monkeypatch.setattr(sys, "argv", ["pumpops", "-w", str(workspace), *args])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_retrain_policy_output_formats(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    code, out, err = pumpops(
        workspace, "retrain", "policy", "--output", fmt, monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 0, err
    if fmt == "json":
        assert json.loads(out)["window_h"] == 6.0
    elif fmt == "csv":
        rows = list(csv.reader(io.StringIO(out)))
        assert rows[0] == ["field", "value"]
        assert ["window_h", "6"] in rows
    else:
        assert "window_h" in out
        assert "approval_required" in out


def test_retrain_policy_json_flag_is_a_flag(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = pumpops(workspace, "retrain", "policy", "--json", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert "enabled" in json.loads(out)


def test_retrain_run_unknown_group_exits_4_with_progress(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = pumpops(
        *(workspace, "retrain", "run", "--group", "nope", "--until", "1h", "--no-rollout", "--json"),
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert code == 4, out + err
    outcome = json.loads(out)
    assert (outcome["status"], outcome["error"]) == ("failed", "NotFoundError")
    assert "failed: NotFoundError" in err  # the steps are told on stderr


def test_retrain_run_bad_until_names_the_flag(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = pumpops(
        workspace, "retrain", "run", "-g", "g1", "--until", "tomorrow", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 2, err
    assert "--until" in err


def test_retrain_run_drift_onset_after_the_data_names_the_flag(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = pumpops(
        *(workspace, "retrain", "run", "-g", "g1", "--until", "2h", "--drift-onset", "1h"),
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert code == 2, err
    assert "--drift-onset must be before --until" in err


def test_retrain_run_drift_onset_waits_for_post_drift_data(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = pumpops(
        *(workspace, "retrain", "run", "-g", "g1", "--until", "1h", "--drift-onset", "70m", "--json"),
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert code == 0, out + err
    outcome = json.loads(out)
    assert (outcome["status"], outcome["trigger"], outcome["steps"]) == ("waiting", "drift", ["waiting"])
    assert "600 s of data since the drift's onset" in outcome["reason"]
    assert "waiting for 1800 s (retrain.min_post_drift_s)" in outcome["reason"]


def test_retrain_run_database_url_option(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = f"sqlite:///{tmp_path / 'empty.db'}"  # g1 has no device there
    code, out, err = pumpops(
        *(workspace, "retrain", "run", "-g", "g1", "--database-url", empty, "--no-rollout", "--json"),
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert code == 4, out + err
    assert "group 'g1' has no registered devices" in json.loads(out)["reason"]


@pytest.mark.parametrize("ref", ["pumpops-g1/7", "pumpops-g1@champion"])
def test_approve_unknown_model_exits_4(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], ref: str
) -> None:
    code, _, err = pumpops(workspace, "approve", ref, "--no-rollout", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 4, err
    assert "pumpops-g1" in err


def test_approve_malformed_ref_exits_2(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = pumpops(workspace, "approve", "pumpops-g1", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2, err
    assert "<name>/<version>" in err


def test_retrain_cli_module_imports_no_heavy_library() -> None:
    """Friction 8: the command module loads typer and the CLI support only; the rest loads in the commands."""
    import subprocess
    import sys

    code = (
        "import sys, pumpops.cli.retrain\n"
        "heavy = ('mlflow', 'sklearn', 'sqlalchemy', 'onnx', 'onnxruntime', 'tuf', 'pint', 'numpy',"
        " 'pydantic', 'paho')\n"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""
