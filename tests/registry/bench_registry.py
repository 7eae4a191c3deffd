"""Benchmark: latency of registry calls (register, validation report, promote, show, archive).

Run: ``.venv/bin/python tests/registry/bench_registry.py [--rounds N] [--skab DIR]``.
Trains two small SKAB models once (MLflow and the store are SQLite files in a
temporary folder), then times each call of the :class:`~pumpops.registry.Registry`
API, with events stored only and with events also published to the Mosquitto
on 127.0.0.1:1883 (skipped when it is not running). Not a test: numbers go to
``docs/registry.md``.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import tempfile
import time
import uuid
import warnings
from pathlib import Path

from pumpops.pipeline import RunResult, parse_config, run_pipeline
from pumpops.registry import EventPublisher, EventSink, MqttEventPublisher, Registry
from pumpops.store import TelemetryStore, open_store

FILES = ("anomaly-free/anomaly-free.csv", "valve1/0.csv", "valve1/1.csv")


def train(skab: Path, root: Path, uri: str) -> list[RunResult]:
    data = root / "skab"
    for name in FILES:
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(skab / name, data / name)
    runs = []
    for variance in (0.9, 0.8):
        config = parse_config(
            {
                "seed": 3,
                "data": {"source": "files", "paths": [str(data)], "train_rows": 400},
                "features": {"window_samples": 10, "min_segment_samples": 30},
                "detector": {"kind": "pca_t2q", "hyper": {"variance": variance}},
                "threshold": {"quantile": 0.99, "factor": 1.2},
                "smoothing": {"k": 3, "n": 5},
                "output": {"experiment": "bench"},
            }
        )
        runs.append(run_pipeline(config, workspace=root, tracking_uri=uri))
    return runs


def bench(
    uri: str, store: TelemetryStore, runs: list[RunResult], pub: EventPublisher | None, rounds: int
) -> None:
    registry = Registry(uri, EventSink(store, pub, topic_prefix=f"bench-{uuid.uuid4().hex[:6]}/v1"))
    times: dict[str, list[float]] = {
        k: [] for k in ("register", "store_validation", "promote", "show", "archive")
    }
    for i in range(rounds):
        name = f"bench-{uuid.uuid4().hex[:8]}"
        t = time.perf_counter()
        info = registry.register(runs[i % 2], name=name, actor="bench")
        times["register"].append(time.perf_counter() - t)
        t = time.perf_counter()
        registry.store_validation(info, passed=True, report_json="{}", against=None, actor="bench")
        times["store_validation"].append(time.perf_counter() - t)
        t = time.perf_counter()
        registry.promote(name, 1, info.group, actor="bench")
        times["promote"].append(time.perf_counter() - t)
        t = time.perf_counter()
        registry.get(name, 1).lineage()
        times["show"].append(time.perf_counter() - t)
        t = time.perf_counter()
        registry.archive(name, 1, actor="bench")
        times["archive"].append(time.perf_counter() - t)
    label = "stored only" if pub is None else f"published to {pub.where}"
    for key, values in times.items():
        print(f"{label:>40}  {key:<17} median {statistics.median(values) * 1000:6.1f} ms  "
              f"max {max(values) * 1000:6.1f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--skab", type=Path, default=Path(__file__).resolve().parents[3] / "shared/datasets/skab"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        uri = f"sqlite:///{root / 'mlflow.db'}"
        runs = train(args.skab, root, uri)
        with open_store(f"sqlite:///{root / 'pumpops.db'}") as store:
            store.upgrade()
            bench(uri, store, runs, None, args.rounds)
            try:
                socket.create_connection(("127.0.0.1", 1883), timeout=1).close()
            except OSError:
                print("Mosquitto not running on 127.0.0.1:1883: publishing not measured")
                return
            bench(uri, store, runs, MqttEventPublisher("mqtt://127.0.0.1:1883"), args.rounds)


if __name__ == "__main__":
    main()
