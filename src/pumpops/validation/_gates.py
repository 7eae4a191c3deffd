"""The validation gates as pure decisions: measurements and budgets in, a :class:`GateResult` out.

Nothing here reads a file, opens an ONNX session or talks to MLflow: the
measurement layer (``_measure.py``) gathers the numbers, these functions
judge them, :func:`decide` turns the results into a :class:`ValidationReport`.
Every failing check adds one sentence to ``reasons`` that names the
measured value, the limit and what it means.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "NO_CHAMPION",
    "BehaviourBudgets",
    "BehaviourMeasurement",
    "ChampionTolerances",
    "DetectionMetrics",
    "GateResult",
    "ParityMeasurement",
    "ParityTolerance",
    "ResourceBudgets",
    "ResourceMeasurement",
    "ValidationReport",
    "check_behaviour",
    "check_budgets",
    "check_champion",
    "check_parity",
    "decide",
]

NO_CHAMPION = "no champion: first model of the group"
REPORT_FORMAT = "pumpops.validation-report/1"


def _num(value: float | None) -> float | None:
    """JSON-safe number: NaN and infinities become None."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.4g}{unit}"


@dataclass(frozen=True)
class GateResult:
    """The outcome of one gate.

    Attributes:
        name: the gate (``parity``, ``champion``, ``behaviour``, ``budgets``).
        passed: True when the gate ran and every check of it held (False when it did not run).
        reasons: sentences a person can read: why it failed, or notes on a pass.
        measurements: the numbers the decision was made on (JSON-able).
        not_run: why the gate did not run (None when it ran). A gate that did
            not run is neither passed nor failed: the report says ``not run``.
    """

    name: str
    passed: bool
    reasons: list[str] = field(default_factory=list)
    measurements: dict[str, Any] = field(default_factory=dict)
    not_run: str | None = None

    @property
    def status(self) -> str:
        """``passed``, ``failed`` or ``not run``."""
        if self.not_run is not None:
            return "not run"
        return "passed" if self.passed else "failed"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "name": self.name,
            "status": self.status,
            "passed": self.passed,
            "not_run": self.not_run,
            "reasons": list(self.reasons),
            "measurements": self.measurements,
        }


# --------------------------------------------------------------------------------- parity


@dataclass(frozen=True)
class ParityTolerance:
    """How far ONNX scores may be from the training-time (numpy) scores.

    Attributes:
        max_abs_diff: largest allowed ``|onnx - numpy|`` over all scored rows.
    """

    max_abs_diff: float = 1e-4


@dataclass(frozen=True)
class ParityMeasurement:
    """ONNX vs training-time scores on the held-out rows.

    Attributes:
        max_abs_diff: largest ``|onnx - numpy|`` score difference (NaN if any score was not finite).
        rows: rows compared.
    """

    max_abs_diff: float
    rows: int


def check_parity(m: ParityMeasurement, tol: ParityTolerance) -> GateResult:
    """Gate 1: the exported ONNX graph scores what the trained model scores.

    >>> check_parity(ParityMeasurement(2e-4, 10), ParityTolerance()).reasons
    ['ONNX scores differ from the training-time scores by up to 0.0002 (limit 0.0001) over 10 rows']
    """
    reasons = []
    if m.rows <= 0:
        reasons.append("no held-out rows were scored, parity cannot be shown")
    elif not math.isfinite(m.max_abs_diff) or m.max_abs_diff > tol.max_abs_diff:
        reasons.append(
            f"ONNX scores differ from the training-time scores by up to {_fmt(m.max_abs_diff)} "
            f"(limit {_fmt(tol.max_abs_diff)}) over {m.rows} rows"
        )
    return GateResult(
        "parity",
        not reasons,
        reasons,
        {"max_abs_diff": _num(m.max_abs_diff), "limit": tol.max_abs_diff, "rows": m.rows},
    )


# ------------------------------------------------------------------------ champion vs challenger


@dataclass(frozen=True)
class DetectionMetrics:
    """Point-wise and event metrics of one model on the held-out data.

    Attributes:
        f1: point-wise F1 (higher is better).
        far: point-wise false-alarm rate (lower is better).
        mean_delay_s: mean seconds from an event's start to its first alarm (NaN: every event missed).
        events: labelled events in the held-out data.
        events_missed: events without any alarm inside them.
    """

    f1: float
    far: float
    mean_delay_s: float
    events: int = 0
    events_missed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (NaN as None)."""
        return {
            "f1": _num(self.f1),
            "far": _num(self.far),
            "mean_delay_s": _num(self.mean_delay_s),
            "events": self.events,
            "events_missed": self.events_missed,
        }


@dataclass(frozen=True)
class ChampionTolerances:
    """How much worse than the champion a candidate may be.

    Attributes:
        f1_tolerance: the candidate's F1 may be at most this much lower.
        far_tolerance: its false-alarm rate (a fraction) may be at most this much higher.
        delay_tolerance_s: its mean detection delay may be at most this many seconds longer.
    """

    f1_tolerance: float = 0.02
    far_tolerance: float = 0.01
    delay_tolerance_s: float = 60.0


def check_champion(
    candidate: DetectionMetrics, champion: DetectionMetrics | None, tol: ChampionTolerances
) -> GateResult:
    """Gate 2: the candidate is not worse than the champion beyond the tolerances, on the same data.

    A candidate that misses events the champion found fails as well: a missed
    event has no delay, so the mean delay alone would flatter it.

    >>> check_champion(DetectionMetrics(0.8, 0.01, 30.0), None, ChampionTolerances()).reasons
    ['no champion: first model of the group']
    >>> r = check_champion(DetectionMetrics(0.5, 0.01, 30.0), DetectionMetrics(0.8, 0.01, 30.0),
    ...                    ChampionTolerances())
    >>> r.passed, r.reasons[0]
    (False, 'F1 0.5 is 0.3 below the champion 0.8 (tolerance 0.02)')
    """
    side = {"candidate": candidate.to_dict(), "champion": None if champion is None else champion.to_dict()}
    measurements: dict[str, Any] = {
        **side,
        "tolerances": {
            "f1_tolerance": tol.f1_tolerance,
            "far_tolerance": tol.far_tolerance,
            "delay_tolerance_s": tol.delay_tolerance_s,
        },
    }
    if champion is None:
        return GateResult("champion", True, [NO_CHAMPION], measurements)
    reasons = []
    if not math.isfinite(candidate.f1) or candidate.f1 < champion.f1 - tol.f1_tolerance:
        reasons.append(
            f"F1 {_fmt(candidate.f1)} is {_fmt(champion.f1 - candidate.f1)} below the champion "
            f"{_fmt(champion.f1)} (tolerance {_fmt(tol.f1_tolerance)})"
        )
    if not math.isfinite(candidate.far) or candidate.far > champion.far + tol.far_tolerance:
        reasons.append(
            f"false-alarm rate {_fmt(100 * candidate.far)} % is {_fmt(100 * (candidate.far - champion.far))} "
            f"points above the champion's {_fmt(100 * champion.far)} % "
            f"(tolerance {_fmt(100 * tol.far_tolerance)} points)"
        )
    if candidate.events_missed > champion.events_missed:
        reasons.append(
            f"missed {candidate.events_missed} of {candidate.events} events, "
            f"the champion missed {champion.events_missed}"
        )
    cand_d, champ_d = candidate.mean_delay_s, champion.mean_delay_s
    if math.isfinite(champ_d) and (not math.isfinite(cand_d) or cand_d > champ_d + tol.delay_tolerance_s):
        reasons.append(
            f"mean detection delay {_fmt(cand_d, ' s')} is longer than the champion's "
            f"{_fmt(champ_d, ' s')} by more than {_fmt(tol.delay_tolerance_s, ' s')}"
        )
    return GateResult("champion", not reasons, reasons, measurements)


# ---------------------------------------------------------------------------------- behaviour


@dataclass(frozen=True)
class BehaviourBudgets:
    """What a model must do on simulated faults, clean data and benign drift.

    Attributes:
        max_fault_delay_s: every simulated fault must raise an alarm within this many seconds.
        max_normal_far: largest false-alarm rate (fraction of rows alarmed) on clean normal data.
        max_drift_alarm_rate: largest fraction of rows alarmed on each benign-drift device.
    """

    max_fault_delay_s: float = 900.0
    max_normal_far: float = 0.02
    max_drift_alarm_rate: float = 0.25


@dataclass(frozen=True)
class BehaviourMeasurement:
    """Alarms of the candidate on the simulated behaviour suite.

    Attributes:
        fault_delays_s: per fault kind, seconds from the fault's start to the first
            alarm inside it (None: no alarm at all).
        normal_far: fraction of rows alarmed on the clean device.
        drift_alarm_rates: per drift kind, fraction of rows alarmed on its device.
        skipped: why the suite was not run (None when it was).
    """

    fault_delays_s: Mapping[str, float | None]
    normal_far: float
    drift_alarm_rates: Mapping[str, float]
    skipped: str | None = None


def check_behaviour(m: BehaviourMeasurement, budgets: BehaviourBudgets) -> GateResult:
    """Gate 3: each fault alarms in time, clean data stays quiet, benign drift raises no alarm storm.

    >>> m = BehaviourMeasurement({"seal_leak": None}, 0.0, {"setpoint_change": 0.3})
    >>> for r in check_behaviour(m, BehaviourBudgets()).reasons:
    ...     print(r)
    fault seal_leak: no alarm at all (budget: an alarm within 900 s)
    benign drift setpoint_change: alarm storm, 30 % of rows alarmed (budget 25 %)
    """
    measurements: dict[str, Any] = {
        "fault_delays_s": {k: _num(v) for k, v in sorted(m.fault_delays_s.items())},
        "normal_far": _num(m.normal_far),
        "drift_alarm_rates": {k: _num(v) for k, v in sorted(m.drift_alarm_rates.items())},
        "budgets": {
            "max_fault_delay_s": budgets.max_fault_delay_s,
            "max_normal_far": budgets.max_normal_far,
            "max_drift_alarm_rate": budgets.max_drift_alarm_rate,
        },
    }
    if m.skipped is not None:
        measurements["skipped"] = m.skipped
        return GateResult("behaviour", False, [f"not run: {m.skipped}"], measurements, not_run=m.skipped)
    reasons = []
    for kind, delay in sorted(m.fault_delays_s.items()):
        if delay is None or not math.isfinite(delay):
            reasons.append(
                f"fault {kind}: no alarm at all (budget: an alarm within {_fmt(budgets.max_fault_delay_s)} s)"
            )
        elif delay > budgets.max_fault_delay_s:
            reasons.append(
                f"fault {kind}: first alarm after {_fmt(delay)} s, budget {_fmt(budgets.max_fault_delay_s)} s"
            )
    if not math.isfinite(m.normal_far) or m.normal_far > budgets.max_normal_far:
        reasons.append(
            f"clean normal data: false-alarm rate {_fmt(100 * m.normal_far)} % "
            f"(budget {_fmt(100 * budgets.max_normal_far)} %)"
        )
    for kind, rate in sorted(m.drift_alarm_rates.items()):
        if not math.isfinite(rate) or rate > budgets.max_drift_alarm_rate:
            reasons.append(
                f"benign drift {kind}: alarm storm, {_fmt(100 * rate)} % of rows alarmed "
                f"(budget {_fmt(100 * budgets.max_drift_alarm_rate)} %)"
            )
    if not m.fault_delays_s:
        reasons.append("no simulated fault was scored, fault detection cannot be shown")
    return GateResult("behaviour", not reasons, reasons, measurements)


# ------------------------------------------------------------------------------------ budgets


@dataclass(frozen=True)
class ResourceBudgets:
    """Size, speed and memory a model may use.

    Attributes:
        max_model_bytes: largest ONNX file, bytes.
        max_latency_ms: largest median latency of scoring one window, one thread, ms.
        max_peak_memory_mb: largest growth of peak memory while loading and scoring, MiB.
    """

    max_model_bytes: int = 5_000_000
    max_latency_ms: float = 5.0
    max_peak_memory_mb: float = 64.0


@dataclass(frozen=True)
class ResourceMeasurement:
    """What the model cost on this machine.

    Attributes:
        model_bytes: size of ``model.onnx``, bytes.
        latency_ms: median per-window latency with onnxruntime on one thread, ms.
        peak_memory_mb: growth of peak memory while creating the session and scoring, MiB.
        memory_method: how the memory was measured (see ``docs/validation.md``).
        latency_runs: how many timed runs the median is over.
    """

    model_bytes: int
    latency_ms: float
    peak_memory_mb: float
    memory_method: str = ""
    latency_runs: int = 0


def check_budgets(m: ResourceMeasurement, budgets: ResourceBudgets) -> GateResult:
    """Gate 4: model size, per-window latency and peak memory within the configured budgets.

    >>> check_budgets(ResourceMeasurement(6_000_000, 1.0, 10.0), ResourceBudgets()).reasons
    ['model file is 6000000 bytes, budget 5000000 bytes']
    """
    reasons = []
    if m.model_bytes > budgets.max_model_bytes:
        reasons.append(f"model file is {m.model_bytes} bytes, budget {budgets.max_model_bytes} bytes")
    if not math.isfinite(m.latency_ms) or m.latency_ms > budgets.max_latency_ms:
        reasons.append(
            f"per-window latency {_fmt(m.latency_ms)} ms (median, one thread), "
            f"budget {_fmt(budgets.max_latency_ms)} ms"
        )
    if not math.isfinite(m.peak_memory_mb) or m.peak_memory_mb > budgets.max_peak_memory_mb:
        reasons.append(
            f"peak memory while scoring grew by {_fmt(m.peak_memory_mb)} MiB, "
            f"budget {_fmt(budgets.max_peak_memory_mb)} MiB"
        )
    return GateResult(
        "budgets",
        not reasons,
        reasons,
        {
            "model_bytes": m.model_bytes,
            "latency_ms": _num(m.latency_ms),
            "latency_runs": m.latency_runs,
            "peak_memory_mb": _num(m.peak_memory_mb),
            "memory_method": m.memory_method,
            "budgets": {
                "max_model_bytes": budgets.max_model_bytes,
                "max_latency_ms": budgets.max_latency_ms,
                "max_peak_memory_mb": budgets.max_peak_memory_mb,
            },
        },
    )


# ------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class ValidationReport:
    """Every gate's result; the candidate passes only if every gate that ran passed.

    A gate that could not run (the behaviour suite of a replay-only group) is
    reported as ``not run`` with its reason, never as passed.

    Attributes:
        passed: True when every gate that ran passed (and at least one ran).
        gates: the gate results, in the order they were decided.
        subject: what was validated (e.g. the candidate folder or ``name/version``).
        context: where the measurements came from (data, champion, config), JSON-able.
    """

    passed: bool
    gates: tuple[GateResult, ...]
    subject: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)

    def gate(self, name: str) -> GateResult:
        """The result of the gate called ``name``.

        Raises:
            KeyError: no such gate in the report.
        """
        for g in self.gates:
            if g.name == name:
                return g
        raise KeyError(name)

    @property
    def failed_gates(self) -> list[str]:
        """Names of the gates that ran and failed."""
        return [g.name for g in self.gates if g.status == "failed"]

    @property
    def not_run_gates(self) -> list[str]:
        """Names of the gates that did not run."""
        return [g.name for g in self.gates if g.status == "not run"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "format": REPORT_FORMAT,
            "subject": self.subject,
            "passed": self.passed,
            "failed_gates": self.failed_gates,
            "not_run_gates": self.not_run_gates,
            "gates": [g.to_dict() for g in self.gates],
            "context": dict(self.context),
        }

    def to_json(self) -> str:
        """Deterministic JSON (sorted keys, no NaN) for machines."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, allow_nan=False) + "\n"

    def to_text(self) -> str:
        """A report for people: verdict, then each gate with its reasons and, for the champion, a table.

        >>> print(decide([GateResult("parity", True, [], {"max_abs_diff": 0.0})]).to_text())
        validation: PASSED (1 passed)
          [pass] parity
        """
        counts = {s: sum(g.status == s for g in self.gates) for s in ("passed", "failed", "not run")}
        tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        head = f"validation{' of ' + self.subject if self.subject else ''}: "
        head += f"PASSED ({tally})" if self.passed else f"FAILED ({', '.join(self.failed_gates) or tally})"
        lines = [head]
        marks = {"passed": "pass", "failed": "FAIL", "not run": "not run"}
        for g in self.gates:
            lines.append(f"  [{marks[g.status]}] {g.name}")
            lines.extend(f"      - {r}" for r in g.reasons)
            if g.name == "champion":
                lines.extend(_side_by_side(g.measurements))
        return "\n".join(lines)


def _side_by_side(measurements: Mapping[str, Any]) -> list[str]:
    cand = measurements.get("candidate") or {}
    champ = measurements.get("champion") or {}
    if not cand:
        return []
    rows = [("metric", "candidate", "champion")]
    for key in ("f1", "far", "mean_delay_s", "events", "events_missed"):
        rows.append((key, _cell(cand.get(key)), _cell(champ.get(key)) if champ else "-"))
    return [f"      {a:<14}{b:>12}{c:>12}" for a, b, c in rows]


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.4g}"


def decide(
    results: Sequence[GateResult], *, subject: str = "", context: Mapping[str, Any] | None = None
) -> ValidationReport:
    """The verdict: passed only if at least one gate ran and every gate that ran passed.

    >>> decide([GateResult("parity", True), GateResult("budgets", False, ["too big"])]).passed
    False
    >>> decide([]).passed
    False
    """
    gates = tuple(results)
    return ValidationReport(
        passed=any(g.not_run is None for g in gates) and all(g.passed for g in gates if g.not_run is None),
        gates=gates,
        subject=subject,
        context=dict(context or {}),
    )
