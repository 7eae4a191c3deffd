"""Per-target packaging: model size and per-window latency float vs int8, int8 score deviation.

Run: ``.venv/bin/python benchmarks/release_packaging.py`` (or ``make bench``). Trains
each detector on a small SKAB subset (``$PUMPOPS_SKAB_DIR``: the label-free
recording cut to 1,200 rows and ``valve1/0.csv``; training rows 400), then for
every shipped target builds the model as packaging does (target opset and IR
version, onnxruntime basic optimisation; float = float32 where the target
prefers it, else float64) and an int8 variant (float32 then dynamic int8
quantisation of MatMul/Gemm weights). Latency: median of single-window runs
(batch 1) with onnxruntime on one thread, on this machine (not the device).
Deviation: ``max |score_int8 - score_float64| / threshold`` over the held-out
rows of every recording. "shipped" is what ``pumpops release create`` chose
with the default int8 tolerance (0.05 of the threshold).

Not named ``packaging.py``: scripts run with this folder first on
``sys.path``, and that name would shadow the ``packaging`` distribution that
onnxruntime and MLflow import.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import onnxruntime as ort

from pumpops.fleet import load_targets
from pumpops.pipeline import parse_config, run_pipeline
from pumpops.release._convert import (
    convert_opset,
    optimise_basic,
    quantise_dynamic_int8,
    set_ir_version,
    to_float32,
)
from pumpops.release._package import (
    PackageSettings,
    build_target,
    deviation,
    held_out,
    load_source,
    measure,
    score_all,
)

REPO = Path(__file__).resolve().parents[1]
DETECTORS = ("pca_t2q", "mlp_autoencoder", "isolation_forest")
RUNS = 300


def _subset(skab: Path, root: Path) -> Path:
    for name in ("anomaly-free/anomaly-free.csv", "valve1/0.csv"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if name.startswith("anomaly-free"):
            lines = (skab / name).read_bytes().splitlines(keepends=True)[:1201]
            (root / name).write_bytes(b"".join(lines))
        else:
            shutil.copyfile(skab / name, root / name)
    return root


def _train(data: Path, kind: str, out: Path) -> Path:
    config = parse_config(
        {
            "seed": 3,
            "data": {"source": "files", "paths": [str(data)], "train_rows": 400},
            "features": {"window_samples": 10, "min_segment_samples": 30},
            "detector": {"kind": kind},
            "threshold": {"quantile": 0.99, "factor": 1.2},
            "smoothing": {"k": 3, "n": 5},
            "output": {"model_dir": str(out / f"model-{kind}")},
        }
    )
    return run_pipeline(config, workspace=out / "ws", log=False).model_dir


def main() -> int:
    skab = Path(os.environ.get("PUMPOPS_SKAB_DIR", REPO.parent / "shared" / "datasets" / "skab"))
    if not (skab / "valve1" / "0.csv").is_file():
        print(f"SKAB data not found at {skab}; set PUMPOPS_SKAB_DIR", file=sys.stderr)
        return 1
    started = time.perf_counter()
    settings = PackageSettings(latency_runs=RUNS)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pumpops-bench-pkg-") as tmp:
        data = _subset(skab, Path(tmp) / "skab")
        for kind in DETECTORS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                folder = _train(data, kind, Path(tmp))
            source = load_source(folder, name=f"bench-{kind}", version=1)
            held = held_out(folder, data, max_windows=settings.max_holdout_windows)
            base = score_all(source.onnx_bytes, held)
            for target in load_targets().values():
                built = build_target(source, target, held, settings)
                try:
                    c, _ = convert_opset(source.onnx_bytes, target.max_opset)
                    c, _ = set_ir_version(c, target.max_ir_version)
                    c = optimise_basic(c)
                except Exception as exc:  # reported in the table
                    rows.append((kind, target.id, "-", "-", "-", "-", "-", f"not buildable: {exc}"[:60]))
                    continue
                fl = c
                if target.float32_preferred:
                    try:
                        fl = to_float32(c)
                    except Exception:  # float64 stays the float model
                        fl = c
                f_fig = measure(fl, held, RUNS)
                try:
                    q = quantise_dynamic_int8(to_float32(c))
                    q_fig = measure(q, held, RUNS)
                    dev = deviation(base, score_all(q, held), held.threshold)
                    q_bytes, q_ms, q_dev = (
                        str(q_fig["model_bytes"]),
                        f"{q_fig['latency_ms']:.4f}",
                        f"{dev:.3f}",
                    )
                except Exception as exc:  # reported in the table
                    q_bytes, q_ms, q_dev = "n/a", "n/a", f"n/a ({type(exc).__name__})"
                float_name = "float32" if fl is not c else "float64"
                rows.append(
                    (
                        kind,
                        target.id,
                        f"{f_fig['model_bytes']} ({float_name})",
                        q_bytes,
                        f"{f_fig['latency_ms']:.4f}",
                        q_ms,
                        q_dev,
                        built.precision if built.ok else "refused: " + "; ".join(built.problems)[:50],
                    )
                )
    print(f"# Packaging per target — {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}\n")
    print(
        f"Machine: {platform.machine()}, {platform.processor() or platform.platform()}, "
        f"{os.cpu_count()} CPUs; "
        f"Python {platform.python_version()}, onnxruntime {ort.__version__} (CPU, one thread); "
        f"latency = median of {RUNS} single-window runs on this machine, not the device.\n"
    )
    print(
        "| detector | target | float bytes | int8 bytes | float ms/window | int8 ms/window "
        "| int8 deviation (of threshold) | shipped |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
