"""``pumpops train`` for a new user (issue 11): one tracking URI, reused versions, the MLflow onnx
flavor, Ctrl-C, ``pipeline init``, usage errors before heavy imports, machine-readable output."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _cli import cli_app  # type: ignore[import-not-found]
from typer.testing import CliRunner

from pumpops.cli import pipeline as pipeline_cli
from pumpops.cli import registry as registry_cli
from pumpops.errors import ConfigError
from pumpops.pipeline._config import load_config

SRC = Path(__file__).resolve().parents[2] / "src"


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli_app(pipeline_cli, registry_cli), list(args))


def skab_pipeline(folder: Path, data: Path, *, seed: int = 1, extra: str = "") -> Path:
    config = folder / "pipeline.toml"
    config.write_text(
        f'seed = {seed}\n[data]\nsource = "files"\npaths = ["{data}"]\ntrain_rows = 400\n'
        "[features]\nwindow_samples = 10\nmin_segment_samples = 30\n" + extra
    )
    return config


# ------------------------------------------------------------------------ friction 1: tracking URI


def test_train_with_workspace_tracking_uri_registers_there_and_models_list_shows_it(
    workspace: Path, skab_small: Path, tmp_path: Path
) -> None:
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow.db'}"
    (tmp_path / "elsewhere").mkdir()
    settings = workspace / "pumpops.toml"  # a top-level key: before the first [table]
    settings.write_text(f'tracking_uri = "{elsewhere}"\n' + settings.read_text())
    config = skab_pipeline(workspace, skab_small)
    result = invoke("train", "--config", str(config), "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    summary = json.loads(result.stdout)
    assert summary["model"] == "pumpops-skab-testbed/1"
    assert summary["tracking_uri"] == elsewhere
    assert not (workspace / "mlflow.db").exists()  # nothing went to the default
    listed = invoke("models", "list", "--json")
    assert listed.exit_code == 0, (listed.output, listed.exception)
    assert [row["model"] for row in json.loads(listed.stdout)] == ["pumpops-skab-testbed/1"]


def test_train_tracking_uri_flag_is_used_for_logging_and_registering(
    workspace: Path, skab_small: Path, tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'flag.db'}"
    config = skab_pipeline(workspace, skab_small)
    result = invoke("train", "--config", str(config), "--tracking-uri", uri, "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    assert json.loads(result.stdout)["model"] == "pumpops-skab-testbed/1"
    listed = invoke("models", "list", "--tracking-uri", uri, "--json")
    assert [row["model"] for row in json.loads(listed.stdout)] == ["pumpops-skab-testbed/1"]


def test_pipeline_output_tracking_uri_is_refused_naming_the_workspace_setting(workspace: Path) -> None:
    config = workspace / "pipeline.toml"
    config.write_text('[data]\nsource = "files"\npaths = ["x"]\n[output]\ntracking_uri = "sqlite:///x.db"\n')
    result = invoke("train", "--config", str(config))
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert "output.tracking_uri" in str(result.exception)
    assert "pumpops.toml" in str(result.exception)


# ---------------------------------------------------------------------- friction 10: reuse versions


def test_train_same_pipeline_same_data_reuses_the_version(workspace: Path, skab_small: Path) -> None:
    config = skab_pipeline(workspace, skab_small)
    first = invoke("train", "--config", str(config), "--json")
    assert first.exit_code == 0, (first.output, first.exception)
    second = invoke("train", "--config", str(config), "--no-cache", "--json")
    assert second.exit_code == 0, (second.output, second.exception)
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert a["run_id"] != b["run_id"]  # trained and logged again ...
    assert a["onnx_sha256"] == b["onnx_sha256"]
    assert b["model"] == a["model"] == "pumpops-skab-testbed/1"  # ... but no new version
    assert "version 1 reused: identical model" in second.stderr
    listed = json.loads(invoke("models", "list", "--json").stdout)
    assert [row["model"] for row in listed] == ["pumpops-skab-testbed/1"]
    changed = skab_pipeline(workspace, skab_small, seed=2)  # another config: a new version
    third = invoke("train", "--config", str(changed), "--json")
    assert json.loads(third.stdout)["model"] == "pumpops-skab-testbed/2"
    assert "reused" not in third.stderr


# ------------------------------------------------------------------ friction 11: MLflow onnx flavor


def test_registered_model_loads_with_mlflow_onnx_flavor_and_runs(workspace: Path, skab_small: Path) -> None:
    import mlflow
    import onnxruntime as ort
    from mlflow.tracking import MlflowClient

    config = skab_pipeline(workspace, skab_small)
    result = invoke("train", "--config", str(config), "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    summary = json.loads(result.stdout)
    uri = summary["tracking_uri"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        client.set_registered_model_alias("pumpops-skab-testbed", "skab-testbed-champion", "1")
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        try:
            by_version = mlflow.onnx.load_model("models:/pumpops-skab-testbed/1")
            by_alias = mlflow.onnx.load_model("models:/pumpops-skab-testbed@skab-testbed-champion")
        finally:
            mlflow.set_tracking_uri("")
            mlflow.set_registry_uri("")
    original = Path(summary["onnx"]).read_bytes()
    assert by_version.SerializeToString() == by_alias.SerializeToString()
    session = ort.InferenceSession(by_version.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    inputs = {  # a window of readings, and the per-device centre and scale (> 0)
        spec.name: 1.0 + rng.random([d if isinstance(d, int) else 3 for d in spec.shape])
        for spec in session.get_inputs()
    }
    outputs = session.run(None, inputs)
    assert outputs
    assert np.all(np.isfinite(outputs[0]))
    reference = ort.InferenceSession(original, providers=["CPUExecutionProvider"]).run(None, inputs)
    assert np.array_equal(outputs[0], reference[0])
    # the bundle's own files are as they were: the model bytes are the pipeline's
    artifacts = {a.path for a in client.list_artifacts(summary["run_id"], "model")}
    assert {"model/MLmodel", "model/model.onnx", "model/manifest.json", "model/lineage.json"} <= artifacts


# --------------------------------------------------------------------------- friction 12: Ctrl-C


def test_train_interrupt_swallowed_by_a_library_registers_nothing(
    workspace: Path, skab_small: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pumpops.pipeline.detectors import Detector

    fit = Detector.fit

    def swallowing_fit(self: Detector, *args: Any, **kwargs: Any) -> Any:
        # what scikit-learn's MLP does: catch KeyboardInterrupt, warn, return a half-fitted model
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)
        except KeyboardInterrupt:
            pass
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(Detector, "fit", swallowing_fit)
    config = skab_pipeline(workspace, skab_small, seed=5)
    result = invoke("train", "--config", str(config), "--no-cache", "--json")
    assert result.exit_code == 130, (result.output, result.exception)
    monkeypatch.setattr(Detector, "fit", fit)
    listed = invoke("models", "list", "--json")
    assert listed.exit_code == 0, (listed.output, listed.exception)
    assert json.loads(listed.stdout) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_train_sigint_in_a_subprocess_exits_130_and_registers_nothing(
    workspace: Path, skab_small: Path, signum: int
) -> None:
    config = skab_pipeline(
        workspace,
        skab_small,
        extra='[detector]\nkind = "mlp_autoencoder"\n'
        "[detector.hyper]\nhidden = [64, 32, 64]\nmax_iter = 100000\n",
    )
    env = {**os.environ, "PYTHONPATH": str(SRC), "PUMPOPS_WORKSPACE": str(workspace)}
    command = [sys.executable, "-m", "pumpops", "-w", str(workspace), "train", "--config", str(config)]
    with subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        lines: queue.Queue[str] = queue.Queue()
        seen: list[str] = []
        reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr or ()], daemon=True)
        reader.start()
        deadline = time.monotonic() + 120
        while not any("fitting the detector" in line for line in seen):
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("train showed no fitting step: " + "".join(seen))
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=1.0))
        time.sleep(1.0)  # well inside the fit
        proc.send_signal(signum)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        reader.join(timeout=10)
    while not lines.empty():
        seen.append(lines.get())
    assert proc.returncode == 130, "".join(seen)
    listed = invoke("models", "list", "--json")
    assert json.loads(listed.stdout) == []


# --------------------------------------------------------------------- friction 13: pipeline init


def test_pipeline_init_writes_a_file_train_accepts_and_refuses_to_overwrite(
    workspace: Path, skab_small: Path
) -> None:
    target = workspace / "pipeline.toml"
    result = invoke("pipeline", "init", str(target), "--data", str(skab_small))
    assert result.exit_code == 0, (result.output, result.exception)
    text = target.read_text()
    assert text.count("#") > 20  # commented
    cfg = load_config(target)
    assert cfg.data.source == "files"
    again = invoke("pipeline", "init", str(target))
    assert isinstance(again.exception, ConfigError)
    assert "not replaced" in str(again.exception)
    assert target.read_text() == text
    trained = invoke("train", "--config", str(target), "--json")
    assert trained.exit_code == 0, (trained.output, trained.exception)
    assert json.loads(trained.stdout)["model"] == "pumpops-skab-testbed/1"


def test_pipeline_init_default_template_parses(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_app(pipeline_cli, registry_cli), ["pipeline", "init", str(tmp_path)])
    assert result.exit_code == 0, (result.output, result.exception)
    cfg = load_config(tmp_path / "pipeline.toml")
    assert cfg.data.paths == (tmp_path / "data",)


# ------------------------------------------------------------- friction 8/5: usage errors, quickly


def test_train_missing_config_is_a_usage_error(workspace: Path) -> None:
    result = invoke("train", "--config", "nope.toml")
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert "--config nope.toml: does not exist" in str(result.exception)


def test_pipeline_cli_modules_import_no_heavy_library() -> None:
    code = (
        "import sys, pumpops.cli.pipeline, pumpops.cli.benchmark, pumpops.cli.registry, "
        "pumpops.cli.validation\n"
        "heavy = [m for m in ('mlflow', 'sklearn', 'onnx', 'onnxruntime', 'sqlalchemy', 'numpy', 'pydantic')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == ""


# ----------------------------------------------------------------- friction 6: machine-readable


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_train_summary_output_formats(workspace: Path, skab_small: Path, fmt: str) -> None:
    config = skab_pipeline(workspace, skab_small, extra="[output]\nlog = false\n")
    result = invoke("train", "--config", str(config), "--output", fmt)
    assert result.exit_code == 0, (result.output, result.exception)
    if fmt == "json":
        assert json.loads(result.stdout)["model"] is None
    elif fmt == "csv":
        rows = list(csv.reader(io.StringIO(result.stdout)))
        assert rows[0] == ["field", "value"]
        assert ["model", ""] in rows
    else:
        assert "model version:   (not registered)" in result.stdout


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_show_config_output_formats(workspace: Path, fmt: str) -> None:
    config = workspace / "pipeline.toml"
    config.write_text('[data]\nsource = "files"\npaths = ["data"]\n')
    result = invoke("pipeline", "show-config", "--config", str(config), "--output", fmt)
    assert result.exit_code == 0, (result.output, result.exception)
    if fmt == "json":
        doc = json.loads(result.stdout)
        assert len(doc["config_hash"]) == 64
        assert doc["detector"]["kind"] == "pca_t2q"
    elif fmt == "csv":
        rows = list(csv.reader(io.StringIO(result.stdout)))
        assert rows[0] == ["field", "value"]
        assert "config_hash" in [r[0] for r in rows]
    else:
        assert "config hash: " in result.stdout
