"""Fixtures for the pipeline tests: one MLflow tracking DB per session, small SKAB and fleet data."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

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


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh workspace (pumpops.toml, own MLflow database) as the current directory; no PUMPOPS_* set."""
    from pumpops.settings import init_workspace

    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.chdir(ws)
    for name in (
        "PUMPOPS_WORKSPACE",
        "PUMPOPS_DATABASE_URL",
        "PUMPOPS_MLFLOW_URI",
        "PUMPOPS_TRACKING_URI",
        "PUMPOPS_BROKER_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    init_workspace(ws)
    return ws


SKAB_HEADER = (
    "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;Thermocouple;"
    "Voltage;Volume Flow RateRMS"
)


def write_skab_file(
    path: Path,
    seed: int,
    *,
    rows: int = 700,
    fault: tuple[int, int] = (500, 600),
    drop: float = 20.0,
    labelled: bool = True,
    stamps: Sequence[str] | None = None,
    unlabelled_flow: Literal["normal", "flat", "with_drop"] = "normal",
    newline: str = "\n",
) -> list[str]:
    """Write one SKAB-format experiment: eight noisy sensors, the flow dropping by ``drop`` over ``fault``.

    Rows are one second apart from 2020-03-09 10:00 plus ``seed`` hours unless ``stamps`` are given.
    A labelled file has ``anomaly`` (1 inside ``fault``) and ``changepoint`` (1 at both ends) columns.
    An unlabelled file's flow is noise (``normal``), its first value throughout (``flat``) or noise with
    the drop (``with_drop``). Returns the time stamps written.
    """
    rng = np.random.default_rng(seed)
    if stamps is None:
        start = datetime(2020, 3, 9, 10, 0, 0) + timedelta(hours=seed)
        stamps = [(start + timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S") for i in range(rows)]
    begin, end = fault
    flow = 32.0 + 0.5 * rng.standard_normal(rows)
    if labelled or unlabelled_flow != "normal":
        flow[begin:end] -= drop
    if not labelled and unlabelled_flow == "flat":
        flow[:] = flow[0]
    lines = [SKAB_HEADER + (";anomaly;changepoint" if labelled else "")]
    for i in range(rows):
        cells = [
            stamps[i],
            f"{0.027 + 0.001 * rng.standard_normal():.6f}",
            f"{0.040 + 0.001 * rng.standard_normal():.6f}",
            f"{1.3 + 0.05 * rng.standard_normal():.5f}",
            f"{0.4 + 0.05 * rng.standard_normal():.5f}",
            f"{79.0 + 0.1 * rng.standard_normal():.4f}",
            f"{26.0 + 0.05 * rng.standard_normal():.4f}",
            f"{233.0 + 2.0 * rng.standard_normal():.3f}",
            f"{flow[i]:.3f}",
        ]
        if labelled:
            cells += [f"{1.0 if begin <= i < end else 0.0}", f"{1.0 if i in (begin, end) else 0.0}"]
        lines.append(";".join(cells))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(newline.join(lines) + newline, encoding="ascii")
    return list(stamps)


@pytest.fixture
def write_skab() -> Callable[..., list[str]]:
    """:func:`write_skab_file`, for test modules (conftest is not importable by name here)."""
    return write_skab_file


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
