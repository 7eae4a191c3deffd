"""Helpers for the validation tests (importable by name): train small models with the real pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pumpops.pipeline import parse_config, run_pipeline
from pumpops.pipeline._snapshot import Dataset, Recording
from pumpops.sim import AmbientModel, Event, FaultKind, FleetSimulator, Scenario, build_fleet
from pumpops.validation import ValidationConfig

START_MS = 1_748_736_000_000  # 2025-06-01T00:00:00Z
GROUP = "acme-ansi"
HOURS = 2.0
SENSORS = (
    "suction_pressure",
    "discharge_pressure",
    "flow_rate",
    "motor_speed",
    "motor_current",
    "motor_voltage",
    "motor_temperature",
    "bearing_temperature",
    "vibration_velocity",
)
#: the simulated suite shortened for tests: 20 min to calibrate, 60 min scored, events from minute 5;
#: wear steps in (the small test models, with a 5-minute baseline, cannot see a 40-minute ramp)
FAST = {
    "calibration_s": 1200.0,
    "test_s": 3600.0,
    "event_start_s": 300.0,
    "latency_runs": 50,
    "gradual_wear": False,
}


#: timing is measured but never asserted by a unit test (DESIGN: quality bars): budgets no CPU misses
LOOSE_BUDGETS = {"max_latency_ms": 1000.0, "max_peak_memory_mb": 4096.0}


def fast_config(**sections: dict[str, object]) -> ValidationConfig:
    """The shortened suite with loose time and memory budgets; ``sections`` override whole sections."""
    return ValidationConfig.model_validate({"measurement": FAST, "budgets": LOOSE_BUDGETS, **sections})


def sim_dataset(*, faulty: bool, drift: bool = True, n_devices: int = 4, hours: float = HOURS) -> Dataset:
    """Training data from the simulator; ``faulty``: every device is in a fault most of the time."""
    devices = build_fleet(n_devices, seed=11, profiles=[GROUP])
    end = START_MS + round(hours * 3_600_000)
    kinds = list(FaultKind)
    events = []
    if faulty:
        for i, device in enumerate(devices):
            for j in range(2):
                kind = kinds[(i + 2 * j) % len(kinds)]
                a = START_MS + round((0.05 + 0.5 * j) * hours * 3_600_000)
                b = START_MS + round((0.5 + 0.5 * j) * hours * 3_600_000)
                events.append(Event(device.device_id, kind, a, min(b, end), severity=1.0))
    scenario = Scenario(
        devices=devices,
        start_ms=START_MS,
        duration_s=hours * 3600,
        seed=21,
        fault_rate_per_day=0.0,
        drift_rate_per_day=24.0 if drift else 0.0,  # benign drift is normal: the model must learn it
        drift_duration_s=(600.0, 1800.0),
        ambient=AmbientModel() if drift else None,
        events=tuple(events),
    )
    simulator = FleetSimulator(scenario)
    first = simulator.device(devices[0].device_id).trace()
    sensors = first.sensors
    recordings = []
    for device in devices:
        trace = simulator.device(device.device_id).trace()
        values = np.column_stack([trace.si(s) for s in sensors])
        recordings.append(Recording(device.device_id, "train", trace.ts_ms.astype(np.int64) * 1000, values))
    return Dataset(group=GROUP, sensors=tuple(sensors), recordings=tuple(recordings), meta={"sim": faulty})


def train(workspace: Path, *, faulty: bool, careless: bool = False, seed: int = 1) -> Path:
    """Train a pca_t2q model with the pipeline on simulated data and return its model folder.

    ``careless``: no benign drift in the training data and no detrending, the
    mistakes that make a model alarm for every set-point change.
    """
    detrend = {"baseline_window_samples": 300, "detrend": list(SENSORS)}  # each sensor minus its 5-min mean
    config = parse_config(
        {
            "seed": seed,
            "data": {
                "source": "store",
                "group": GROUP,
                "since": "2025-06-01T00:00:00Z",
                "until": "2025-06-01T01:00:00Z",
            },
            "features": {
                "window_samples": 10,
                "min_segment_samples": 30,
                **({} if careless else detrend),
            },
            "detector": {"kind": "pca_t2q"},
            "threshold": {"quantile": 0.999, "factor": 2.0},
            "smoothing": {"k": 5, "n": 10},
            "evaluation": {"enabled": False},
            "output": {"log": False, "model_dir": str(workspace / "model")},
        }
    )
    result = run_pipeline(
        config, workspace=workspace, dataset=sim_dataset(faulty=faulty, drift=not careless), log=False
    )
    return result.model_dir
