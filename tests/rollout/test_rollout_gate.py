"""judge_wave as a table: each row a wave's reports at one moment and the verdict expected."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pumpops.errors import ConfigError, InputError
from pumpops.rollout import DeviceReport, GatePolicy, judge_wave

WAVE = [f"d-{i}" for i in range(10)]
# started at 0; soak 60 s; deadline 600 s
POLICY = GatePolicy(min_soak_s=60, deadline_s=600)


def rep(
    device: str,
    version: str | None = "v2",
    health: str = "ok",
    *,
    crash: bool = False,
    rate: float | None = 1.0,
    base: float | None = 1.0,
    seen: float = 50.0,
) -> DeviceReport:
    return DeviceReport(device, version, health, crash, rate, base, seen)  # type: ignore[arg-type]


def healthy(n: int, **kw: Any) -> list[DeviceReport]:
    return [rep(d, **kw) for d in WAVE[:n]]


def others(start: int, **kw: Any) -> list[DeviceReport]:
    return [rep(d, **kw) for d in WAVE[start:]]


CASES = [
    # (id, policy, reports, now_s, outcome, reason fragment)
    ("all-pass", POLICY, healthy(10), 100, "pass", "10 of 10 device(s) run v2 healthily"),
    ("all-healthy-but-soaking", POLICY, healthy(10), 30, "wait", "soaking: 30 of 60 s"),
    ("one-crash-loop", POLICY, [*healthy(9), rep("d-9", crash=True)], 100, "fail", "1 device(s) crash-loop"),
    ("crash-loop-fails-even-while-soaking", POLICY, [rep("d-0", crash=True)], 5, "fail", "crash-loop"),
    (
        "one-crash-loop-tolerated",
        replace(POLICY, max_crash_loops=1),
        [*healthy(9), rep("d-9", crash=True)],
        100,
        "pass",
        "9 of 10",
    ),
    ("alarm-rate-5x-baseline", POLICY, healthy(10, rate=5.0, base=1.0), 100, "fail", "ratio 5 "),
    ("alarm-rate-2.5x-baseline", POLICY, healthy(10, rate=2.5, base=1.0), 100, "pass", "10 of 10"),
    ("alarm-rate-drops", POLICY, healthy(10, rate=0.1, base=4.0), 100, "pass", "10 of 10"),
    (
        "zero-baseline-floor-keeps-ratio-finite",
        POLICY,
        healthy(10, rate=1.0, base=0.0),
        100,
        "pass",
        "10 of 10",
    ),
    (
        "zero-baseline-above-floor-times-ratio",
        POLICY,
        healthy(10, rate=2.0, base=0.0),
        100,
        "fail",
        "ratio 4 ",
    ),
    ("alarm-rate-not-judged-while-soaking", POLICY, healthy(10, rate=50.0), 30, "wait", "soaking"),
    ("no-baseline-first-rollout", POLICY, healthy(10, base=None), 100, "pass", "10 of 10"),
    ("no-rates-yet", POLICY, healthy(10, rate=None, base=None), 100, "pass", "10 of 10"),
    (
        "two-failed-installs-make-90pct-unreachable",
        POLICY,
        healthy(8) + others(8, version="v1", health="failed"),
        10,
        "fail",
        "2 of 10 device(s) report the release failed (d-8, d-9)",
    ),
    (
        "one-failed-install-tolerated",
        POLICY,
        healthy(9) + others(9, version="v1", health="failed"),
        100,
        "pass",
        "9",
    ),
    ("quorum-not-reached-before-deadline-waits", POLICY, healthy(5), 300, "wait", "not heard from since"),
    ("quorum-not-reached-at-deadline-fails", POLICY, healthy(5), 600, "fail", "quorum not reached: 5 of 10"),
    (
        "offline-ignored-at-deadline-with-quorum",
        POLICY,
        healthy(8),
        601,
        "pass",
        "8 of 8 responding device(s) run v2 healthily at the deadline; 2 offline",
    ),
    (
        "responders-not-healthy-at-deadline",
        POLICY,
        [*healthy(6), rep("d-6", "v1"), rep("d-7", "v1")],
        601,
        "fail",
        "only 6 of 8 responding device(s)",
    ),
    ("still-installing-waits", POLICY, healthy(5) + others(5, version="v1"), 100, "wait", "5 of 10"),
    ("reports-from-before-the-wave-do-not-count", POLICY, healthy(10, seen=-5.0), 100, "wait", "d-0"),
    (
        "stale-reports-at-deadline-fail-quorum",
        POLICY,
        healthy(10, seen=-5.0),
        600,
        "fail",
        "0 of 10 device(s)",
    ),
    ("other-devices-ignored", POLICY, [*healthy(10), rep("x-1", crash=True)], 100, "pass", "10 of 10"),
    (
        "latest-report-per-device-wins",
        POLICY,
        [rep("d-0", crash=True, seen=10.0), *healthy(10, seen=40.0)],
        100,
        "pass",
        "10 of 10",
    ),
    (
        "quorum-fraction-exact-no-float-error",
        replace(POLICY, quorum_fraction=0.7, min_installed_fraction=0.7),
        healthy(7),
        600,
        "pass",
        "7 of 7",
    ),
]


@pytest.mark.parametrize(
    ("policy", "reports", "now_s", "outcome", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_judge_wave(
    policy: GatePolicy, reports: list[DeviceReport], now_s: float, outcome: str, reason: str
) -> None:
    verdict = judge_wave(policy, WAVE, reports, version="v2", now_s=now_s, wave_started_s=0.0)
    assert verdict.outcome == outcome, verdict.reasons
    assert any(reason in r for r in verdict.reasons), verdict.reasons
    assert verdict.wave_size == 10


def test_judge_wave_counts_and_ratio() -> None:
    verdict = judge_wave(POLICY, WAVE, healthy(8, rate=2.0), version="v2", now_s=700, wave_started_s=0)
    assert (verdict.responders, verdict.healthy, verdict.alarm_rate_ratio) == (8, 8, 2.0)
    assert verdict.to_dict()["reasons"] == list(verdict.reasons)


def test_judge_wave_refuses_an_empty_wave() -> None:
    with pytest.raises(InputError, match="without devices"):
        judge_wave(POLICY, [], [], version="v2", now_s=0, wave_started_s=0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"min_installed_fraction": 0.0}, "min_installed_fraction", id="fraction-zero"),
        pytest.param({"quorum_fraction": 1.5}, "quorum_fraction", id="quorum-over-one"),
        pytest.param({"quorum_fraction": float("nan")}, "quorum_fraction", id="quorum-nan"),
        pytest.param({"deadline_s": 0}, "deadline_s", id="deadline-zero"),
        pytest.param({"deadline_s": float("inf")}, "deadline_s", id="deadline-inf"),
        pytest.param({"min_soak_s": 7200.0}, "min_soak_s", id="soak-beyond-deadline"),
        pytest.param({"max_crash_loops": -1}, "max_crash_loops", id="crash-loops-negative"),
        pytest.param({"max_crash_loops": 1.5}, "max_crash_loops", id="crash-loops-float"),
        pytest.param({"max_alarm_rate_ratio": 0}, "max_alarm_rate_ratio", id="ratio-zero"),
        pytest.param({"min_alarm_rate_floor_per_h": 0}, "min_alarm_rate_floor_per_h", id="floor-zero"),
        pytest.param({"on_fail": "explode"}, "on_fail", id="on-fail-unknown"),
    ],
)
def test_gate_policy_refuses(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GatePolicy(**changes)


def test_gate_policy_round_trip_and_unknown_key() -> None:
    policy = GatePolicy(on_fail="pause", deadline_s=120, min_soak_s=10)
    assert GatePolicy.from_dict(policy.to_dict()) == policy
    with pytest.raises(ConfigError, match="unknown setting"):
        GatePolicy.from_dict({"deadline": 5})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"health": "meh"}, "health 'meh'", id="health-unknown"),
        pytest.param({"rate": -1.0}, "alarm_rate_per_h", id="rate-negative"),
        pytest.param({"base": float("inf")}, "baseline_alarm_rate_per_h", id="baseline-inf"),
        pytest.param({"seen": float("nan")}, "last_seen_s", id="seen-nan"),
    ],
)
def test_device_report_refuses(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        rep("d-0", **changes)
