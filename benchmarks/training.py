"""Training time of a group model: one day of 1 Hz data from 100 simulated pumps.

Run: ``.venv/bin/python benchmarks/training.py`` (or ``make bench``). The fleet
is one make (``acme-ansi``, so all pumps are one device group) simulated with
``pumpops.sim`` directly — no broker, no store — with its default random
faults and drift; the ground truth is used, as in production, to leave the
faults out of training. The data is handed to the real pipeline
(:func:`pumpops.pipeline.run_pipeline`, cache cold, MLflow logging off) and the
time of each step is printed as a markdown table, with the machine and date.

Steps timed: snapshot (canonical bytes, SHA-256, written once), features
(resampling onto the 1 s grid, gap filling, hygiene), fit (the group model on
every pump's normal rows), calibrate (per-pump centre, scale and threshold
from its own normal day: one ``calibrate`` per pump), export (ONNX bytes and
manifest). "Training" is features + fit + calibrate + export.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pumpops.pipeline import parse_config, run_pipeline
from pumpops.pipeline._snapshot import Dataset, Recording
from pumpops.sim import FleetSimulator, Scenario, build_fleet, to_epoch_ms, write_ground_truth

START = "2025-06-01T00:00:00Z"
STEPS = ("snapshot", "features", "fit", "calibrate", "evaluate", "export")


def simulate(devices: int, hours: float, seed: int, truth: Path) -> Dataset:
    fleet = build_fleet(devices, seed=seed, profiles=["acme-ansi"])
    scenario = Scenario(devices=fleet, start_ms=to_epoch_ms(START), duration_s=hours * 3600, seed=seed)
    write_ground_truth(truth, scenario)
    simulator = FleetSimulator(scenario)
    recordings = []
    sensors: tuple[str, ...] = ()
    for device in fleet:
        trace = simulator.device(device.device_id).trace()
        sensors = trace.sensors
        values = np.column_stack([trace.si(s) for s in sensors])
        recordings.append(Recording(device.device_id, "train", trace.ts_ms.astype(np.int64) * 1000, values))
    return Dataset(group="acme-ansi", sensors=sensors, recordings=tuple(recordings), meta={"source": "sim"})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--kinds", nargs="+", default=["pca_t2q", "isolation_forest"], help="detector kinds to time"
    )
    parser.add_argument("--window", type=int, default=30, help="features.window_samples")
    args = parser.parse_args(argv)

    print(
        f"# training benchmark — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="pumpops-train-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        dataset = simulate(args.devices, args.hours, args.seed, root / "truth.json")
        sim_s = time.perf_counter() - t0
        rows = sum(r.ts_us.size for r in dataset.recordings)
        print(
            f"# data: {args.devices} pumps x {args.hours:g} h at 1 Hz = {rows:,} rows x "
            f"{len(dataset.sensors)} sensors ({rows * len(dataset.sensors):,} readings); "
            f"simulated in {sim_s:.1f} s (not counted)"
        )
        print()
        print(
            "| detector | snapshot s | features s | fit s | calibrate s (all pumps) | export s "
            "| training s | train rows | ONNX bytes |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for kind in args.kinds:
            config = parse_config(
                {
                    "seed": args.seed,
                    "data": {
                        "source": "store",
                        "group": "acme-ansi",
                        "since": START,
                        "until": "2100-01-01T00:00:00Z",
                        "hygiene": {"ground_truth": str(root / "truth.json"), "margin_s": 300},
                    },
                    "features": {"window_samples": args.window},
                    "detector": {"kind": kind},
                    "evaluation": {"enabled": False},
                    "output": {"log": False},
                }
            )
            result = run_pipeline(config, workspace=root / kind, dataset=dataset, use_cache=False, log=False)
            t = result.timings_s
            training = sum(t.get(s, 0.0) for s in ("features", "fit", "calibrate", "export"))
            print(
                f"| {kind} | {t['snapshot']:.2f} | {t['features']:.2f} | {t['fit']:.2f} "
                f"| {t['calibrate']:.2f} "
                f"| {t['export']:.3f} | **{training:.1f}** | {result.metrics['train_rows']:,.0f} "
                f"| {result.onnx_path.stat().st_size:,} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
