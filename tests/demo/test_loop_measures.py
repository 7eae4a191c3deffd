"""The loop's figures against the ground truth (issue 15): verdict precision/recall, recalls, goals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pumpops.cli import app
from pumpops.demo._measure import (
    drift_truth,
    drift_verdicts,
    false_alarm_goal,
    fault_recall,
    says_drift,
    tiers_acted,
)

H = 3_600_000


def _truth(*events: tuple[str, str, str, float, float]) -> dict[str, Any]:
    return {
        "events": [
            {"device_id": d, "category": c, "kind": k, "start_ms": int(a * H), "end_ms": int(b * H)}
            for d, c, k, a, b in events
        ]
    }


def test_truth_ignores_the_weather_and_takes_the_first_onset() -> None:
    onsets, faults = drift_truth(
        _truth(
            ("p-1", "drift", "ambient_temperature", 0, 9),
            ("p-1", "drift", "setpoint_change", 2, 9),
            ("p-1", "drift", "sensor_recalibration", 1, 9),
            ("p-2", "fault", "cavitation", 3, 4),
        )
    )
    assert onsets == {"p-1": 1 * H}
    assert faults == {"p-2": [(3 * H, 4 * H)]}


@pytest.mark.parametrize(
    ("reports", "expected"),
    [
        # every drifted pump called after onset, nothing else: perfect
        ({"d1": [(2 * H, True)], "d2": [(3 * H, True)], "n": [(2 * H, False)], "f": []}, (1.0, 1.0, 2, 0, 0)),
        # a call before the onset does not count for a drifted pump
        ({"d1": [(H // 2, True)], "d2": [(3 * H, True)], "n": [], "f": []}, (1.0, 0.5, 1, 0, 1)),
        # the faulty pump called drifting is a false positive; so is a normal one
        (
            {"d1": [(2 * H, True)], "d2": [(2 * H, True)], "n": [(1, True)], "f": [(4 * H, True)]},
            (0.5, 1.0, 2, 2, 0),
        ),
        # nothing called: recall 0, precision undefined
        ({"d1": [], "d2": [], "n": [], "f": []}, (None, 0.0, 0, 0, 2)),
    ],
)
def test_verdicts_precision_recall_against_the_truth(
    reports: dict[str, list[tuple[int, bool]]], expected: tuple[float | None, float, int, int, int]
) -> None:
    bodies = {d: [(t, {"alert": a}) for t, a in rs] for d, rs in reports.items()}
    v = drift_verdicts(bodies, {"d1": H, "d2": H}, {"f": [(4 * H, 5 * H)]}, t0_ms=0)
    assert (v["precision"], v["recall"], v["tp"], v["fp"], v["fn"]) == expected
    truth = {p["device_id"]: p["truth"] for p in v["pumps"]}
    assert truth == {"d1": "drift", "d2": "drift", "n": "normal", "f": "fault"}


def test_verdict_delay_is_from_the_onset_to_the_first_call() -> None:
    v = drift_verdicts(
        {"d1": [(H + 30 * 60_000, {"alert": True}), (H + 20 * 60_000, {"alert": True})]},
        {"d1": H},
        {},
        t0_ms=0,
    )
    assert v["delay_min"] == {"mean": 20.0, "max": 20.0}
    assert v["pumps"][0]["first_call_h"] == pytest.approx(1 + 20 / 60, abs=1e-3)


@pytest.mark.parametrize(
    ("body", "drift"),
    [
        ({"alert": True}, True),
        ({"alert": False}, False),
        ({}, False),
        ({"alert": True, "hint": "fault_like"}, False),
        ({"alert": True, "verdict": {"hint": "fault_like"}}, False),
        ({"alert": True, "verdict": {"kind": "fault"}}, False),
        ({"alert": True, "hint": "sensor_shift"}, True),
    ],
)
def test_says_drift_reads_the_alert_and_the_fault_hint(body: dict[str, Any], drift: bool) -> None:
    assert says_drift(body) is drift


def test_fault_recall_splits_at_the_recovery() -> None:
    rows = [
        {"start_h": 0.6, "detected": True, "delay_s": 10},
        {"start_h": 2.2, "detected": True, "delay_s": 30},
        {"start_h": 4.1, "detected": True, "delay_s": 50},
        {"start_h": 4.1, "detected": False, "delay_s": None},
    ]
    out = fault_recall(rows, 3.5)
    assert out["before"] == {"faults": 2, "detected": 2, "recall": 1.0, "delay_s_mean": 20.0}
    assert out["after"] == {"faults": 2, "detected": 1, "recall": 0.5, "delay_s_mean": 50.0}
    never = fault_recall(rows, None)
    assert (never["before"]["faults"], never["after"]["faults"], never["after"]["recall"]) == (4, 0, None)


def test_false_alarm_goal_per_group() -> None:
    goal = false_alarm_goal(
        {
            "recovered": {"before drift": 0.2, "stale model, after drift": 60.0, "retrained model": 1.1},
            "not recovered": {"before drift": 0.2, "stale model, after drift": 60.0},
            "worse": {"before drift": 0.2, "stale model, after drift": 60.0, "retrained model": 1.3},
            "no drift": {"before drift": 0.4, "no drift (same period)": 0.5},
        }
    )
    assert goal["recovered"] == {"before": 0.2, "stale": 60.0, "after": 1.1, "excess_pp": 0.9, "met": True}
    assert (goal["not recovered"]["after"], goal["not recovered"]["met"]) == (None, False)
    assert (goal["worse"]["excess_pp"], goal["worse"]["met"]) == (1.1, False)
    assert (goal["no drift"]["after"], goal["no drift"]["met"]) == (0.5, True)


def test_tiers_name_the_drift_responses_only() -> None:
    outcomes = [
        {"group": "a", "trigger": "initial", "status": "released"},
        {"group": "a", "trigger": "drift", "status": "released"},
        {"group": "b", "trigger": "manual", "status": "validation_failed"},
    ]
    assert tiers_acted(outcomes, [{"device_id": "p-1", "status": "done"}]) == [
        "retrain a: released",
        "recalibrate p-1: done",
    ]


def test_demo_cli_unknown_drift_kind_is_refused_naming_the_flag_and_the_kinds(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--drift-kind", "earthquake", "--workspace", str(tmp_path / "ws")]
    )
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "--drift-kind" in text
    assert "pump_replacement" in text
    assert not (tmp_path / "ws").exists()  # nothing started, nothing written
