"""The closed loop over many runs: does a benign drift get recognised and does the recovery restore quality?

Run: ``.venv/bin/python benchmarks/loop.py --seeds 5`` (5 to 15 minutes a run on a
shared 2-core machine: three trainings, then 3 wall minutes of agents; ``--quick``: one
run with a shorter history; ``--summarise DIR``: the table of the runs already in DIR).

Method. Each run is the demo's loop itself (``pumpops.demo.run_loop_demo``, the
same code as ``make demo``): a fresh workspace, ``--history-h`` hours of normal
history through ingest, one model per make trained, validated, released and rolled
out; the hub's services in this process (embedded broker, ingest, TUF over HTTP,
rollout controller, fleet monitoring, retraining policy) and one ``pumpops agent
run`` process per pump, on its own simulated pump, at ``--speed`` simulated seconds
per wall second (the demo's 120 by default). At ``--drift-at-h`` a benign drift
starts on one make (``LoopOptions.drift_kind``):

- ``sensor_recalibration``: every pump's discharge-pressure sensor reads +40 kPa;
- ``setpoint_change``: every pump slowed to 90 % of its own speed set-point;
- ``seasonal_ambient``: +12 K ambient at every pump, ramping in over an hour;
- ``pump_replacement``: one pump replaced by a new unit of the same make.

Faults on other makes' pumps at 0.6, 2.2 and 3.4 h (during the drift), and two
more at ``run_h - 1.4`` h (one on a drifted pump, one on another make) to see
whether the recovered model still catches faults. The deliberately bad candidate
of the demo is skipped (it costs a training and measures nothing here).

By default run *i* of ``--seeds N`` uses seed ``--first-seed + i`` and drift kind
``kinds[i % len(kinds)]`` (so 4 seeds cover the four kinds once);
``--every-kind`` runs every kind for every seed.

Figures per run, from what the hub stored and the simulator's ground truth
(``pumpops.demo._measure``): false-alarm percent of normal rows of the drifted
make before the drift, on the stale model after it, and after the recovery (the
retrained model; rows overlapping a fault left out), and the excess of after over
before; drift verdict precision and recall per pump (a pump is called drifting if a
drift report at or after its onset says drift and not fault; faulty pumps called
drifting are false positives) and the delay of the first call; fault recall and
mean delay of the first alarm for faults starting before and after the recovery;
the tier that acted; drift onset → the retrained group's rollout complete, in
simulated hours and wall seconds. Aggregated per drift kind and over all runs: mean,
min, max. The baseline in the same run is the stale model: the ratio stale/after
of false alarms says what the recovery bought.

Goals (issue 15): after recovery within 1 percentage point of before in every run;
verdict precision and recall >= 0.9; fault recall after = before; onset →
recovered group <= 120 s wall at the demo's speed. Each run's line says which goal
it missed and by how much.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from pumpops.demo import LoopOptions, run_loop_demo
from pumpops.demo._world import DRIFT_KINDS
from pumpops.errors import CheckFailed, PumpopsError

GOAL_PP = 1.0
GOAL_PR = 0.9
GOAL_WALL_S = 120.0


def run_one(workdir: Path, seed: int, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """One loop run; its figures (``summary.json``'s) plus the wall time and an error, if any."""
    ws = workdir / f"seed{seed}-{kind}"
    log = workdir / f"seed{seed}-{kind}.log"
    options = LoopOptions(
        workspace=ws,
        pumps=args.pumps,
        history_h=args.history_h,
        run_h=args.run_h,
        speed=args.speed,
        drift_at_h=args.drift_at_h,
        seed=seed,
        drift_kind=kind,
        bad_candidate=False,
        late_faults=True,
        post_drift_gate=args.post_drift_gate,
    )
    began = time.monotonic()
    error = ""
    with log.open("w", encoding="utf-8") as handle:
        console = Console(file=handle, width=160, force_terminal=False)
        try:
            run_loop_demo(options, console)
        except CheckFailed as exc:  # the loop did not close: the figures are still there
            error = str(exc)
        except PumpopsError as exc:
            error = f"{type(exc).__name__}: {exc}"
    summary_path = ws / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    figures = summary.get("figures", {})
    if not args.keep:
        shutil.rmtree(ws / "agents", ignore_errors=True)  # keep the summary, report and store
    return {
        "seed": seed,
        "kind": kind,
        "wall_s": round(time.monotonic() - began, 1),
        "error": error or summary.get("error", ""),
        "measures": figures.get("measures"),
        "log": str(log),
        "report": str(ws / "report.html"),
    }


def row_of(run: dict[str, Any]) -> dict[str, Any]:
    """The figures of one run, flat, for the drifted make (the other makes in ``others``)."""
    m = run["measures"] or {}
    fa = m.get("false_alarms", {})
    drifted_group = next((g for g, v in fa.items() if v.get("stale") is not None), None)
    g = fa.get(drifted_group or "", {})
    v = m.get("verdicts", {})
    fr = m.get("fault_recall", {})
    rec = m.get("onset_to_recovered") or {}
    others = {k: val for k, val in fa.items() if k != drifted_group}
    return {
        "seed": run["seed"],
        "kind": run["kind"],
        "group": drifted_group,
        "fa_before": g.get("before"),
        "fa_stale": g.get("stale"),
        "fa_after": g.get("after"),
        "excess_pp": g.get("excess_pp"),
        "others_excess_pp": max(
            (o["excess_pp"] for o in others.values() if o.get("excess_pp") is not None), default=None
        ),
        "precision": v.get("precision"),
        "recall": v.get("recall"),
        "fp": v.get("fp"),
        "fn": v.get("fn"),
        "delay_min": (v.get("delay_min") or {}).get("mean"),
        "hub_precision": (m.get("hub_verdicts") or {}).get("precision"),
        "hub_recall": (m.get("hub_verdicts") or {}).get("recall"),
        "faults_before": _recall(fr.get("before")),
        "faults_after": _recall(fr.get("after")),
        "fault_delay_before_s": (fr.get("before") or {}).get("delay_s_mean"),
        "fault_delay_after_s": (fr.get("after") or {}).get("delay_s_mean"),
        "tiers": ", ".join(m.get("tiers", [])) or "none",
        "recovered_sim_h": rec.get("simulated_h"),
        "recovered_wall_s": rec.get("wall_s"),
        "run_wall_s": run["wall_s"],
        "error": run["error"],
    }


def _recall(part: dict[str, Any] | None) -> float | None:
    return None if not part else part.get("recall")


def misses(r: dict[str, Any]) -> list[str]:
    """The goals this run missed, each with by how much."""
    out = []
    if r["excess_pp"] is None:
        out.append("false alarms: no recovered model to measure (not recovered)")
    elif r["excess_pp"] > GOAL_PP:
        out.append(f"false alarms after +{r['excess_pp'] - GOAL_PP:.2f} pp over the 1 pp allowance")
    for key in ("precision", "recall"):
        if r[key] is None or r[key] < GOAL_PR:
            out.append(f"verdict {key} {r[key]} (goal {GOAL_PR})")
    if r["faults_after"] is None:
        out.append("fault recall after: no fault after a recovery")
    elif r["faults_before"] is not None and r["faults_after"] < r["faults_before"]:
        out.append(f"fault recall after {r['faults_after']} < before {r['faults_before']}")
    if r["recovered_wall_s"] is None:
        out.append("onset → recovered: never")
    elif r["recovered_wall_s"] > GOAL_WALL_S:
        out.append(
            f"onset → recovered {r['recovered_wall_s']:.0f} s wall "
            f"(+{r['recovered_wall_s'] - GOAL_WALL_S:.0f} s)"
        )
    return out


_COLUMNS = (
    ("seed", "seed"),
    ("kind", "drift"),
    ("fa_before", "FA before %"),
    ("fa_stale", "FA stale %"),
    ("fa_after", "FA after %"),
    ("excess_pp", "after-before pp"),
    ("others_excess_pp", "other makes pp"),
    ("precision", "verdict P"),
    ("recall", "verdict R"),
    ("delay_min", "verdict delay min"),
    ("hub_precision", "hub verdict P"),
    ("hub_recall", "hub verdict R"),
    ("faults_before", "fault R before"),
    ("faults_after", "fault R after"),
    ("fault_delay_before_s", "fault delay before s"),
    ("fault_delay_after_s", "fault delay after s"),
    ("recovered_sim_h", "onset→recovered sim h"),
    ("recovered_wall_s", "onset→recovered wall s"),
    ("run_wall_s", "run wall s"),
)
_NUMERIC = [k for k, _ in _COLUMNS if k not in ("seed", "kind")]


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table: one line per run, then mean/min/max per drift kind and over all runs."""
    lines = ["| " + " | ".join(h for _, h in _COLUMNS) + " | tier | goals missed |"]
    lines.append("|" + "---|" * (len(_COLUMNS) + 2))
    for r in rows:
        cells = [_fmt(r[k]) for k, _ in _COLUMNS]
        missed = "; ".join(misses(r)) or "none"
        if r["error"]:
            missed += f" ({r['error'][:120]})"
        lines.append("| " + " | ".join(cells) + f" | {r['tiers']} | {missed} |")
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["kind"], []).append(r)
    if len(groups) > 1:
        groups["all"] = list(rows)
    for kind, rs in groups.items():
        for stat in ("mean", "min", "max"):
            cells = [stat, kind]
            for k in _NUMERIC:
                values = [float(r[k]) for r in rs if r[k] is not None]
                if not values:
                    cells.append("–")
                    continue
                value = (
                    statistics.fmean(values) if stat == "mean" else (min if stat == "min" else max)(values)
                )
                cells.append(_fmt(value) + ("" if len(values) == len(rs) else f" ({len(values)}/{len(rs)})"))
            lines.append("| " + " | ".join(cells) + " | | |")
    return "\n".join(lines)


def baseline_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The baseline in the same runs: the stale model's false alarms against the recovered model's."""
    out = []
    for r in rows:
        if r["fa_stale"] is None or r["fa_after"] is None:
            continue
        ratio = r["fa_stale"] / r["fa_after"] if r["fa_after"] else float("inf")
        out.append(
            f"seed {r['seed']} {r['kind']}: stale {r['fa_stale']} % / after {r['fa_after']} % = {ratio:.3g}x"
        )
    return out


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # the demo's supervisor then stops every process it started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, default=5, help="runs (seeds); default 5")
    parser.add_argument("--first-seed", type=int, default=7)
    parser.add_argument("--kinds", default=",".join(DRIFT_KINDS), help="drift kinds, comma-separated")
    parser.add_argument("--every-kind", action="store_true", help="every kind for every seed")
    parser.add_argument("--pumps", type=int, default=9)
    parser.add_argument("--history-h", type=float, default=4.0)
    parser.add_argument("--run-h", type=float, default=6.0)
    # after the first rollouts completed: a drift during a rollout pauses it, and a paused
    # rollout blocks the group's retraining (seen with 9 pumps and the demo's 0.5 h)
    parser.add_argument("--drift-at-h", type=float, default=1.0)
    parser.add_argument("--speed", type=float, default=120.0, help="simulated s per wall s (the demo's: 120)")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new temporary folder")
    parser.add_argument(
        "--post-drift-gate",
        action="store_true",
        help="the retrain trains on post-drift data from the shift verdicts' onset and must pass "
        "the post-drift gate (LoopOptions.post_drift_gate; the demo's default is off)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the agents' folders")
    parser.add_argument("--json", type=Path, default=None, help="also write every run's figures here")
    parser.add_argument("--quick", action="store_true", help="one short run (seed 7, sensor_recalibration)")
    parser.add_argument(
        "--summarise",
        type=Path,
        default=None,
        help="print the table of the runs already in this workdir (their summary.json), run nothing",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per model load
    signal.signal(signal.SIGTERM, _interrupt)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in DRIFT_KINDS]
    if unknown:
        parser.error(f"--kinds: unknown {', '.join(unknown)}; known: {', '.join(DRIFT_KINDS)}")
    if args.summarise is not None:
        done = []
        for summary in sorted(args.summarise.glob("seed*-*/summary.json")):
            seed, kind = summary.parent.name.removeprefix("seed").split("-", 1)
            doc = json.loads(summary.read_text(encoding="utf-8"))
            figures = doc.get("figures", {})
            done.append(
                {
                    "seed": int(seed),
                    "kind": kind,
                    "wall_s": figures.get("wall_s"),
                    "error": doc.get("error", "")
                    or ("" if doc.get("loop_closed") else "the loop did not close"),
                    "measures": figures.get("measures"),
                }
            )
        rows = [row_of(run) for run in done]
        print(table(rows))
        for line in baseline_lines(rows):
            print(f"  baseline: {line}")
        return 0
    if args.quick:
        args.seeds, kinds, args.history_h = 1, kinds[:1], 3.0
    plan = [
        (args.first_seed + i, kind)
        for i in range(args.seeds)
        for kind in (kinds if args.every_kind else [kinds[i % len(kinds)]])
    ]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pumpops-loop-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    load0 = os.getloadavg()
    print(
        f"loop benchmark: {len(plan)} runs ({', '.join(f'{s}/{k}' for s, k in plan)}), {args.pumps} pumps, "
        f"history {args.history_h:g} h, run {args.run_h:g} h at {args.speed:g}x; workdir {workdir}",
        flush=True,
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"start {started}, load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}",
        flush=True,
    )
    runs = []
    for seed, kind in plan:
        run = run_one(workdir, seed, kind, args)
        runs.append(run)
        r = row_of(run)
        print(
            f"  seed {seed} {kind}: {run['wall_s']} s; "
            f"FA {r['fa_before']} / {r['fa_stale']} / {r['fa_after']} %, "
            f"verdict P {r['precision']} R {r['recall']}, faults {r['faults_before']} / {r['faults_after']}, "
            f"recovered {r['recovered_wall_s']} s wall; load {os.getloadavg()[0]:.2f}"
            + (f"; {run['error'][:200]}" if run["error"] else ""),
            flush=True,
        )
    rows = [row_of(run) for run in runs]
    print()
    print(table(rows))
    print()
    print("Baseline in the same runs (stale model vs recovered model, false alarms of the drifted make):")
    for line in baseline_lines(rows) or ["no run recovered"]:
        print(f"  {line}")
    met = sum(1 for r in rows if not misses(r))
    load1 = os.getloadavg()
    print(
        f"\n{met} of {len(rows)} runs met every goal; end {time.strftime('%H:%M:%S UTC', time.gmtime())}, "
        f"load average {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}; logs and reports in {workdir}"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(runs, indent=1, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
