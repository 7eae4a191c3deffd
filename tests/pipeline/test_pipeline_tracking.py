"""MLflow tracking: no network, no telemetry; lineage facts; parameter flattening."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pumpops.pipeline._tracking import (
    CodeRevision,
    code_revision,
    flatten_params,
    package_set,
    package_set_hash,
    resolve_tracking_uri,
)


def test_log_run_makes_no_network_connection(tmp_path: Path, tracking_uri: str) -> None:
    # A fresh interpreter (MLflow decides on telemetry at import) in which any
    # non-Unix socket connection fails: logging a run must still work.
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(b"onnx")
    script = textwrap.dedent(
        f"""
        import socket, warnings
        warnings.simplefilter("error")
        def refuse(self, address, *a, **k):
            if self.family != socket.AF_UNIX:
                raise OSError(f"network connection attempted: {{address}}")
            return real(self, address, *a, **k)
        real = socket.socket.connect
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        from pathlib import Path
        from pumpops.pipeline._tracking import log_run
        run_id, _ = log_run(tracking_uri={tracking_uri!r}, workspace=Path({str(tmp_path)!r}),
                            experiment="no-network", run_name="r", params={{"a": {{"b": 1}}}},
                            metrics={{"f1": 0.5}}, tags={{"t": "v"}},
                            artifacts=[("model", Path({str(artifact)!r}))])
        from mlflow.telemetry.client import get_telemetry_client
        assert get_telemetry_client() is None, "MLflow telemetry is on"
        print(run_id)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip()) == 32


def test_tracking_uri_precedence_is_the_workspace_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pumpops.settings import init_workspace, load_settings

    for name in ("PUMPOPS_MLFLOW_URI", "PUMPOPS_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    init_workspace(tmp_path)
    assert resolve_tracking_uri(tmp_path) == f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    monkeypatch.setenv("PUMPOPS_MLFLOW_URI", "http://legacy")
    assert resolve_tracking_uri(tmp_path) == "http://legacy"
    (tmp_path / "pumpops.toml").write_text('tracking_uri = "http://toml"\n')
    assert resolve_tracking_uri(tmp_path) == "http://toml"
    monkeypatch.setenv("PUMPOPS_TRACKING_URI", "http://env")
    assert resolve_tracking_uri(tmp_path) == "http://env"
    assert resolve_tracking_uri(tmp_path, cli="http://cli") == "http://cli"
    assert resolve_tracking_uri(load_settings(tmp_path, tracking_uri="http://flag")) == "http://flag"


def test_code_revision_outside_git_is_unknown(tmp_path: Path) -> None:
    assert code_revision(tmp_path) == CodeRevision("unknown", None)
    assert code_revision(tmp_path).as_tags()["pumpops.code_dirty"] == "unknown"


def test_package_set_is_sorted_and_hashed() -> None:
    names = package_set()
    assert list(names) == sorted(names)
    assert any(n.startswith("numpy==") for n in names)
    assert len(package_set_hash()) == 64


def test_flatten_params_dotted_keys() -> None:
    assert flatten_params({"x": {"y": (1, 2)}, "z": None}) == {"x.y": "[1, 2]", "z": "None"}
