"""Done-when of the registry: trained → registered → validated by the real gates → promoted → traced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pumpops.cli import app
from pumpops.errors import ConfigError
from pumpops.pipeline import RunResult


@pytest.fixture(autouse=True)
def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str) -> None:
    from pumpops.settings import init_workspace

    monkeypatch.chdir(tmp_path)
    for name in ("PUMPOPS_DATABASE_URL", "PUMPOPS_WORKSPACE", "PUMPOPS_ACTOR", "PUMPOPS_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    init_workspace(tmp_path)
    monkeypatch.setenv("PUMPOPS_MLFLOW_URI", tracking_uri)  # the legacy variable is still read


def run(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.exception


def test_end_to_end_register_validate_promote_trace(
    runs: list[RunResult], model_name: str, skab_tiny: Path
) -> None:
    for r in runs:
        code, out, exc = run("models", "register", "--model-dir", str(r.model_dir), "--name", model_name)
        assert code == 0, (out, exc)
    first, second = f"{model_name}/1", f"{model_name}/2"
    code, out, exc = run("validate", first, "--data", str(skab_tiny), "--actor", "qa")
    assert code == 0, (out, exc)  # the first model of a group has no champion to beat
    group = json.loads(run("models", "show", first, "--json")[1])["group"]
    code, out, exc = run("models", "promote", first, "--group", group, "--actor", "lead")
    assert code == 0, (out, exc)
    code, out, exc = run("validate", second, "--data", str(skab_tiny), "--against", "champion")
    assert code in (0, 1), (out, exc)
    shown = json.loads(run("models", "show", second, "--json")[1])
    assert shown["parent"] == "none"  # registered before the first was champion
    assert shown["validation"] == ("passed" if code == 0 else "failed")
    assert shown["validation_against"] == first
    assert len(shown["validation_sha256"]) == 64
    if code == 1:  # worse than the champion: blocked
        _, _, refused = run("models", "promote", second, "--group", group)
        assert isinstance(refused, ConfigError)
    history = json.loads(run("models", "history", "--group", group, "--json")[1])
    champions = [h for h in history if h["alias"] == f"{group}-champion"]
    assert [(h["model"], h["set_by"], h["to"]) for h in champions] == [(first, "lead", None)]
    code, out, _ = run("audit", "verify")
    assert code == 0, out
