"""``pumpops agent init`` and ``pumpops agent status``: a starting file that loads, a verdict that tells."""

from __future__ import annotations

import csv
import io
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import pytest
from typer.testing import CliRunner

from pumpops.cli import app
from pumpops.cli.agent import status_verdict
from pumpops.edge._config import AgentConfig, load_agent_config
from pumpops.errors import ConfigError, NotFoundError


def test_agent_init_writes_a_file_that_loads_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "device" / "agent.toml"
    result = CliRunner().invoke(app, ["agent", "init", str(path)])
    assert result.exit_code == 0, result.output
    assert "FILL IN" in result.output
    config = load_agent_config(path)
    assert config.agent.state_dir == (path.parent / "agent-state").resolve()
    assert config.repository.trusted_root == (path.parent / "root.json").resolve()
    assert config.broker.url == "none"
    assert config.source.kind == "simulator"


def _fields(model: type[msgspec.Struct]) -> dict[str, msgspec.structs.FieldInfo]:
    return {f.name: f for f in msgspec.structs.fields(model)}


def test_agent_init_values_are_the_loader_defaults(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    CliRunner().invoke(app, ["agent", "init", str(path)])
    doc = tomllib.loads(path.read_text())
    config = load_agent_config(path)
    for section, model in (("broker", config.broker), ("upload", config.upload)):
        # keys without a default (None) are shown commented out
        shown = {k: v for k, v in msgspec.to_builtins(model).items() if v is not None}
        assert doc[section] == shown, section
    assert doc["outbox_max_bytes"] == _fields(AgentConfig)["outbox_max_bytes"].default
    for name, field in _fields(type(config.agent)).items():
        if not field.required:
            assert doc["agent"][name] == field.default, name


def test_agent_init_names_every_key_with_a_comment(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    CliRunner().invoke(app, ["agent", "init", str(path)])
    text = path.read_text()
    from pumpops.edge._config import SimEventSpec

    for section, field in _fields(AgentConfig).items():
        model = field.type
        names = {section}
        if isinstance(model, type) and issubclass(model, msgspec.Struct):
            names = set(_fields(model)) - {"events"}
        for name in names:
            line = re.search(rf"^#? ?{name} = .*#", text, re.MULTILINE)
            assert line is not None, f"{section}.{name} is not shown with a comment"
    for name in _fields(SimEventSpec):
        assert re.search(rf"^# {name} = ", text, re.MULTILINE), f"source.events {name}"


def test_agent_init_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("# mine\n")
    result = CliRunner().invoke(app, ["agent", "init", str(path)])
    assert isinstance(result.exception, ConfigError)
    assert "already exists" in str(result.exception)
    assert path.read_text() == "# mine\n"


def test_agent_init_default_path_is_agent_toml_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["agent", "init"])
    assert result.exit_code == 0, result.output
    load_agent_config(tmp_path / "agent.toml")


# -- status ------------------------------------------------------------------------------------

HEALTHY: dict[str, Any] = {
    "status": "detecting",
    "model_name": "pumpops-acme",
    "model_version": 3,
    "slot": "A",
    "execution_provider": "CPUExecutionProvider",
    "health": "ok",
    "health_reasons": [],
    "calibration": "calibrated (device)",
    "stale": False,
    "last_update_error": None,
    "outbox_depth": 0,
    "outbox_dropped": 0,
    "alarm_active": False,
    "drift_status": {"status": "ok", "drifted": [], "median_score_over_threshold": 0.4},
}

FIVE = ["discharge_pressure", "flow_rate", "motor_current", "bearing_temperature", "vibration_rms"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, "ok"),
        (
            {"drift_status": {"status": "ok", "drifted": FIVE, "median_score_over_threshold": 0.4}},
            "drifting: 5 sensors (discharge_pressure, flow_rate, motor_current",
        ),
        (
            {"drift_status": {"status": "drift", "drifted": FIVE, "median_score_over_threshold": 1.7}},
            "drifting: 5 sensors (discharge_pressure, flow_rate, motor_current, bearing_temperature, "
            "vibration_rms), median score 1.7x the threshold",
        ),
        ({"health": "rolled_back", "health_reasons": ["NaN scores"]}, "health rolled_back: NaN scores"),
        ({"stale": True}, "stale"),
        ({"last_update_error": "DownloadError: down"}, "last update failed: DownloadError: down"),
        ({"status": "no_model", "model_name": None, "health": "none"}, "no model installed"),
        (
            {"status": "calibrating", "calibration": "calibrating 10/1800"},
            "calibrating (calibrating 10/1800)",
        ),
        ({"outbox_dropped": 4}, "outbox dropped 4 messages"),
    ],
)
def test_status_verdict_names_what_is_wrong(change: dict[str, Any], expected: str) -> None:
    verdict = status_verdict({**HEALTHY, **change})
    assert expected in verdict
    assert (verdict == "ok") == (change == {})


@pytest.fixture
def agent_toml(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    CliRunner().invoke(app, ["agent", "init", str(path)])
    state_dir = tmp_path / "agent-state"
    state_dir.mkdir()
    drifting = {
        **HEALTHY,
        "drift_status": {"status": "ok", "drifted": FIVE, "median_score_over_threshold": 0.4},
    }
    (state_dir / "state.json").write_text(json.dumps(drifting))
    return path


def test_agent_status_beside_drifting_sensors_is_not_ok(agent_toml: Path) -> None:
    result = CliRunner().invoke(app, ["agent", "status", "--config", str(agent_toml)])
    assert result.exit_code == 0, result.output
    verdict_line = next(line for line in result.output.splitlines() if "verdict" in line)
    assert "drifting: 5 sensors" in verdict_line
    assert "vibration_rms" in verdict_line  # not cut off a terminal


@pytest.mark.parametrize("flags", [["--json"], ["--output", "json"], ["-o", "json"]])
def test_agent_status_json_has_the_verdict_and_the_report(agent_toml: Path, flags: list[str]) -> None:
    result = CliRunner().invoke(app, ["agent", "status", "--config", str(agent_toml), *flags])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["verdict"].startswith("drifting: 5 sensors")
    assert doc["model_version"] == 3


def test_agent_status_csv_has_a_header_row(agent_toml: Path) -> None:
    result = CliRunner().invoke(app, ["agent", "status", "--config", str(agent_toml), "--output", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output)))
    assert rows[0] == ["field", "value"]
    assert rows[1][0] == "verdict"


def test_agent_status_before_any_run_is_not_found(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    CliRunner().invoke(app, ["agent", "init", str(path)])
    result = CliRunner().invoke(app, ["agent", "status", "--config", str(path)])
    assert isinstance(result.exception, NotFoundError)


@pytest.mark.parametrize(
    ("flags", "seconds"), [(["--duration", "90s"], 90.0), (["--max-seconds", "5"], 5.0), ([], None)]
)
def test_agent_run_hands_over_to_the_lean_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: list[str], seconds: float | None
) -> None:
    execs: list[list[str]] = []

    def fake_execv(path: str, argv: list[str]) -> None:
        execs.append(argv)
        raise SystemExit(0)

    monkeypatch.setattr("os.execv", fake_execv)
    path = tmp_path / "agent.toml"
    CliRunner().invoke(app, ["agent", "init", str(path)])
    result = CliRunner().invoke(app, ["agent", "run", "--config", str(path), *flags, "-v"])
    assert result.exit_code == 0, result.output
    (argv,) = execs
    assert argv[1:5] == ["-m", "pumpops.edge", "--config", str(path)]
    assert argv[-1] == "--verbose"
    assert (float(argv[argv.index("--max-seconds") + 1]) if "--max-seconds" in argv else None) == seconds


@pytest.mark.parametrize(
    ("flags", "seconds"), [(["--duration", "90s"], 90.0), (["--max-seconds", "5"], 5.0), ([], None)]
)
def test_lean_entry_point_runs_the_agent_for_the_duration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: list[str], seconds: float | None
) -> None:
    import pumpops.edge as agent_module
    from pumpops.edge._run import main

    seen: list[float | None] = []

    class FakeAgent:
        def __init__(self, config: AgentConfig) -> None:
            self.config = config

        def run(self, *, max_seconds: float | None = None) -> int:
            seen.append(max_seconds)
            return 0

    monkeypatch.setattr(agent_module, "Agent", FakeAgent)
    monkeypatch.setattr("logging.basicConfig", lambda **_: None)  # leave the test process's logging alone
    path = tmp_path / "agent.toml"
    CliRunner().invoke(app, ["agent", "init", str(path)])
    assert main(["--config", str(path), *flags]) == 0
    assert seen == [seconds]


def test_agent_run_with_bad_settings_fails_before_handing_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.execv", lambda *_: pytest.fail("must not hand over"))
    path = tmp_path / "agent.toml"
    path.write_text("[agent]\ndevice_id = 3\n")
    result = CliRunner().invoke(app, ["agent", "run", "--config", str(path)])
    assert isinstance(result.exception, ConfigError)  # the root command maps it to exit code 2
    assert "agent.device_id: Expected `str`, got `int`" in str(result.exception)


def test_lean_entry_point_bad_settings_exit_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pumpops.edge._run import main

    monkeypatch.setattr("logging.basicConfig", lambda **_: None)
    path = tmp_path / "agent.toml"
    CliRunner().invoke(app, ["agent", "init", str(path)])
    path.write_text(path.read_text().replace("health_windows = 32", "health_windows = 0"))
    assert main(["--config", str(path)]) == 2
    assert "agent.health_windows" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["--config", str(path), "--duration", "soon"])
    assert stop.value.code == 2


def test_agent_run_bad_duration_is_a_usage_error_naming_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    CliRunner().invoke(app, ["agent", "init", str(path)])
    result = CliRunner().invoke(app, ["agent", "run", "--config", str(path), "--duration", "soon"])
    assert result.exit_code == 2, result.output
    assert "--duration" in result.output
