"""Held-out vs fitted pumps on a simulated fleet: F1, FAR, recall, detection delay per fault kind and make.

Run: ``.venv/bin/python benchmarks/fleet_holdout.py`` (about a minute on 2 cores).

The fleet (``pumpops.sim``) has every shipped make but the SKAB replay
(``acme-ansi``, ``nordhav-multistage``, ``sakura-esp``) and, per make,
``--per-kind`` × 2 pumps for each of the five fault kinds. Every pump runs
``--train-h`` hours normally (its training / calibration period), then
``--test-h`` hours that are scored, in which its one fault starts 30 min in
and lasts to the end (as in validation's simulated suite; bearing and
impeller wear ramp up, the others step in), at ``--severity``. The site
climate's daily cycle runs through both periods.

Per make, the real pipeline (:func:`pumpops.pipeline.run_pipeline`, cache cold,
no MLflow) trains the group model with ``[evaluation] split = "by_device"``,
twice: the pumps of each fault kind are cut in two seeded halves, and each
half is held out once (``evaluation.holdout_devices``) while the model is
fitted on the other. Every pump is calibrated on its own normal period, as a
new pump is; held-out pumps' rows never reach the fit. Each run's evaluate
step reports its held-out pumps (``evaluation.json``: ``heldout``) and its
fitted pumps' own scored period (``insample``). Pooled over the two folds,
every pump is in both columns — once scored by the model that never saw it,
once by the one fitted on it — so the columns differ only in whether the pump
was fitted on. The ratio column is held-out / fitted.

The detector settings are the ones of ``examples/pipeline-fleet.toml``
(pca_t2q, 30-row window, threshold 1.2 × the 99.5 % quantile, 5-of-10
smoothing): nothing was chosen on this data, so no figure here is tuned.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pumpops.fleet import get_profile
from pumpops.pipeline import parse_config, run_pipeline
from pumpops.pipeline._snapshot import Dataset, Recording
from pumpops.sim import (
    AmbientModel,
    Event,
    FaultKind,
    FleetSimulator,
    Onset,
    Scenario,
    build_fleet,
    to_epoch_ms,
    write_ground_truth,
)

START = "2025-06-01T00:00:00Z"
MAKES = ("acme-ansi", "nordhav-multistage", "sakura-esp")
KINDS = tuple(FaultKind)
GRADUAL = {FaultKind.BEARING_WEAR, FaultKind.IMPELLER_WEAR}


def simulate(
    make: str, per_kind: int, train_h: float, test_h: float, severity: float, seed: int, truth: Path
) -> tuple[Dataset, list[str]]:
    """One make's pumps; returns the dataset and one half of them (a seeded half of each fault kind)."""
    n = 2 * per_kind * len(KINDS)
    devices = build_fleet(n, seed=seed, profiles=[make], id_prefix=make.split("-", maxsplit=1)[0])
    start_ms = to_epoch_ms(START)
    cut_ms = start_ms + round(train_h * 3_600_000)
    events = []
    for i, d in enumerate(devices):
        kind = KINDS[i % len(KINDS)]
        a = cut_ms + 30 * 60_000
        b = min(a + 90 * 60_000, cut_ms + round(test_h * 3_600_000))
        onset = Onset.GRADUAL if kind in GRADUAL else Onset.SUDDEN
        events.append(Event(d.device_id, kind, a, b, onset, severity))
    scenario = Scenario(
        devices=devices,
        start_ms=start_ms,
        duration_s=(train_h + test_h) * 3600,
        seed=seed,
        fault_rate_per_day=0.0,
        drift_rate_per_day=0.0,
        ambient=AmbientModel() if os.environ.get("H2_AMB", "1") == "1" else None,
        events=tuple(events),
    )
    write_ground_truth(truth, scenario)
    sim = FleetSimulator(scenario)
    recordings = []
    sensors: tuple[str, ...] = ()
    for d in devices:
        trace = sim.device(d.device_id).trace()
        sensors = trace.sensors
        values = np.column_stack([trace.si(s) for s in sensors])
        ts = trace.ts_ms.astype(np.int64) * 1000
        train = ts < cut_ms * 1000
        recordings.append(Recording(d.device_id, "train", ts[train], values[train]))
        recordings.append(Recording(d.device_id, "test", ts[~train], values[~train]))
    # per kind, a seeded half of its pumps is held out
    rng = np.random.default_rng(seed)
    held = []
    for k in range(len(KINDS)):
        same = [d.device_id for i, d in enumerate(devices) if i % len(KINDS) == k]
        held += [same[j] for j in sorted(rng.permutation(len(same))[: len(same) // 2])]
    data = Dataset(group=make, sensors=sensors, recordings=tuple(recordings), meta={"source": "sim"})
    return data, sorted(held)


def _cell(m: dict[str, Any] | None, key: str) -> float:
    if not m:
        return float("nan")
    if key == "recall":
        mar = m.get("mar")
        return float("nan") if mar is None else 1.0 - float(mar)
    value = m.get(key)
    return float("nan") if value is None else float(value)


def _fmt(x: float, pct: bool = False, digits: int = 3) -> str:
    if not np.isfinite(x):
        return "n/a"
    return f"{100 * x:.1f}" if pct else f"{x:.{digits}f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if np.isfinite(a) and np.isfinite(b) and b != 0 else "n/a"


def row(label: str, held: dict[str, Any] | None, fitted: dict[str, Any] | None) -> str:
    h = {k: _cell(held, k) for k in ("f1", "far", "recall", "mean_delay_s", "events", "events_missed")}
    f = {k: _cell(fitted, k) for k in ("f1", "far", "recall", "mean_delay_s")}
    found = f"{h['events'] - h['events_missed']:.0f}/{h['events']:.0f}" if np.isfinite(h["events"]) else "n/a"
    return (
        f"| {label} | {_fmt(h['f1'])} | {_fmt(h['far'], True)} | {_fmt(h['recall'])} "
        f"| {_fmt(h['mean_delay_s'], digits=0)} | {found} "
        f"| {_fmt(f['f1'])} | {_fmt(f['far'], True)} | {_fmt(f['recall'])} "
        f"| {_fmt(f['mean_delay_s'], digits=0)} "
        f"| {_ratio(h['f1'], f['f1'])} | {_ratio(h['far'], f['far'])} |"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--makes", nargs="+", default=list(MAKES))
    parser.add_argument("--per-kind", type=int, default=2, help="pumps per fault kind and make, per half")
    parser.add_argument("--train-h", type=float, default=3.0, help="hours of normal operation per pump")
    parser.add_argument("--test-h", type=float, default=2.0, help="hours scored per pump (fault from 30 min)")
    parser.add_argument("--severity", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    t_start = time.perf_counter()
    print(
        f"# fleet held-out benchmark — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(f"# command: {' '.join([Path(sys.argv[0]).as_posix(), *(argv or sys.argv[1:])])}")
    print(
        f"# {len(args.makes)} makes x {2 * args.per_kind * len(KINDS)} pumps ({2 * args.per_kind} per fault "
        f"kind); {args.train_h:g} h normal + {args.test_h:g} h scored per pump, the fault from 30 min into "
        f"the scored part to its end, severity {args.severity:g}, seed {args.seed}; two folds per make"
    )
    folds: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="pumpops-fleet-holdout-") as tmp:
        for make in args.makes:
            root = Path(tmp) / make
            root.mkdir()
            truth = root / "truth.json"
            data, half = simulate(
                make, args.per_kind, args.train_h, args.test_h, args.severity, args.seed, truth
            )
            others = sorted({r.device_id for r in data.recordings} - set(half))
            # two folds: each half is held out once, so every pump is scored both by the model that
            # never saw it and by the one fitted on it (same pumps, same rows on both sides)
            for fold, holdout in enumerate((half, others)):
                result = run_pipeline(
                    _config(make, truth, holdout, args.seed),
                    workspace=root / f"ws{fold}",
                    dataset=data,
                    use_cache=False,
                    log=False,
                )
                folds.append((make, result.evaluation["heldout"], result.evaluation["insample"]))
    elapsed = time.perf_counter() - t_start

    header = (
        "| pumps | F1 held-out | FAR % held-out | recall held-out | delay s held-out | faults found "
        "| F1 fitted | FAR % fitted | recall fitted | delay s fitted | F1 ratio | FAR ratio |"
    )
    rule = "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"

    def pooled(
        keep: Sequence[tuple[str, dict[str, Any], dict[str, Any]]], kind: str | None
    ) -> tuple[Any, Any]:
        def pick(doc: dict[str, Any]) -> dict[str, Any] | None:
            found: dict[str, Any] | None = doc["all"] if kind is None else doc["kind"].get(kind)
            return found

        return _pool([pick(h) for _, h, _ in keep]), _pool([pick(f) for _, _, f in keep])

    print()
    print(header)
    print(rule)
    print(row("**all makes, all kinds**", *pooled(folds, None)))
    for kind in KINDS:
        print(row(kind.value, *pooled(folds, kind.value)))
    for make in args.makes:
        mine = [f for f in folds if f[0] == make]
        print(row(f"**{make}**", *pooled(mine, None)))
        for kind in KINDS:
            print(row(f"{make} · {kind.value}", *pooled(mine, kind.value)))
    print()
    print(
        f"# {elapsed:.0f} s in all; load after {' '.join(f'{x:.2f}' for x in os.getloadavg())}. "
        "Each make has its own group model (two folds pooled: counts summed). "
        "FAR = false alarms / normal rows; recall = 1 - MAR (point-wise, rows of the fault); "
        "delay = fault start to first alarm, mean over the faults "
        "found; per kind the rows of the other kinds are left out (so FAR is the same for every kind). "
        "Ratio = held-out / fitted."
    )
    return 0


def _config(make: str, truth: Path, holdout: Sequence[str], seed: int) -> Any:
    period = max(1.0, get_profile(make).sample_period_s)
    return parse_config(
        {
            "seed": seed,
            "data": {
                "source": "store",
                "group": make,
                "since": START,
                "until": "2100-01-01T00:00:00Z",
                "hygiene": {"ground_truth": str(truth), "margin_s": 300},
            },
            "features": {"resample_period_s": period, "max_gap_fill_s": 5 * period, "window_samples": 30},
            "detector": {"kind": "pca_t2q"},
            "threshold": {"quantile": 0.995, "factor": 1.2},
            "smoothing": {"k": 5, "n": 10},
            "evaluation": {
                "ground_truth": str(truth),
                "split": "by_device",
                "holdout_devices": list(holdout),
            },
            "output": {"log": False},
        }
    )


def _pool(docs: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Sum the counts of several metric dicts; recompute F1/FAR/MAR; delay weighted by faults found."""
    present = [d for d in docs if d]
    if not present:
        return None
    tp, fp, fn, tn = (sum(float(d[k]) for d in present) for k in ("tp", "fp", "fn", "tn"))
    events = sum(float(d["events"]) for d in present)
    missed = sum(float(d["events_missed"]) for d in present)
    delays = [
        (float(d["mean_delay_s"]), float(d["events"]) - float(d["events_missed"]))
        for d in present
        if d.get("mean_delay_s") is not None
    ]
    found = sum(w for _, w in delays)
    return {
        "f1": tp / (tp + (fp + fn) / 2) if tp + fp + fn else 1.0,
        "far": fp / (fp + tn) if fp + tn else 0.0,
        "mar": fn / (fn + tp) if fn + tp else 0.0,
        "events": events,
        "events_missed": missed,
        "mean_delay_s": sum(d * w for d, w in delays) / found if found else None,
    }


if __name__ == "__main__":
    raise SystemExit(main())
