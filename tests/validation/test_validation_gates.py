"""Every gate decision as a table: pass, fail exactly past the boundary, and the sentence a person reads."""

from __future__ import annotations

import json
import math

import pytest

from pumpops.validation import (
    NO_CHAMPION,
    BehaviourBudgets,
    BehaviourMeasurement,
    ChampionTolerances,
    DetectionMetrics,
    GateResult,
    ParityMeasurement,
    ParityTolerance,
    ResourceBudgets,
    ResourceMeasurement,
    check_behaviour,
    check_budgets,
    check_champion,
    check_parity,
    decide,
)

PARITY = [
    # (name, max_abs_diff, rows, passed, reason fragment)
    ("identical", 0.0, 100, True, None),
    ("at the limit", 1e-4, 100, True, None),
    ("just past the limit", 1.0001e-4, 100, False, "differ from the training-time scores by up to 0.0001"),
    ("far off", 0.5, 100, False, "by up to 0.5 (limit 0.0001) over 100 rows"),
    ("not finite", math.nan, 100, False, "by up to n/a"),
    ("nothing scored", 0.0, 0, False, "no held-out rows were scored"),
]


@pytest.mark.parametrize(("name", "diff", "rows", "passed", "reason"), PARITY, ids=[p[0] for p in PARITY])
def test_parity_gate(name: str, diff: float, rows: int, passed: bool, reason: str | None) -> None:
    result = check_parity(ParityMeasurement(diff, rows), ParityTolerance(max_abs_diff=1e-4))
    assert result.name == "parity"
    assert result.passed is passed, result.reasons
    if reason is None:
        assert result.reasons == []
    else:
        assert any(reason in r for r in result.reasons), result.reasons


CHAMP = DetectionMetrics(f1=0.80, far=0.05, mean_delay_s=30.0, events=5, events_missed=0)
TOL = ChampionTolerances(f1_tolerance=0.02, far_tolerance=0.01, delay_tolerance_s=60.0)
CHAMPION = [
    ("equal", CHAMP, True, None),
    ("better everywhere", DetectionMetrics(0.9, 0.01, 10.0, 5, 0), True, None),
    ("f1 at the tolerance", DetectionMetrics(0.78, 0.05, 30.0, 5, 0), True, None),
    ("f1 past the tolerance", DetectionMetrics(0.7799, 0.05, 30.0, 5, 0), False, "F1 0.7799 is 0.0201 below"),
    ("far at the tolerance", DetectionMetrics(0.8, 0.06, 30.0, 5, 0), True, None),
    (
        "far past the tolerance",
        DetectionMetrics(0.8, 0.0601, 30.0, 5, 0),
        False,
        "false-alarm rate 6.01 % is 1.01 points above the champion's 5 % (tolerance 1 points)",
    ),
    ("delay at the tolerance", DetectionMetrics(0.8, 0.05, 90.0, 5, 0), True, None),
    (
        "delay past the tolerance",
        DetectionMetrics(0.8, 0.05, 90.5, 5, 0),
        False,
        "mean detection delay 90.5 s is longer than the champion's 30 s by more than 60 s",
    ),
    ("every event missed", DetectionMetrics(0.0, 0.0, math.nan, 5, 5), False, "missed 5 of 5 events"),
]


@pytest.mark.parametrize(("name", "cand", "passed", "reason"), CHAMPION, ids=[c[0] for c in CHAMPION])
def test_champion_gate(name: str, cand: DetectionMetrics, passed: bool, reason: str | None) -> None:
    result = check_champion(cand, CHAMP, TOL)
    assert result.passed is passed, result.reasons
    if reason is None:
        assert result.reasons == []
    else:
        assert any(reason in r for r in result.reasons), result.reasons
    # both sides are in the report, side by side
    assert result.measurements["champion"]["f1"] == 0.8
    assert result.measurements["candidate"]["f1"] == pytest.approx(cand.f1)


def test_champion_gate_without_champion_passes_as_first_of_group() -> None:
    result = check_champion(DetectionMetrics(0.1, 0.5, math.nan, 5, 5), None, TOL)
    assert result.passed
    assert result.reasons == [NO_CHAMPION] == ["no champion: first model of the group"]
    assert result.measurements["champion"] is None


BUDGETS = BehaviourBudgets(max_fault_delay_s=600.0, max_normal_far=0.02, max_drift_alarm_rate=0.25)
FAULTS_OK = {"cavitation": 10.0, "seal_leak": 600.0}
DRIFT_OK = {"setpoint_change": 0.25, "ambient_temperature": 0.0}
BEHAVIOUR = [
    ("all within budget", BehaviourMeasurement(FAULTS_OK, 0.02, DRIFT_OK), True, None),
    (
        "fault just late",
        BehaviourMeasurement({**FAULTS_OK, "seal_leak": 601.0}, 0.0, DRIFT_OK),
        False,
        "fault seal_leak: first alarm after 601 s, budget 600 s",
    ),
    (
        "fault missed",
        BehaviourMeasurement({**FAULTS_OK, "cavitation": None}, 0.0, DRIFT_OK),
        False,
        "fault cavitation: no alarm at all (budget: an alarm within 600 s)",
    ),
    (
        "clean data just too noisy",
        BehaviourMeasurement(FAULTS_OK, 0.0201, DRIFT_OK),
        False,
        "clean normal data: false-alarm rate 2.01 % (budget 2 %)",
    ),
    (
        "drift alarm storm",
        BehaviourMeasurement(FAULTS_OK, 0.0, {**DRIFT_OK, "setpoint_change": 0.2501}),
        False,
        "benign drift setpoint_change: alarm storm, 25.01 % of rows alarmed (budget 25 %)",
    ),
    (
        "no fault scored",
        BehaviourMeasurement({}, 0.0, DRIFT_OK),
        False,
        "no simulated fault was scored, fault detection cannot be shown",
    ),
]


@pytest.mark.parametrize(("name", "m", "passed", "reason"), BEHAVIOUR, ids=[b[0] for b in BEHAVIOUR])
def test_behaviour_gate(name: str, m: BehaviourMeasurement, passed: bool, reason: str | None) -> None:
    result = check_behaviour(m, BUDGETS)
    assert result.passed is passed, result.reasons
    if reason is None:
        assert result.reasons == []
    else:
        assert reason in result.reasons


def test_behaviour_gate_skipped_is_not_run_not_passed() -> None:
    m = BehaviourMeasurement({}, math.nan, {}, skipped="group 'skab-testbed' cannot be simulated")
    result = check_behaviour(m, BUDGETS)
    assert not result.passed
    assert result.status == "not run"
    assert result.not_run == "group 'skab-testbed' cannot be simulated"
    assert result.reasons == ["not run: group 'skab-testbed' cannot be simulated"]


def test_report_gate_not_run_says_not_run_and_is_not_counted_as_passed() -> None:
    ran = GateResult("parity", True)
    skipped = check_behaviour(
        BehaviourMeasurement({}, math.nan, {}, skipped="group 'skab-testbed' cannot be simulated"), BUDGETS
    )
    report = decide([ran, skipped], subject="m/1")
    text = report.to_text()
    assert "[pass] behaviour" not in text
    assert "[not run] behaviour" in text
    assert "not run: group 'skab-testbed' cannot be simulated" in text
    assert "1 passed, 1 not run" in text.splitlines()[0]
    assert report.passed  # the gates that ran passed; the one that did not is reported, not counted
    assert report.failed_gates == []
    assert report.not_run_gates == ["behaviour"]
    doc = json.loads(report.to_json())
    assert doc["not_run_gates"] == ["behaviour"]
    assert [g["status"] for g in doc["gates"]] == ["passed", "not run"]
    assert not decide([skipped]).passed  # nothing ran: nothing shown


RB = ResourceBudgets(max_model_bytes=1000, max_latency_ms=2.0, max_peak_memory_mb=10.0)
RESOURCES = [
    ("within", ResourceMeasurement(1000, 2.0, 10.0), True, None),
    (
        "one byte too big",
        ResourceMeasurement(1001, 0.1, 1.0),
        False,
        "model file is 1001 bytes, budget 1000 bytes",
    ),
    (
        "too slow",
        ResourceMeasurement(10, 2.01, 1.0),
        False,
        "per-window latency 2.01 ms (median, one thread), budget 2 ms",
    ),
    (
        "too hungry",
        ResourceMeasurement(10, 0.1, 10.5),
        False,
        "peak memory while scoring grew by 10.5 MiB, budget 10 MiB",
    ),
]


@pytest.mark.parametrize(("name", "m", "passed", "reason"), RESOURCES, ids=[r[0] for r in RESOURCES])
def test_budgets_gate(name: str, m: ResourceMeasurement, passed: bool, reason: str | None) -> None:
    result = check_budgets(m, RB)
    assert result.passed is passed, result.reasons
    if reason is None:
        assert result.reasons == []
    else:
        assert reason in result.reasons


def test_decide_passes_only_when_every_gate_passes() -> None:
    ok = GateResult("parity", True)
    bad = GateResult("budgets", False, ["model file is 2 bytes, budget 1 bytes"])
    assert decide([ok, ok]).passed
    assert not decide([ok, bad]).passed
    assert decide([ok, bad]).failed_gates == ["budgets"]
    assert not decide([]).passed


def test_report_json_and_text_are_deterministic_and_readable() -> None:
    gates = [
        check_parity(ParityMeasurement(2e-4, 10), ParityTolerance()),
        check_champion(DetectionMetrics(0.5, 0.2, math.nan, 5, 5), CHAMP, TOL),
    ]
    a, b = decide(gates, subject="m/1"), decide(list(gates), subject="m/1")
    assert a.to_json() == b.to_json()
    assert a.to_text() == b.to_text()
    doc = json.loads(a.to_json())
    assert doc["passed"] is False
    assert doc["failed_gates"] == ["parity", "champion"]
    assert doc["gates"][1]["measurements"]["candidate"]["mean_delay_s"] is None  # NaN is not JSON
    text = a.to_text()
    assert text.startswith("validation of m/1: FAILED (parity, champion)")
    assert "[FAIL] champion" in text
    assert "F1 0.5 is 0.3 below the champion 0.8 (tolerance 0.02)" in text
    assert "f1                     0.5         0.8" in text
