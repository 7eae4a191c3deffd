"""A drift-triggered retrain judged on what the drift broke (issue 15), end to end on a real workspace.

Three simulated pumps of one make, their history through the ingest path:
two hours normal, then every pump's discharge-pressure sensor recalibrated
(a constant offset) for two more hours. The first model is trained on the
normal hours and made champion. A drift-triggered run ten minutes after the
onset waits (``retrain.min_post_drift_s``); two hours after it trains on
post-drift data only, keeps the newest part out of training, and is judged by
the post-drift gate on it: the figures are in the outcome, the validation
report and the audit entry.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from pumpops.demo._world import _promote
from pumpops.fleet import Device
from pumpops.hub import ingest_service, open_workspace_store
from pumpops.retrain import run_retrain
from pumpops.settings import RetrainSettings, Settings, init_workspace, load_settings
from pumpops.sim import DriftKind, Event, FleetSimulator, Scenario, build_fleet
from pumpops.sources import SimulatorSource
from pumpops.store import open_store
from pumpops.telemetry import BrokerAddress, build_topic, encode_frame

pytestmark = pytest.mark.timeout(900)

H_MS = 3_600_000
T0 = 1_790_000_000_000  # the history starts here
ONSET = T0 + 2 * H_MS
END = T0 + 4 * H_MS
GROUP = "acme-ansi"


def _history(settings: Settings, fleet: tuple[Device, ...]) -> int:
    """Four hours through the ingest path; the discharge-pressure sensors shift at the onset."""
    probe = FleetSimulator(
        Scenario(
            devices=fleet, start_ms=T0, duration_s=60, seed=3, fault_rate_per_day=0.0, drift_rate_per_day=0.0
        )
    )
    events = tuple(
        Event(
            d.device_id,
            DriftKind.SENSOR_RECALIBRATION,
            ONSET,
            END,
            sensor="discharge_pressure",
            offset=float(probe.device(d.device_id).recalibration_scale("discharge_pressure")),
        )
        for d in fleet
    )
    scenario = Scenario(
        devices=fleet,
        start_ms=T0,
        duration_s=4 * 3600,
        seed=3,
        fault_rate_per_day=0.0,
        drift_rate_per_day=0.0,
        events=events,
    )
    stored = 0
    with open_workspace_store(settings) as store:
        service = ingest_service(settings, store, BrokerAddress("127.0.0.1", 1))
        batch: list[tuple[str, bytes]] = []
        for i, frame in enumerate(SimulatorSource(scenario, chunk_s=600.0).frames()):
            batch.append(
                (
                    build_topic("site", frame.device_id, prefix=settings.topic_prefix),
                    encode_frame(frame, f"h-{i}"),
                )
            )
            if len(batch) >= 64:
                stored += service.process(batch).committed
                batch = []
        if batch:
            stored += service.process(batch).committed
    return stored


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("postdrift") / "ws"
    init_workspace(ws)
    (ws / "validation.toml").write_text(
        "[behaviour]\nmax_drift_alarm_rate = 1.0\nmax_normal_far = 0.2\n"
        "[measurement]\ngradual_wear = false\ncalibration_s = 1200\ntest_s = 2400\nevent_start_s = 300\n"
        "latency_runs = 10\n[budgets]\nmax_latency_ms = 1000\nmax_peak_memory_mb = 4096\n"
    )
    settings = load_settings(ws)
    with open_store(settings.resolved_database_url) as store:
        store.upgrade()
    subprocess.run(
        [sys.executable, "-m", "pumpops", "-w", str(ws), "keys", "init"], check=True, capture_output=True
    )
    fleet = tuple(
        Device(d.device_id, "site", d.profile_id, d.group) for d in build_fleet(9, 3) if d.group == GROUP
    )
    with open_store(settings.resolved_database_url) as store:
        store.register_devices(fleet)
    assert _history(settings, fleet) > 0
    return ws


POLICY = RetrainSettings(
    window_h=2.0,
    targets=("x86_64-ipc",),
    threshold_factor=2.0,
    baseline_window_samples=600,
    min_post_drift_s=1800,
    post_drift_holdout_fraction=0.3,
)


def test_drift_retrain_waits_then_is_judged_on_post_drift_data(workspace: Path) -> None:
    settings = load_settings(workspace)
    first = run_retrain(
        settings, GROUP, trigger="initial", actor="test", policy=POLICY, until_us=ONSET * 1000
    )
    assert first.status == "released", first.reason
    assert first.post_drift is None  # not drift-triggered: no post-drift gate
    assert first.model_ref is not None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        _promote(settings, first.model_ref, GROUP, "test")

    early = run_retrain(
        settings,
        GROUP,
        trigger="drift",
        actor="test",
        policy=POLICY,
        until_us=(ONSET + 10 * 60_000) * 1000,
        drift_onset_us=ONSET * 1000,
    )
    assert early.status == "waiting"
    assert early.steps == ["waiting"]
    assert "600 s of data since the drift's onset" in early.reason
    assert early.model_ref is None

    run = run_retrain(
        settings,
        GROUP,
        trigger="drift",
        actor="test",
        policy=POLICY,
        until_us=END * 1000,
        drift_onset_us=ONSET * 1000,
    )
    assert run.post_drift is not None, run.reason
    figures = run.post_drift
    assert figures["holdout_rows"] > 0
    assert figures["pre_rows"] > 0
    assert figures["data"]["onset"].startswith("2026-09-21T")
    # the stale champion alarms on the shifted sensor; the candidate is back at the pre-drift level
    assert figures["stale_far"] > figures["candidate_far"], figures
    assert figures["candidate_far"] <= figures["pre_drift_far"] + 0.01, figures
    assert figures["passed"], figures["reasons"]
    assert run.status == "released", run.reason
    with open_store(settings.resolved_database_url) as store:
        entries = [e for e in store.audit_entries() if e.action in ("retrain.started", "retrain.validated")]
    started, validated = entries[-2].payload, entries[-1].payload
    # trained on post-drift data only, up to the hold-out
    assert started["post_drift"]["onset"] == started["since"]
    assert started["until"] == started["post_drift"]["holdout_since"]
    assert validated["post_drift"]["candidate_far"] == figures["candidate_far"]
