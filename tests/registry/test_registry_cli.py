"""``pumpops models ...`` and ``pumpops validate`` through ``pumpops.cli.app`` (store only, no broker)."""

from __future__ import annotations

import json
from pathlib import Path
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
    monkeypatch.chdir(tmp_path)
    for name in ("PUMPOPS_DATABASE_URL", "PUMPOPS_WORKSPACE", "PUMPOPS_ACTOR", "PUMPOPS_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PUMPOPS_MLFLOW_URI", tracking_uri)


def run(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output, result.exception


class FakeReport:
    """What ``validate_model`` returns, as far as the registry uses it."""

    def __init__(self, passed: bool) -> None:
        self.passed = passed

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
    assert "releases: none" in out  # not packaged yet


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
