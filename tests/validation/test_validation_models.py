"""Whole validations of pipeline-trained models: a good one passes, bad ones are blocked; the CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import typer
from _valhelpers import FAST, LOOSE_BUDGETS, SENSORS, fast_config
from typer.testing import CliRunner

from pumpops.cli.validation import register
from pumpops.errors import ConfigError
from pumpops.validation import ValidationConfig, simulated_holdout, validate_model


def test_validate_good_candidate_without_champion_passes(good_model: Path) -> None:
    report = validate_model(good_model, config=fast_config())
    assert report.passed, report.to_text()
    assert report.gate("champion").reasons == ["no champion: first model of the group"]
    assert report.gate("parity").measurements["max_abs_diff"] <= 1e-4
    behaviour = report.gate("behaviour").measurements
    assert set(behaviour["fault_delays_s"]) == {
        "bearing_wear",
        "cavitation",
        "impeller_wear",
        "seal_leak",
        "valve_blockage",
    }
    assert set(behaviour["drift_alarm_rates"]) == {
        "ambient_temperature",
        "sensor_recalibration",
        "setpoint_change",
    }
    budgets = report.gate("budgets").measurements
    assert budgets["model_bytes"] == (good_model / "model.onnx").stat().st_size
    assert budgets["latency_runs"] == FAST["latency_runs"]


def test_validate_bad_candidate_fails_with_readable_reasons(bad_model: Path, good_model: Path) -> None:
    report = validate_model(bad_model, champion_dir=good_model, config=fast_config())
    assert not report.passed
    assert report.failed_gates == ["champion", "behaviour"]
    behaviour = report.gate("behaviour").reasons
    assert any(r.startswith("benign drift setpoint_change: alarm storm, ") for r in behaviour), behaviour
    assert any(r.endswith("% of rows alarmed (budget 25 %)") for r in behaviour), behaviour
    champion = report.gate("champion").reasons
    assert any(r.startswith("false-alarm rate ") and "above the champion's" in r for r in champion), champion
    text = report.to_text()
    assert "FAILED (champion, behaviour)" in text
    assert "metric           candidate    champion" in text


def test_validate_candidate_against_itself_passes_champion_gate(good_model: Path) -> None:
    report = validate_model(good_model, champion_dir=good_model, config=fast_config())
    gate = report.gate("champion")
    assert gate.passed
    assert gate.measurements["candidate"] == gate.measurements["champion"]


def test_validate_tight_budgets_fail_the_budget_gate(good_model: Path) -> None:
    config = fast_config(budgets={"max_model_bytes": 100, "max_latency_ms": 1e-6, "max_peak_memory_mb": 1e-6})
    report = validate_model(good_model, config=config)
    reasons = report.gate("budgets").reasons
    assert not report.passed
    assert any(r.startswith("model file is ") and r.endswith("budget 100 bytes") for r in reasons)
    assert any(r.startswith("per-window latency ") for r in reasons)


def test_validate_report_is_deterministic_apart_from_resources(good_model: Path) -> None:
    a = validate_model(good_model, config=fast_config())
    b = validate_model(good_model, config=fast_config())
    for name in ("parity", "champion", "behaviour"):
        assert a.gate(name).to_dict() == b.gate(name).to_dict()


def test_simulated_holdout_same_seed_same_numbers() -> None:
    m = ValidationConfig.model_validate({"measurement": FAST}).measurement
    a = simulated_holdout("acme-ansi", SENSORS, seed=3, m=m)
    b = simulated_holdout("acme-ansi", SENSORS, seed=3, m=m)
    assert [d.kind for d in a.devices] == [d.kind for d in b.devices]
    assert all((x.test.values == y.test.values).all() for x, y in zip(a.devices, b.devices, strict=True))
    roles = sorted({d.role for d in a.devices})
    assert roles == ["drift", "fault", "normal"]


def test_simulated_holdout_refuses_replay_only_group() -> None:
    m = ValidationConfig().measurement
    with pytest.raises(ConfigError, match="not a simulated make"):
        simulated_holdout("skab-testbed", ["motor_current"], seed=0, m=m)


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    register(app)
    return app


def _write_config(tmp_path: Path, extra: str = "") -> Path:
    lines = ["[measurement]"] + [f"{k} = {json.dumps(v)}" for k, v in FAST.items()]
    lines += ["[budgets]"] + [f"{k} = {json.dumps(v)}" for k, v in LOOSE_BUDGETS.items()]
    path = tmp_path / "validation.toml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def test_cli_validate_model_good_exit_0_writes_report(good_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        _app(),
        [
            "validate-model",
            "--candidate",
            str(good_model),
            "--config",
            str(_write_config(tmp_path)),
            "--simulate-seed",
            "0",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert ": PASSED" in result.output
    doc = json.loads(out.read_text())
    assert doc["passed"] is True
    assert doc["context"]["data"]["seed"] == 0


def test_cli_validate_model_bad_exit_1_json(bad_model: Path, good_model: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _app(),
        [
            "validate-model",
            "--candidate",
            str(bad_model),
            "--champion",
            str(good_model),
            "--config",
            str(_write_config(tmp_path)),
            "--json",
        ],
    )
    assert result.exit_code == 1, result.output
    doc = json.loads(result.output)
    assert doc["failed_gates"] == ["champion", "behaviour"]
    assert json.loads((bad_model / "validation-report.json").read_text()) == doc


def test_cli_validate_model_unknown_config_key_is_config_error(good_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "v.toml"
    path.write_text("[budgets]\nmax_latency = 3\n")
    result = CliRunner().invoke(
        _app(), ["validate-model", "--candidate", str(good_model), "--config", str(path)]
    )
    assert isinstance(result.exception, ConfigError)
    assert "budgets.max_latency: Extra inputs are not permitted" in str(result.exception)


def test_validate_skab_candidate_on_skab_files_behaviour_not_run(skab_model: Path, skab_small: Path) -> None:
    report = validate_model(skab_model, data=skab_small, config=fast_config())
    assert report.passed, report.to_text()
    assert report.context["data"]["kind"] == "skab"
    assert report.context["data"]["recordings"] == 3
    assert report.gate("champion").measurements["candidate"]["events"] == 3
    assert report.gate("behaviour").reasons == ["not run: group 'skab-testbed' cannot be simulated"]


def test_validate_skab_candidate_trained_on_anomalies_is_slower_than_champion(
    skab_dirty_model: Path, skab_model: Path, skab_small: Path
) -> None:
    config = fast_config(champion={"delay_tolerance_s": 10.0})
    report = validate_model(skab_dirty_model, champion_dir=skab_model, data=skab_small, config=config)
    assert report.failed_gates == ["champion"]
    (reason,) = report.gate("champion").reasons
    assert reason.startswith("mean detection delay ")
    assert reason.endswith("by more than 10 s")


def test_cli_validate_model_data_and_seed_together_is_config_error(good_model: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _app(),
        ["validate-model", "--candidate", str(good_model), "--data", str(tmp_path), "--simulate-seed", "1"],
    )
    assert isinstance(result.exception, ConfigError)
    assert "not both" in str(result.exception)


def test_validate_default_suite_blocks_model_blind_to_slow_wear(good_model: Path) -> None:
    measurement = {**FAST, "gradual_wear": True}
    report = validate_model(good_model, config=fast_config(measurement=measurement))
    assert report.failed_gates == ["behaviour"]
    (reason,) = report.gate("behaviour").reasons
    # its 5-minute baseline follows the slow ramp: the alarm comes late or never
    assert reason.startswith("fault impeller_wear: ")
    assert reason.endswith(("budget 900 s", "(budget: an alarm within 900 s)"))


def test_validate_skab_candidate_without_data_is_config_error(skab_model: Path) -> None:
    with pytest.raises(ConfigError, match=r"not a simulated make; validate it on recorded data \(--data"):
        validate_model(skab_model, config=fast_config())


def test_validate_not_a_model_folder_is_not_found(tmp_path: Path) -> None:
    from pumpops.errors import NotFoundError

    with pytest.raises(NotFoundError, match="is not a pumpops model folder"):
        validate_model(tmp_path, config=fast_config())


@pytest.mark.parametrize(
    ("option", "missing"),
    [("--candidate", "nope"), ("--champion", "nope"), ("--data", "/nonexistent"), ("--config", "none.toml")],
)
def test_cli_validate_model_missing_path_is_usage_error_before_measuring(
    good_model: Path, tmp_path: Path, option: str, missing: str
) -> None:
    args = ["validate-model", "--candidate", str(good_model), option, str(tmp_path / missing)]
    if option == "--candidate":
        args = ["validate-model", "--candidate", str(tmp_path / missing)]
    result = CliRunner().invoke(_app(), args)
    assert isinstance(result.exception, ConfigError)  # pumpops.cli.main: exit code 2
    assert f"{option} {tmp_path / missing}" in str(result.exception)


def test_cli_validate_model_not_run_gate_in_csv_and_text(
    skab_model: Path, skab_small: Path, tmp_path: Path
) -> None:
    config = _write_config(tmp_path)
    common = [
        "validate-model",
        "--candidate",
        str(skab_model),
        "--data",
        str(skab_small),
        "--config",
        str(config),
    ]
    result = CliRunner().invoke(_app(), [*common, "--output", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {r["gate"]: r["status"] for r in rows} == {
        "parity": "passed",
        "champion": "passed",
        "behaviour": "not run",
        "budgets": "passed",
    }
    text = CliRunner().invoke(_app(), common).stdout
    assert "[not run] behaviour" in text
    assert "[pass] behaviour" not in text
