"""Fixtures for the pipeline tests: one MLflow tracking DB per session, small SKAB and fleet data."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from pumpops.schema import ReadingBatch
from pumpops.sim import Event, FaultKind, FleetSimulator, Scenario, build_fleet, write_ground_truth
from pumpops.store import open_store

START_MS = 1_748_736_000_000  # 2025-06-01T00:00:00Z
HOUR_MS = 3_600_000
SKAB_FILES = ("anomaly-free/anomaly-free.csv", "valve1/0.csv", "valve1/1.csv", "valve2/0.csv")


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow tracking database for the whole session (creating one takes about 2 s)."""
    folder = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture(scope="session")
def skab_small(skab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of four SKAB files (one label-free, three labelled) in their sub-folders."""
    root = tmp_path_factory.mktemp("skab")
    for name in SKAB_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        # the anomaly-free file is long: its first 2,000 rows are plenty here
        src = skab_dir / name
        if name.startswith("anomaly-free"):
            lines = src.read_bytes().splitlines(keepends=True)[:2001]
            (root / name).write_bytes(b"".join(lines))
        else:
            shutil.copyfile(src, root / name)
    return root


def fleet_scenario(n_devices: int = 3, hours: float = 4.0) -> Scenario:
    """One make, no random events; a bearing fault on every device in hour 1 and one in hour 3."""
    devices = build_fleet(n_devices, seed=1, profiles=["acme-ansi"])
    events = []
    for i, device in enumerate(devices):
        events.append(
            Event(
                device.device_id,
                FaultKind.BEARING_WEAR,
                START_MS + HOUR_MS + i * 60_000,
                START_MS + HOUR_MS + (20 + i) * 60_000,
                severity=1.0,
            )
        )
        events.append(
            Event(
                device.device_id,
                FaultKind.VALVE_BLOCKAGE,
                START_MS + 3 * HOUR_MS + 10 * 60_000,
                START_MS + 3 * HOUR_MS + 40 * 60_000,
                severity=1.0,
            )
        )
    return Scenario(
        devices=devices,
        start_ms=START_MS,
        duration_s=hours * 3600,
        seed=5,
        fault_rate_per_day=0.0,
        drift_rate_per_day=0.0,
        ambient=None,
        events=tuple(events),
    )


def fill_store(url: str, scenario: Scenario, chunk_rows: int = 3600) -> None:
    """Simulate a scenario and write its readings (canonical SI) straight into the store."""
    simulator = FleetSimulator(scenario)
    with open_store(url) as store:
        store.upgrade()
        store.register_devices(scenario.devices)
        for device in scenario.devices:
            trace = simulator.device(device.device_id).trace()
            values = np.column_stack([trace.si(s) for s in trace.sensors])
            ts_us = trace.ts_ms.astype(np.int64) * 1000
            batches = []
            for i in range(0, ts_us.size, chunk_rows):
                digest = hashlib.sha256(f"{device.device_id}-{i}".encode()).hexdigest()
                batches.append(
                    ReadingBatch(
                        device.device_id,
                        f"m-{i}",
                        digest,
                        ts_us[i : i + chunk_rows],
                        trace.sensors,
                        values[i : i + chunk_rows],
                        0,
                    )
                )
            store.write_batches(batches)


@pytest.fixture(scope="session")
def fleet_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A SQLite store with 3 simulated pumps × 4 h at 1 Hz, and the scenario's ground truth."""
    folder = tmp_path_factory.mktemp("fleet")
    url = f"sqlite:///{folder / 'store.db'}"
    scenario = fleet_scenario()
    fill_store(url, scenario)
    truth = folder / "truth.json"
    write_ground_truth(truth, scenario)
    return url, truth
