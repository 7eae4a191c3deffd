"""``pumpops models ...`` and ``pumpops validate`` through ``pumpops.cli.app`` (store only, no broker)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

import pumpops.validation
from pumpops.audit import verify_chain
from pumpops.cli import app
from pumpops.errors import ConfigError
from pumpops.pipeline import RunResult
from pumpops.store import open_store


@pytest.fixture(autouse=True)
def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str) -> None:
    """An empty workspace as the current directory, the session's MLflow, events stored only."""
    from pumpops.settings import init_workspace

    monkeypatch.chdir(tmp_path)
    for name in (
        "PUMPOPS_DATABASE_URL",
        "PUMPOPS_WORKSPACE",
        "PUMPOPS_ACTOR",
        "PUMPOPS_BROKER_URL",
        "PUMPOPS_MLFLOW_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    init_workspace(tmp_path)
    monkeypatch.setenv("PUMPOPS_TRACKING_URI", tracking_uri)


def run(*args: str) -> tuple[int, str, BaseException | None]:
    """Run a command; the output is stdout only."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.exception


class FakeReport:
    """What ``validate_model`` returns, as far as the registry uses it."""

    def __init__(self, passed: bool) -> None:
        self.passed = passed
        self.gates = [SimpleNamespace(name="parity", status="passed" if passed else "failed", reasons=[])]
        self.context: dict[str, Any] = {}  # what the report scored: no fleet pumps here

    def to_json(self) -> str:
        return json.dumps({"passed": self.passed, "gates": [{"name": "parity", "passed": self.passed}]})

    def to_text(self) -> str:
        return f"parity: {'PASS' if self.passed else 'FAIL'}"


@pytest.fixture
def fake_gates(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace ``pumpops.validation.validate_model``; record what it was given; pass unless told."""
    calls: list[dict[str, Any]] = []

    def validate_model(candidate_dir: Path, **kw: Any) -> FakeReport:
        champion = kw.get("champion_dir")
        has_champion = champion is not None and (Path(champion) / "model.onnx").is_file()
        calls.append({"candidate_dir": Path(candidate_dir), "has_champion": has_champion, **kw})
        assert (Path(candidate_dir) / "model.onnx").is_file()
        return FakeReport(passed=calls[0].get("fail") is None)

    monkeypatch.setattr(pumpops.validation, "validate_model", validate_model, raising=False)
    return calls


def test_cli_register_list_show(runs: list[RunResult], model_name: str) -> None:
    code, out, exc = run("models", "register", "--model-dir", str(runs[0].model_dir), "--name", model_name)
    assert code == 0, (out, exc)
    assert f"registered {model_name}/1" in out
    code, out, _ = run("models", "list", "--json")
    assert code == 0
    assert f"{model_name}/1" in [r["model"] for r in json.loads(out)]
    code, out, _ = run("models", "show", f"{model_name}/1", "--json")
    lineage = json.loads(out)
    assert lineage["run_id"] == runs[0].run_id
    assert lineage["dataset_digest"] == runs[0].dataset_digest
    assert lineage["config_hash"] == runs[0].config_hash
    assert lineage["parent"] == "none"
    code, out, _ = run("models", "show", f"{model_name}/1")
    assert code == 0
    assert "dataset_digest" in out
    assert any("releases" in line and "none" in line for line in out.splitlines())  # not packaged yet


def test_cli_register_without_model_dir_takes_the_latest_run(runs: list[RunResult], model_name: str) -> None:
    code, out, exc = run("models", "register", "--name", model_name, "--json")
    assert code == 0, (out, exc)
    assert json.loads(out)["run_id"] == runs[-1].run_id


def test_cli_promote_refused_then_forced_with_reason_audited(runs: list[RunResult], model_name: str) -> None:
    run("models", "register", "--model-dir", str(runs[0].model_dir), "--name", model_name)
    group = json.loads(run("models", "show", f"{model_name}/1", "--json")[1])["group"]
    code, _, exc = run("models", "promote", f"{model_name}/1", "--group", group)
    assert isinstance(exc, ConfigError)
    assert "no passed validation report" in str(exc)
    code, _, exc = run("models", "promote", f"{model_name}/1", "--group", group, "--force")
    assert isinstance(exc, ConfigError)
    assert "--reason" in str(exc)
    code, out, exc = run(
        "models", "promote", f"{model_name}/1", "--group", group, "--force", "--reason", "storm season",
        "--actor", "dana",
    )  # fmt: skip
    assert code == 0, (out, exc)
    code, out, _ = run("models", "history", "--group", group, "--json")
    (period,) = json.loads(out)
    assert (period["model"], period["set_by"], period["reason"]) == (
        f"{model_name}/1",
        "dana",
        "storm season",
    )
    assert period["to"] is None
    code, out, _ = run("audit", "verify")
    assert code == 0, out
    with open_store(f"sqlite:///{Path.cwd() / 'pumpops.db'}") as store:
        entries = store.audit_entries()
    assert verify_chain(entries).ok
    forced = [e for e in entries if e.action == "model.promoted"]
    assert json.loads(forced[0].payload_json)["reason"] == "storm season"
    code, out, _ = run("models", "archive", f"{model_name}/1")
    assert code == 0
    code, out, _ = run("models", "list", "--json")
    mine = [r for r in json.loads(out) if r["model"] == f"{model_name}/1"]
    assert mine[0]["archived"] is True
    assert mine[0]["aliases"] == []


def test_cli_validate_stores_report_sets_challenger_and_compares_with_champion(
    runs: list[RunResult], model_name: str, fake_gates: list[dict[str, Any]]
) -> None:
    for r in runs:
        run("models", "register", "--model-dir", str(r.model_dir), "--name", model_name)
    code, out, exc = run("validate", f"{model_name}/1")
    assert code == 0, (out, exc)
    assert fake_gates[0]["champion_dir"] is None  # no champion yet
    show = json.loads(run("models", "show", f"{model_name}/1", "--json")[1])
    assert show["validation"] == "passed"
    assert show["aliases"] == [f"{show['group']}-challenger"]
    code, out, exc = run("models", "promote", f"{model_name}/1", "--group", show["group"])
    assert code == 0, (out, exc)
    code, out, exc = run("validate", f"{model_name}/2", "--against", "champion")
    assert code == 0, (out, exc)
    assert fake_gates[1]["has_champion"]  # the champion's model folder, downloaded
    assert fake_gates[1]["subject"] == f"{model_name}/2"
    second = json.loads(run("models", "show", f"{model_name}/2", "--json")[1])
    assert second["validation_against"] == f"{model_name}/1"


def test_cli_validate_failed_report_exits_1_and_blocks_promotion(
    runs: list[RunResult], model_name: str, fake_gates: list[dict[str, Any]]
) -> None:
    fake_gates.append({"fail": True})  # the fake reads its first call record: fail every time
    run("models", "register", "--model-dir", str(runs[0].model_dir), "--name", model_name)
    code, out, _ = run("validate", f"{model_name}/1")
    assert code == 1
    assert "FAIL" in out
    show = json.loads(run("models", "show", f"{model_name}/1", "--json")[1])
    assert show["validation"] == "failed"
    assert show["aliases"] == []
    _, _, exc = run("models", "promote", f"{model_name}/1", "--group", show["group"])
    assert isinstance(exc, ConfigError)


def test_cli_bad_reference_is_config_error() -> None:
    _, _, exc = run("models", "show", "no-version-here")
    assert isinstance(exc, ConfigError)


# ------------------------------------------------------------------------------ issue 11


def test_cli_model_refs_by_alias_wherever_a_model_is_named(
    runs: list[RunResult], model_name: str, fake_gates: list[dict[str, Any]]
) -> None:
    run("models", "register", "--model-dir", str(runs[0].model_dir), "--name", model_name)
    code, out, exc = run("validate", f"{model_name}/1", "--json")
    assert code == 0, (out, exc)
    group = json.loads(run("models", "show", f"{model_name}/1", "--json")[1])["group"]
    by_alias = json.loads(run("models", "show", f"{model_name}@{group}-challenger", "--json")[1])
    assert by_alias["model"] == f"{model_name}/1"
    assert json.loads(run("models", "show", f"{model_name}@challenger", "--json")[1])["model"] == (
        f"{model_name}/1"
    )  # the role alone means the group's alias
    code, out, exc = run("models", "promote", f"{model_name}@challenger")  # the group: the version's
    assert code == 0, (out, exc)
    assert f"{model_name}/1 is now {group}-champion" in out
    code, out, exc = run("validate", f"{model_name}@champion", "--against", "none")
    assert code == 0, (out, exc)
    code, out, exc = run("models", "archive", f"{model_name}@champion")
    assert code == 0, (out, exc)
    assert f"archived {model_name}/1" in out


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("models", "show", "no-version-here"), 2),  # malformed reference: usage
        (("models", "show", "nobody-has-this/1"), 4),  # not found
        (("models", "show", "nobody-has-this@champion"), 4),
        (("validate", "x/1", "--data", "/nonexistent"), 2),  # a missing --data folder: usage
        (("validate", "x/1", "--config", "/nonexistent.toml"), 2),
        (("models", "register", "--model-dir", "/nonexistent"), 2),
    ],
)
def test_cli_exit_codes_follow_the_scheme(args: tuple[str, ...], code: int) -> None:
    from pumpops.cli._root import _EXIT_CODES

    got, out, exc = run(*args)
    if isinstance(exc, SystemExit) or exc is None:
        assert got == code, (out, exc)
        return
    mapped = next(c for kind, c in _EXIT_CODES if isinstance(exc, kind))  # what pumpops.cli.main exits with
    assert mapped == code, (out, exc)


def test_cli_validate_failed_exit_code_is_1(
    runs: list[RunResult], model_name: str, fake_gates: list[dict[str, Any]]
) -> None:
    fake_gates.append({"fail": True})
    run("models", "register", "--model-dir", str(runs[0].model_dir), "--name", model_name)
    code, _, _ = run("validate", f"{model_name}/1", "--output", "csv")
    assert code == 1


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
@pytest.mark.parametrize("command", ["list", "show", "history", "events", "validate", "register"])
def test_cli_read_commands_print_table_json_or_csv(
    runs: list[RunResult],
    model_name: str,
    fake_gates: list[dict[str, Any]],
    command: str,
    fmt: str,
) -> None:
    code, out, exc = run("models", "register", "--model-dir", str(runs[0].model_dir), "--name", model_name)
    assert code == 0, (out, exc)
    group = json.loads(run("models", "show", f"{model_name}/1", "--json")[1])["group"]
    args = {
        "list": ("models", "list"),
        "show": ("models", "show", f"{model_name}/1"),
        "history": ("models", "history", "--group", group),
        "events": ("models", "events", "--model", model_name),
        "validate": ("validate", f"{model_name}/1"),
        "register": ("models", "register", "--model-dir", str(runs[0].model_dir), "--name", model_name),
    }[command]
    code, out, exc = run(*args, "--output", fmt)
    assert code == 0, (out, exc)
    if fmt == "json":
        assert json.loads(out) is not None
    elif fmt == "csv":
        header = next(csv.reader(io.StringIO(out)))
        assert header in (
            ["field", "value"],
            ["model", "group", "detector_kind", "aliases", "validation", "archived", "run_id", "created"],
            ["alias", "model", "from", "to", "set_by", "reason"],
            ["gate", "status", "reasons"],
            ["seq", "time", "kind", "subject", "payload"],
        )
    else:
        assert out.strip()
        with pytest.raises(ValueError, match="Expecting value"):
            json.loads(out)
    if command == "register" and fmt == "table":
        assert f"version 1 reused: identical model ({model_name}/1" in out


def test_cli_list_json_flag_is_output_json(runs: list[RunResult], model_name: str) -> None:
    run("models", "register", "--model-dir", str(runs[0].model_dir), "--name", model_name)
    assert json.loads(run("models", "list", "--json")[1]) == json.loads(
        run("models", "list", "--output", "json")[1]
    )


def test_cli_registry_usage_errors_touch_no_mlflow(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUMPOPS_")}
    for args in (("validate", "x/1", "--data", "/nonexistent"), ("models", "show", "bad-ref")):
        done = subprocess.run(  # a fresh process: the real start-up, the real exit code
            [sys.executable, "-m", "pumpops", "-w", str(tmp_path), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done.stderr
    assert not (tmp_path / "mlflow.db").exists()  # refused before MLflow was opened


def test_cli_events_filters_by_model_kind_and_relative_since(
    runs: list[RunResult], model_name: str, fake_gates: list[dict[str, Any]]
) -> None:
    run("models", "register", "--model-dir", str(runs[0].model_dir), "--name", model_name)
    run("validate", f"{model_name}/1")
    code, out, exc = run("models", "events", "--model", model_name, "--since", "1h", "--json")
    assert code == 0, (out, exc)
    events = json.loads(out)
    assert [e["kind"] for e in events] == ["model.registered", "model.validated"]
    assert events[0]["payload"]["model"] == f"{model_name}/1"
    mine = ("--model", model_name, "--json")
    only = json.loads(run("models", "events", "--kind", "model.validated", *mine)[1])
    assert [e["subject"] for e in only] == [f"{model_name}/1"]
    assert json.loads(run("models", "events", "--since", "2999-01-01", *mine)[1]) == []
    _, _, exc = run("models", "events", "--since", "last tuesday")
    assert isinstance(exc, ConfigError)
    assert "--since 'last tuesday'" in str(exc)
