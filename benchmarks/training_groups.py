"""Per-group training of many groups: one after the other against a 2-worker local Dask cluster (issue 18).

Run: ``.venv/bin/python benchmarks/training_groups.py [--groups 30] [--workers 2] [--hours 2]``.

A fleet of one make split into ``--groups`` device groups of ``--devices``
pumps each (``build_fleet(groups_per_profile=...)``) is simulated for
``--hours`` at 1 Hz with its random faults and drift, written into a SQLite
store (as ingest would), with the ground truth kept out of training as in
production. Then the same 30 pipeline configs (the retrain chain's: store
source, the group, its window, hygiene from the ground truth) are trained in
the same run, each way with a cold cache in its own workspace and its own
MLflow database, every run logged:

- ``sequential``: :func:`pumpops.pipeline.train_groups` with ``scheduler="sequential"``
  (this process, one group after another: what the hub does today);
- ``dask``: the same call with ``scheduler="local"`` and ``--workers`` worker processes;
- ``plain processes`` (``--ceiling``): no Dask at all, ``--workers`` ordinary
  processes started with Dask's worker environment (one BLAS/OpenMP thread),
  each training its share of the groups one after another into the same store
  and tracking database, released together after their warm-up: what
  ``--workers`` processes can do on this machine without any scheduler, i.e.
  the ceiling for the Dask figure (same cores, same memory, same clock).

It prints a table: wall time of the groups (cluster start-up apart), CPU
seconds of this process and its children (workers included), the speed-up,
whether both ways produced the same ONNX bytes for every group, and the MLflow
runs per group; the load average before and after, since the machine is shared.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import platform
import resource
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pumpops.pipeline import FanoutReport, PipelineConfig, parse_config, train_groups
from pumpops.schema import ReadingBatch
from pumpops.sim import FleetSimulator, Scenario, build_fleet, to_epoch_ms, write_ground_truth
from pumpops.store import open_store

START = "2025-06-01T00:00:00Z"
STEPS = ("load", "snapshot", "features", "fit", "calibrate", "evaluate", "export", "log")


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and of its children that have ended."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def fill(url: str, truth: Path, groups: int, devices: int, hours: float, seed: int) -> list[str]:
    """Simulate the fleet into the store; return the group names."""
    fleet = build_fleet(groups * devices, seed=seed, profiles=["acme-ansi"], groups_per_profile=groups)
    scenario = Scenario(devices=fleet, start_ms=to_epoch_ms(START), duration_s=hours * 3600, seed=seed)
    write_ground_truth(truth, scenario)
    simulator = FleetSimulator(scenario)
    with open_store(url) as store:
        store.upgrade()
        store.register_devices(fleet)
        for device in fleet:
            trace = simulator.device(device.device_id).trace()
            values = np.column_stack([trace.si(s) for s in trace.sensors])
            ts_us = trace.ts_ms.astype(np.int64) * 1000
            batches = []
            for i in range(0, ts_us.size, 3600):
                digest = hashlib.sha256(f"{device.device_id}-{i}".encode()).hexdigest()
                batches.append(
                    ReadingBatch(
                        device.device_id,
                        f"m-{i}",
                        digest,
                        ts_us[i : i + 3600],
                        trace.sensors,
                        values[i : i + 3600],
                        0,
                    )
                )
            store.write_batches(batches)
    return sorted({d.group for d in fleet})


def configs_for(groups: list[str], truth: Path, window: int) -> dict[str, PipelineConfig]:
    """The retrain chain's config for each group (docs/pipeline.md), MLflow logging on."""
    return {
        group: parse_config(
            {
                "seed": 0,
                "data": {
                    "source": "store",
                    "group": group,
                    "since": START,
                    "until": "2100-01-01T00:00:00Z",
                    "hygiene": {"ground_truth": str(truth), "margin_s": 300},
                },
                "features": {"window_samples": window},
                "detector": {"kind": "pca_t2q"},
                "evaluation": {"enabled": False},
                "output": {"experiment": "bench-groups", "log": True},
            },
            source=f"benchmark {group}",
        )
        for group in groups
    }


def _runs_per_group(report: FanoutReport, uri: str) -> tuple[int, int]:
    """(groups with exactly one MLflow run, runs in the experiment)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("bench-groups")
    if experiment is None:
        return 0, 0
    runs = client.search_runs([experiment.experiment_id], max_results=10_000)
    per_group: dict[str, int] = {}
    for run in runs:
        group = run.data.tags.get("pumpops.group", "")
        per_group[group] = per_group.get(group, 0) + 1
    trained = {o.name for o in report.outcomes if o.result is not None}
    return sum(1 for g in trained if per_group.get(g) == 1), len(runs)


# What Dask's nanny sets for every worker process (distributed.nanny.pre-spawn-environ).
_WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _plain_worker(
    names: list[str], args: tuple[Path, str, str, list[str], int], barrier: Any, out: Any
) -> None:
    """One plain process: warm up, wait for the others, train ``names`` one after another."""
    truth, url, uri, _, window = args[0], args[1], args[2], args[3], args[4]
    from pumpops.pipeline._fanout import _warm_up

    _warm_up(uri)
    configs = configs_for(names, truth, window)
    barrier.wait()
    start = time.time()
    cpu = time.process_time()
    report = train_groups(
        configs,
        workspace=Path(uri[len("sqlite:///") :]).parent,
        database_url=url,
        tracking_uri=uri,
        scheduler="sequential",
    )
    out.put(
        {
            "start": start,
            "end": time.time(),
            "cpu": time.process_time() - cpu,
            "trained": len(report.outcomes) - len(report.failed),
            "failed": len(report.failed),
            "task_cpu": sum(o.cpu_s for o in report.outcomes),
            "task_wall": sum(o.elapsed_s for o in report.outcomes),
            "onnx": {o.name: o.result.onnx_sha256 for o in report.outcomes if o.result is not None},
        }
    )


def plain_processes(
    groups: list[str], workers: int, truth: Path, url: str, workspace: Path, window: int
) -> dict[str, Any]:
    """Train ``groups`` split round-robin over ``workers`` plain processes; their figures."""
    uri = f"sqlite:///{workspace / 'mlflow.db'}"
    # the tracking database and experiment exist before the processes start, as train_groups does
    from pumpops.pipeline._fanout import _prepare_tracking

    _prepare_tracking(uri, workspace, {"bench-groups"})
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(workers), ctx.Queue()
    saved = {k: os.environ.get(k) for k in _WORKER_ENV}
    os.environ.update(_WORKER_ENV)  # inherited by the spawned processes only at start
    try:
        procs = [
            ctx.Process(
                target=_plain_worker,
                args=(groups[i::workers], (truth, url, uri, groups, window), barrier, out),
            )
            for i in range(workers)
        ]
        for proc in procs:
            proc.start()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    results = [out.get(timeout=3600) for _ in procs]
    for proc in procs:
        proc.join()
    onnx: dict[str, str] = {}
    for r in results:
        onnx.update(r["onnx"])
    return {
        "wall": max(r["end"] for r in results) - min(r["start"] for r in results),
        "trained": sum(r["trained"] for r in results),
        "failed": sum(r["failed"] for r in results),
        "cpu": sum(r["cpu"] for r in results),
        "task_cpu": sum(r["task_cpu"] for r in results),
        "task_wall": sum(r["task_wall"] for r in results),
        "onnx": onnx,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=30)
    parser.add_argument("--devices", type=int, default=2, help="pumps per group")
    parser.add_argument("--hours", type=float, default=2.0, help="simulated hours of 1 Hz data per pump")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--window", type=int, default=30, help="features.window_samples")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="also train with plain processes (no Dask): the machine's ceiling",
    )
    args = parser.parse_args(argv)

    print(
        f"# per-group training, sequential vs Dask — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load average before: {_loadavg()}"
    )
    with tempfile.TemporaryDirectory(prefix="pumpops-groups-bench-") as tmp:
        root = Path(tmp)
        url = f"sqlite:///{root / 'store.db'}"
        t0 = time.perf_counter()
        groups = fill(url, root / "truth.json", args.groups, args.devices, args.hours, args.seed)
        print(
            f"# data: {len(groups)} groups x {args.devices} pumps x {args.hours:g} h at 1 Hz in SQLite; "
            f"simulated and stored in {time.perf_counter() - t0:.1f} s (not counted)"
        )
        configs = configs_for(groups, root / "truth.json", args.window)
        rows = []
        reports: dict[str, FanoutReport] = {}
        for label, scheduler in (("sequential", "sequential"), (f"dask, {args.workers} workers", "local")):
            workspace = root / scheduler
            workspace.mkdir()
            uri = f"sqlite:///{workspace / 'mlflow.db'}"
            cpu0 = _cpu_s()
            report = train_groups(
                configs,
                workspace=workspace,
                database_url=url,
                tracking_uri=uri,
                scheduler=scheduler,
                workers=args.workers,
            )
            cpu = _cpu_s() - cpu0
            reports[scheduler] = report
            one_run, runs = _runs_per_group(report, uri)
            rows.append((label, report, cpu, one_run, runs))
            print(f"# {label}: done, load average {_loadavg()}")

        base = reports["sequential"]
        fan = reports["local"]
        plain = None
        if args.ceiling:
            workspace = root / "plain"
            workspace.mkdir()
            plain = plain_processes(groups, args.workers, root / "truth.json", url, workspace, args.window)
            print(f"# {args.workers} plain processes: done, load average {_loadavg()}")
        same = sum(
            1
            for a, b in zip(base.outcomes, fan.outcomes, strict=True)
            if a.result is not None and b.result is not None and a.result.onnx_sha256 == b.result.onnx_sha256
        )
        print()
        print(
            "| how | groups trained | failed | start-up s | wall s (groups) | CPU s (all processes) "
            "| CPU s in the tasks | task wall s summed | groups with 1 MLflow run | runs logged |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for label, report, cpu, one_run, runs in rows:
            print(
                f"| {label} | {len(report.outcomes) - len(report.failed)} | {len(report.failed)} "
                f"| {report.startup_s:.1f} | **{report.wall_s:.1f}** | {cpu:.1f} "
                f"| {sum(o.cpu_s for o in report.outcomes):.1f} "
                f"| {sum(o.elapsed_s for o in report.outcomes):.1f} | {one_run} | {runs} |"
            )
        if plain is not None:
            print(
                f"| {args.workers} plain processes, no Dask (the ceiling) "
                f"| {plain['trained']} | {plain['failed']} "
                f"| – | **{plain['wall']:.1f}** | {plain['cpu']:.1f} | {plain['task_cpu']:.1f} "
                f"| {plain['task_wall']:.1f} | – | – |"
            )
        print()
        print("| how | " + " | ".join(f"{step} s" for step in STEPS) + " |  (summed over the groups)")
        print("|---|" + "---:|" * len(STEPS))
        for label, report, *_ in rows:
            done = [o.result for o in report.outcomes if o.result is not None]
            sums = [sum(r.timings_s.get(step, 0.0) for r in done) for step in STEPS]
            print(f"| {label} | " + " | ".join(f"{v:.1f}" for v in sums) + " |")
        print()
        print(
            f"speed-up (sequential wall / dask wall): **{base.wall_s / fan.wall_s:.2f}x** "
            f"(with the cluster's start-up counted: {base.wall_s / (fan.wall_s + fan.startup_s):.2f}x); "
            f"same ONNX bytes in both ways: {same}/{len(groups)} groups; "
            f"load average after: {_loadavg()}"
        )
        if plain is not None:
            same_plain = sum(
                1
                for o in base.outcomes
                if o.result is not None and plain["onnx"].get(o.name) == o.result.onnx_sha256
            )
            print(
                f"ceiling ({args.workers} plain processes, no scheduler): sequential wall / their wall "
                f"**{base.wall_s / plain['wall']:.2f}x**; Dask reached "
                f"{plain['wall'] / fan.wall_s:.0%} of it; "
                f"same ONNX bytes as sequential: {same_plain}/{len(groups)}"
            )
        for outcome in (*base.failed, *fan.failed):
            print(f"failed: {outcome.name}: {outcome.error}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
