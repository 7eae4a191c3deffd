"""Target profiles: the shipped three load; invalid profiles fail with a readable reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pumpops.cli import app
from pumpops.errors import ConfigError, NotFoundError
from pumpops.fleet import get_target, load_target, load_targets
from pumpops.settings import init_workspace

_VALID = """
id = "my-box"
arch = "x86_64"
onnxruntime_min = "1.14"
onnxruntime_max = "1.20"
max_opset = 15
max_ir_version = 8
execution_providers = ["CPUExecutionProvider"]
int8_allowed = false

[budgets]
max_model_bytes = 1000
max_latency_ms = 5.0
max_peak_memory_mb = 16.0
"""


def test_load_targets_shipped_three() -> None:
    targets = load_targets()
    assert {"x86_64-ipc", "aarch64-gateway", "armv7-controller"} <= set(targets)
    controller = targets["armv7-controller"]
    assert controller.max_opset == 13
    assert controller.int8_allowed
    assert controller.budgets.max_peak_memory_mb < targets["x86_64-ipc"].budgets.max_peak_memory_mb


def test_load_targets_workspace_profile_added(tmp_path: Path) -> None:
    (tmp_path / "my-box.toml").write_text(_VALID)
    assert get_target("my-box", [tmp_path]).budgets.max_model_bytes == 1000


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (('arch = "x86_64"', 'arch = "sparc"'), "arch 'sparc' is unknown"),
        (('onnxruntime_min = "1.14"', 'onnxruntime_min = "1.30"'), "is above onnxruntime_max"),
        (('["CPUExecutionProvider"]', '["CPUExecutionProvider", "CUDAExecutionProvider"]'), "must end with"),
        (("max_opset = 15", "max_opset = 0"), "max_opset"),
        (("max_model_bytes = 1000", "max_model_bytes = -1"), "max_model_bytes"),
        (("int8_allowed = false", 'int8_allowed = false\nsecurity_features = ["magic"]'), "unknown security"),
        (("int8_allowed = false", "int8_allowed = false\ncolour = 1"), "colour"),
    ],
)
def test_load_target_invalid_profile_rejected(tmp_path: Path, change: tuple[str, str], reason: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(_VALID.replace(*change))
    with pytest.raises(ConfigError, match=reason):
        load_target(path)


def test_load_target_not_toml_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("id = ")
    with pytest.raises(ConfigError, match="cannot read"):
        load_target(path)


def test_get_target_unknown_lists_known() -> None:
    with pytest.raises(NotFoundError, match="armv7-controller"):
        get_target("cray-1")


def test_targets_cli_list_and_show(tmp_path: Path) -> None:
    init_workspace(tmp_path)
    runner = CliRunner()
    listed = runner.invoke(app, ["--workspace", str(tmp_path), "targets", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert "armv7-controller" in listed.output
    shown = runner.invoke(app, ["--workspace", str(tmp_path), "targets", "show", "aarch64-gateway", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["max_opset"] == 17


@pytest.mark.parametrize("command", [["targets", "list"], ["targets", "show", "armv7-controller"]])
def test_targets_cli_output_formats(tmp_path: Path, command: list[str]) -> None:
    init_workspace(tmp_path)
    runner = CliRunner()
    as_json = runner.invoke(app, ["-w", str(tmp_path), *command, "--output", "json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)
    as_csv = runner.invoke(app, ["-w", str(tmp_path), *command, "-o", "csv"])
    assert as_csv.output.splitlines()[0] in (
        "target,arch,onnxruntime,opset,ir,int8,max_bytes,max_ms,max_mb",
        "field,value",
    )
    as_table = runner.invoke(app, ["-w", str(tmp_path), *command])
    assert "armv7-controller" in as_table.output


def test_release_cli_module_imports_no_heavy_library() -> None:
    """Friction 8: the command module loads typer and the CLI support only; the rest loads in the commands."""
    import subprocess
    import sys

    code = (
        "import sys, pumpops.cli.release, pumpops.cli.release_tuf\n"
        "heavy = ('mlflow', 'sklearn', 'sqlalchemy', 'onnx', 'onnxruntime', 'tuf', 'pint', 'numpy',"
        " 'pydantic', 'paho')\n"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""
