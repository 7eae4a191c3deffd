"""The retraining chain end to end on a real store, MLflow and TUF repository (no broker needed).

Three simulated pumps of one make, 3 h of history through the ingest path;
a good recipe is trained, registered, validated, released and published; a
deliberately bad one (threshold far below the normal scores) is blocked by
validation and nothing is released for it. Both leave audit entries.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pumpops.demo._world import _history
from pumpops.retrain._chain import run_retrain
from pumpops.settings import RetrainSettings, init_workspace, load_settings
from pumpops.sim import build_fleet
from pumpops.store import open_store

H_MS = 3_600_000


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("retrain") / "ws"
    init_workspace(ws)
    (ws / "validation.toml").write_text(
        "[behaviour]\nmax_drift_alarm_rate = 1.0\nmax_normal_far = 0.2\n"
        "[measurement]\ngradual_wear = false\ncalibration_s = 1200\ntest_s = 2400\nevent_start_s = 300\n"
        "latency_runs = 10\n"
    )
    with open_store(load_settings(ws).resolved_database_url) as store:
        store.upgrade()
    subprocess.run(
        [sys.executable, "-m", "pumpops", "-w", str(ws), "keys", "init"], check=True, capture_output=True
    )
    return ws


def test_retrain_releases_a_good_candidate_and_blocks_a_bad_one(workspace: Path) -> None:
    settings = load_settings(workspace)
    fleet = tuple(d for d in build_fleet(9, 3) if d.group == "acme-ansi")
    with open_store(settings.resolved_database_url) as store:
        store.upgrade()
        store.register_devices(fleet)
    t0 = 1_790_000_000_000
    assert _history(settings, fleet, t0 - 3 * H_MS, 3.0, 3) > 0
    policy = RetrainSettings(
        window_h=3.0, targets=("x86_64-ipc",), threshold_factor=2.0, baseline_window_samples=600
    )
    told: list[str] = []
    good = run_retrain(
        settings,
        "acme-ansi",
        trigger="manual",
        actor="test",
        policy=policy,
        until_us=t0 * 1000,
        progress=told.append,
    )
    assert good.status == "released", good.reason
    assert good.steps == ["started", "trained", "validated", "released", "published"]
    # the long steps are told as they start (`pumpops retrain run` shows them on stderr)
    assert any(line.startswith("training on 3 device(s)") for line in told), told
    assert any(line.startswith(f"validating {good.model_ref}") for line in told), told
    assert any(line.startswith("building and measuring target x86_64-ipc") for line in told), told
    assert (workspace / "tuf" / "repository" / "targets" / "models" / "acme-ansi" / "x86_64-ipc").is_dir()

    bad = run_retrain(
        settings,
        "acme-ansi",
        trigger="manual",
        actor="test",
        policy=policy,
        until_us=t0 * 1000,
        config_overrides={"threshold": {"quantile": 0.5, "factor": 0.2}},
    )
    assert bad.status == "validation_failed"
    assert "false-alarm rate" in bad.reason
    assert bad.release_id is None
    with open_store(settings.resolved_database_url) as store:
        assert len(store.releases(group="acme-ansi")) == 1
        actions = [e.action for e in store.audit_entries()]
    assert "retrain.blocked" in actions
    assert actions.count("retrain.released") == 1
