"""SKAB with its published protocol, for every detector kind, in one markdown table.

Run: ``.venv/bin/python benchmarks/skab.py`` (or ``make bench``). The data
folder is ``$PUMPOPS_SKAB_DIR`` (default ``<repo>/../shared/datasets/skab``).
Each detector runs with its one global benchmark setting
(``pumpops.pipeline.skab.BENCHMARK_SETTINGS``); alarms come from the exported
ONNX model (onnxruntime, one thread), the column "parity" is the largest
difference between ONNX and numpy scores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from pumpops.pipeline.detectors import DETECTORS
from pumpops.pipeline.skab import BENCHMARK_SETTINGS, DEFAULT_DETECTOR, SkabRun, leaderboard_table, run_skab

REPO = Path(__file__).resolve().parents[1]


def machine() -> str:
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("PUMPOPS_SKAB_DIR", REPO.parent / "shared" / "datasets" / "skab")),
    )
    parser.add_argument("--detector", action="append", help="only these kinds (repeatable)")
    args, _ = parser.parse_known_args(argv)
    if not args.data.is_dir():
        print(f"SKAB data not found at {args.data}; set PUMPOPS_SKAB_DIR")
        return 0
    kinds = args.detector or sorted(DETECTORS)
    print(f"SKAB benchmark — {machine()}; data {args.data}\n")
    print(
        "| detector | files | F1 | FAR % | MAR % | NAB std | NAB LowFP | NAB LowFN | CPs | missed "
        "| FP CPs | delay s | parity | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    settings = {}
    for kind in kinds:
        started = time.perf_counter()
        run = run_skab([args.data], detector=kind)
        m = SkabRun.summary(run.files)
        settings[kind] = run.settings
        name = f"**{kind}** (default)" if kind == DEFAULT_DETECTOR else kind
        print(
            f"| {name} | {m['files']} | {m['f1']:.3f} | {m['far']:.2f} | {m['mar']:.2f} "
            f"| {m['nab_standard']:.2f} "
            f"| {m['nab_lowfp']:.2f} | {m['nab_lowfn']:.2f} | {m['changepoints']} | {m['missed']} "
            f"| {m['false_positives']} | {m['mean_delay_s']:.1f} | {m['onnx_parity']:.1e} "
            f"| {time.perf_counter() - started:.1f} |",
            flush=True,
        )
    print("\nSettings (one per detector, for every file):\n")
    for kind in kinds:
        print(
            f"- `{kind}`: `{json.dumps(settings[kind] or BENCHMARK_SETTINGS.get(kind, {}), sort_keys=True)}`"
        )
    print("\nPublished leaderboard (all 34 upstream experiments; this copy has only the valve ones):\n")
    print(leaderboard_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
