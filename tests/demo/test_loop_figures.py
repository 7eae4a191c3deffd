"""One small loop run measured against its ground truth (issue 15; ``benchmarks/loop.py``'s figures).

Nine pumps (three per make), a short history and run, the agents as processes at 240×:
the figures the benchmark reads are computed from what the hub stored and the
simulator's truth, and they are plausible for the story — the drifted make's pumps are
the truth's drifted pumps, every scheduled fault is counted before or after the
recovery, the stale model alarms more than the model before the drift did.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from pumpops.demo import LoopOptions, run_loop_demo
from pumpops.errors import CheckFailed

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]  # three trainings on a loaded 2-core machine


def test_small_loop_run_has_the_figures_against_the_truth(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    options = LoopOptions(
        workspace=ws,
        pumps=9,
        history_h=2.0,
        run_h=4.5,
        drift_at_h=1.0,  # after the first rollouts completed (a drift during one pauses it)
        speed=240.0,
        seed=11,
        bad_candidate=False,
        late_faults=True,
    )
    out = io.StringIO()
    try:
        figures = run_loop_demo(options, Console(file=out, width=200))
    except CheckFailed:  # the loop may not close in so short a run; the figures are written anyway
        figures = json.loads((ws / "summary.json").read_text())["figures"]
    m = figures["measures"]
    truth = json.loads((ws / "ground-truth.json").read_text())
    drifted = {e["device_id"] for e in truth["events"] if e["kind"] == "sensor_recalibration"}
    faulty = {e["device_id"] for e in truth["events"] if e["category"] == "fault"}

    # the truth says what the run did: every pump of the first make drifts; five faults
    assert drifted == set(m["drifted_pumps"])
    assert len(drifted) == 3
    assert len(faulty) == 5
    assert len(drifted & faulty) == 1  # the late fault on a drifted pump

    # verdicts: one row per pump, labelled from the truth, counts adding up
    v = m["verdicts"]
    assert len(v["pumps"]) == 9
    labels = {p["device_id"]: p["truth"] for p in v["pumps"]}
    assert {d for d, t in labels.items() if t == "drift"} == drifted
    assert {d for d, t in labels.items() if t == "fault"} == faulty - drifted
    assert v["tp"] + v["fn"] == 3
    assert v["tp"] + v["fp"] + v["fn"] + v["tn"] == 9
    for p in v["pumps"]:
        assert p["called"] == bool(p["calls_h"])
        if p["delay_min"] is not None:
            assert 0 <= p["delay_min"] <= options.run_h * 60
    assert m["hub_verdicts"]["tp"] + m["hub_verdicts"]["fn"] == 3

    # faults: all five counted, split at the recovery
    fr = m["fault_recall"]
    assert fr["before"]["faults"] + fr["after"]["faults"] == 5
    assert fr["before"]["detected"] >= 1  # the agents do catch faults

    # false alarms of the drifted make: the stale model alarms far more than before the drift
    group = next(g for g, f in m["false_alarms"].items() if f["stale"] is not None)
    fa = m["false_alarms"][group]
    assert fa["before"] is not None
    assert fa["stale"] > fa["before"] + 5.0
    if m["onset_to_recovered"] is not None:
        assert fa["after"] is not None
        assert m["onset_to_recovered"]["simulated_h"] > 0
        assert any(t.startswith(f"retrain {group}") for t in m["tiers"])

    report = (ws / "report.html").read_text()
    assert "Drift verdicts per pump against the truth" in report
    assert "The run against the ground truth" in report
    assert "drift verdicts per pump" in out.getvalue()
