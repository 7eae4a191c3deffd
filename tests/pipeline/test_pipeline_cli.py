"""``pumpops train`` and ``pumpops pipeline show-config`` on a root command with only this part's commands."""

from __future__ import annotations

import json
from pathlib import Path

from _cli import cli_app  # type: ignore[import-not-found]
from typer.testing import CliRunner

from pumpops.cli import pipeline as pipeline_cli
from pumpops.errors import ConfigError


def invoke(*args: str) -> tuple[int, str, BaseException | None]:
    """Run a command; the output is stdout only (progress goes to stderr)."""
    result = CliRunner().invoke(cli_app(pipeline_cli), list(args))
    return result.exit_code, result.stdout, result.exception


def test_train_skab_files_prints_summary(workspace: Path, skab_small: Path, tracking_uri: str) -> None:
    config = workspace / "pipeline.toml"
    config.write_text(
        f'seed = 1\n[data]\nsource = "files"\npaths = ["{skab_small}"]\ntrain_rows = 400\n'
        "[features]\nwindow_samples = 10\nmin_segment_samples = 30\n"
    )
    code, out, exc = invoke("train", "--config", str(config), "--tracking-uri", tracking_uri, "--json")
    assert code == 0, (out, exc)
    summary = json.loads(out)
    assert len(summary["dataset_digest"]) == 64
    assert summary["run_id"]
    assert Path(summary["onnx"]).is_file()
    assert summary["metrics"]["events"] == 3
    assert (workspace / "snapshots" / summary["dataset_digest"]).is_dir()
    code, out, exc = invoke("train", "--config", str(config), "--tracking-uri", tracking_uri)
    assert code == 0, (out, exc)
    assert "run id" in out
    assert summary["dataset_digest"] in out
    assert "fit cached" in out


def test_train_records_snapshot_and_run_in_the_audit_trail(
    workspace: Path, skab_small: Path, tracking_uri: str
) -> None:
    from pumpops.audit import verify_chain
    from pumpops.store import open_store

    config = workspace / "pipeline.toml"  # seed 2: not the model another test registered (it would be reused)
    config.write_text(
        f'seed = 2\n[data]\nsource = "files"\npaths = ["{skab_small}"]\ntrain_rows = 400\n'
        "[features]\nwindow_samples = 10\nmin_segment_samples = 30\n"
    )
    args = ("train", "--config", str(config), "--tracking-uri", tracking_uri, "--json", "--actor", "ann@hq")
    code, out, exc = invoke(*args)
    assert code == 0, (out, exc)
    summary = json.loads(out)
    with open_store(f"sqlite:///{workspace / 'pumpops.db'}") as store:
        entries = store.audit_entries()
    assert summary["model"].startswith("pumpops-skab-testbed/")  # every logged model is registered
    assert [(e.action, e.subject, e.actor) for e in entries] == [
        ("dataset.snapshot", f"dataset/{summary['dataset_digest']}", "ann@hq"),
        ("training.run", f"run/{summary['run_id']}", "ann@hq"),
        ("model.registered", summary["model"], "ann@hq"),
    ]
    assert entries[0].payload["written"] is True
    assert entries[1].payload["onnx_sha256"] == summary["onnx_sha256"]
    assert verify_chain(entries).ok


def test_train_store_group_on_simulated_fleet(
    workspace: Path, fleet_store: tuple[str, Path], tracking_uri: str
) -> None:
    url, truth = fleet_store
    config = workspace / "pipeline.toml"
    config.write_text(
        "[data]\n"
        'source = "store"\ngroup = "acme-ansi"\n'
        "since = 2025-06-01T00:00:00Z\nuntil = 2025-06-01T03:00:00Z\n"
        f'[data.hygiene]\nground_truth = "{truth}"\nmargin_s = 60\n'
        "[evaluation]\nsince = 2025-06-01T03:00:00Z\nuntil = 2025-06-01T04:00:00Z\n"
        "[smoothing]\nk = 5\nn = 10\n"
    )
    code, out, exc = invoke(
        "train", "--config", str(config), "--db", url, "--tracking-uri", tracking_uri, "--json"
    )
    assert code == 0, (out, exc)
    summary = json.loads(out)
    assert summary["devices"] == 3
    assert summary["metrics"]["events"] == 3
    assert Path(summary["onnx"]).is_file()
    manifest = json.loads((Path(summary["model_dir"]) / "manifest.json").read_text())
    assert manifest["group"] == "acme-ansi"
    calibrations = json.loads((Path(summary["model_dir"]) / "calibrations.json").read_text())
    assert sorted(calibrations["devices"]) == ["p-0001", "p-0002", "p-0003"]


def test_train_bad_config_is_config_error_naming_key(workspace: Path) -> None:
    config = workspace / "pipeline.toml"
    config.write_text(
        '[data]\nsource = "files"\npaths = ["x"]\n[threshold]\nquantile = 2.0\ncolour = "red"\n'
    )
    code, _, exc = invoke("train", "--config", str(config))
    assert code != 0
    assert isinstance(exc, ConfigError)
    assert "threshold.quantile" in str(exc)
    assert "threshold.colour: unknown key" in str(exc)


def test_show_config_prints_defaults_and_hash(workspace: Path) -> None:
    config = workspace / "pipeline.toml"
    config.write_text('[data]\nsource = "files"\npaths = ["data"]\n')
    code, out, exc = invoke("pipeline", "show-config", "--config", str(config))
    assert code == 0, (out, exc)
    assert '"kind": "pca_t2q"' in out
    assert "config hash: " in out


def test_calibrate_new_pump_against_group_model(
    workspace: Path, fleet_store: tuple[str, Path], tracking_uri: str
) -> None:
    url, truth = fleet_store
    config = workspace / "pipeline.toml"
    config.write_text(
        "[data]\n"
        'source = "store"\ngroup = "acme-ansi"\ndevices = ["p-0001", "p-0002"]\n'
        "since = 2025-06-01T00:00:00Z\nuntil = 2025-06-01T03:00:00Z\n"
        f'[data.hygiene]\nground_truth = "{truth}"\n'
        "[evaluation]\nenabled = false\n[output]\nlog = false\n"
    )
    code, out, exc = invoke("train", "--config", str(config), "--db", url, "--json")
    assert code == 0, (out, exc)
    model_dir = Path(json.loads(out)["model_dir"])
    before = json.loads((model_dir / "calibrations.json").read_text())["devices"]
    assert sorted(before) == ["p-0001", "p-0002"]
    code, out, exc = invoke(
        "pipeline", "calibrate", "--model-dir", str(model_dir), "--device", "p-0003",
        "--since", "2025-06-01T00:00:00Z", "--until", "2025-06-01T03:00:00Z", "--db", url,
    )  # fmt: skip
    assert code == 0, (out, exc)
    assert "calibrated p-0003" in out
    after = json.loads((model_dir / "calibrations.json").read_text())["devices"]
    assert sorted(after) == ["p-0001", "p-0002", "p-0003"]
    assert after["p-0001"] == before["p-0001"]
    # its fault (20 min) and 2 x 300 s of margin are not part of its normal period
    assert after["p-0003"]["n_rows"] == 3 * 3600 - 20 * 60 - 600


def test_calibrate_bad_time_is_config_error_naming_the_flag(workspace: Path) -> None:
    code, _, exc = invoke(
        "pipeline", "calibrate", "--model-dir", str(workspace), "--device", "p-1",
        "--since", "yesterday-ish", "--until", "2025-06-01T03:00:00Z", "--database-url", "sqlite://",
    )  # fmt: skip
    assert code != 0
    assert isinstance(exc, ConfigError)
    assert "--since 'yesterday-ish'" in str(exc)


def test_show_config_checks_detector_hyper_parameters(workspace: Path) -> None:
    config = workspace / "pipeline.toml"
    config.write_text('[data]\nsource = "files"\npaths = ["data"]\n[detector.hyper]\nvariance = 7.0\n')
    code, _, exc = invoke("pipeline", "show-config", "--config", str(config))
    assert code != 0
    assert isinstance(exc, ConfigError)
    assert "variance" in str(exc)
