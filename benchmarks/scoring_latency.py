# ruff: noqa: N806 - X is the (rows x sensors) matrix, as in the detectors
"""Per-window scoring latency of every detector: ONNX (onnxruntime, one thread) vs numpy / scikit-learn.

Run: ``.venv/bin/python benchmarks/scoring_latency.py`` (or ``make bench``).
Each detector is fitted on the first 400 rows of one SKAB experiment
(``$PUMPOPS_SKAB_DIR``; simulated data if the folder is absent) with its
benchmark setting; one call scores one window of ``W`` raw readings (batch 1),
as the edge agent does. The reference is the same model in numpy /
scikit-learn (:meth:`Detector.score_windows`). Median of many calls after a
warm-up; the model file size is the ONNX bytes.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort

from pumpops.pipeline.detectors import DETECTORS, INPUT_CENTER, INPUT_SCALE, INPUT_WINDOW, build_detector
from pumpops.pipeline.skab import BENCHMARK_SETTINGS, skab_canonical
from pumpops.sources import read_skab_csv

REPO = Path(__file__).resolve().parents[1]


def load_data(folder: Path) -> tuple[tuple[str, ...], np.ndarray, str]:
    path = folder / "valve1" / "0.csv"
    if path.is_file():
        names, X = skab_canonical(read_skab_csv(path))
        return names, X, f"SKAB {path.relative_to(folder)}"
    rng = np.random.default_rng(0)
    n = 1200
    X = np.column_stack(
        [
            0.26 + 0.01 * rng.standard_normal(n),
            0.39 + 0.01 * rng.standard_normal(n),
            1.3 + 0.05 * rng.standard_normal(n),
            4.0e4 + 2e3 * rng.standard_normal(n),
            352.0 + 0.1 * rng.standard_normal(n),
            299.0 + 0.05 * rng.standard_normal(n),
            233.0 + 2.0 * rng.standard_normal(n),
            5.3e-4 + 1e-5 * rng.standard_normal(n),
        ]
    )
    names = (
        "vibration_accel_de",
        "vibration_accel_nde",
        "motor_current",
        "discharge_pressure",
        "motor_temperature",
        "fluid_temperature",
        "motor_voltage",
        "flow_rate",
    )
    return names, X, "simulated"


def median_us(call: Callable[[], object], repeat: int) -> float:
    for _ in range(20):
        call()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1000.0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("PUMPOPS_SKAB_DIR", REPO.parent / "shared" / "datasets" / "skab")),
    )
    parser.add_argument("--repeat", type=int, default=500)
    args, _ = parser.parse_known_args(argv)
    names, X, source = load_data(args.data)
    print(
        f"Scoring latency per window (batch 1) — {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, onnxruntime {ort.__version__}, "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; data {source}\n"
    )
    print(
        "| detector | window rows × sensors | ONNX µs (1 thread) | numpy/sklearn µs | ratio numpy/ONNX "
        "| ONNX file KiB | max abs diff |"
    )
    print("|---|---|---|---|---|---|---|")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    for kind in sorted(DETECTORS):
        detector = build_detector(kind, sensors=names, **BENCHMARK_SETTINGS.get(kind, {}))
        detector.fit([X[:400]])
        cal = detector.calibrate(X[:400])
        model = detector.to_onnx()
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        windows = detector.windows(X)[-200:]
        one = windows[-1:]
        feeds = {INPUT_WINDOW: one, INPUT_CENTER: cal.center, INPUT_SCALE: cal.scale}
        onnx_us = median_us(lambda s=session, f=feeds: s.run(None, f), args.repeat)
        ref_us = median_us(lambda d=detector, w=one, c=cal: d.score_windows(w, c), args.repeat)
        got = session.run(None, {INPUT_WINDOW: windows, INPUT_CENTER: cal.center, INPUT_SCALE: cal.scale})[0]
        diff = float(np.max(np.abs(got - detector.score_windows(windows, cal))))
        print(
            f"| {kind} | {detector.input_length} × {detector.n_sensors} | {onnx_us:.1f} | {ref_us:.1f} "
            f"| {ref_us / onnx_us:.1f} | {len(model) / 1024:.1f} | {diff:.1e} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
