"""Whole rollouts driven by step() against a fake fleet that obeys the desired state it is sent."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pumpops.audit import canonical_json
from pumpops.rollout import (
    FINAL_STATUSES,
    Action,
    Audit,
    DeviceReport,
    Emit,
    GatePolicy,
    RolloutState,
    SetDesired,
    Start,
    Tick,
    new_rollout,
    step,
)

DEVICES = [f"pump-{i:02d}" for i in range(40)]
POLICY = GatePolicy(min_soak_s=120, deadline_s=900)
TICK_S = 60.0


@dataclass
class FakeFleet:
    """Devices that install what they are told on their next report (when online).

    ``desired`` plays the retained MQTT messages: a device that was offline
    finds its desired version waiting when it comes back.
    """

    installed: dict[str, str]
    offline: set[str] = field(default_factory=set)
    crash_on: dict[str, str] = field(default_factory=dict)  # device -> version it crash-loops on
    alarm_rate: dict[str, float] = field(default_factory=lambda: {"v1": 1.0, "v2": 0.4})
    desired: dict[str, str] = field(default_factory=dict)

    def apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SetDesired):
                for device in action.device_ids:
                    self.desired[device] = action.version

    def reports(self, now_s: float) -> tuple[DeviceReport, ...]:
        out = []
        for device, was in self.installed.items():
            if device in self.offline:
                continue
            version = self.installed[device] = self.desired.get(device, was)
            crash = self.crash_on.get(device) == version
            out.append(
                DeviceReport(
                    device_id=device,
                    installed_version=version,
                    health="unknown" if crash else "ok",
                    crash_loop=crash,
                    alarm_rate_per_h=None if crash else self.alarm_rate[version],
                    baseline_alarm_rate_per_h=self.alarm_rate["v1"],
                    last_seen_s=now_s,
                )
            )
        return tuple(out)


def fleet_on_v1(**kw: object) -> FakeFleet:
    return FakeFleet(installed=dict.fromkeys(DEVICES, "v1"), **kw)  # type: ignore[arg-type]


def rollout() -> RolloutState:
    return new_rollout(
        rollout_id="r-2026-11-25-north",
        version="v2",
        previous_version="v1",
        group="north",
        devices=DEVICES,
        waves_percent=[1, 10, 50, 100],
        policy=POLICY,
    )


def drive(
    state: RolloutState, fleet: FakeFleet, *, restart_after_wave: int | None = None, max_ticks: int = 200
) -> tuple[RolloutState, list[Action], float]:
    """Start, then tick every minute until the rollout ends; optionally 'restart the hub' via JSON."""
    log: list[Action] = []
    now = 0.0
    state, actions = step(state, Start(now_s=now))
    fleet.apply(actions)
    log += actions
    for _ in range(max_ticks):
        if state.status in FINAL_STATUSES:
            break
        now += TICK_S
        state, actions = step(state, Tick(now_s=now, reports=fleet.reports(now)))
        fleet.apply(actions)
        log += actions
        if restart_after_wave is not None and state.current_wave == restart_after_wave + 1:
            state = RolloutState.from_dict(json.loads(json.dumps(state.to_dict())))
            restart_after_wave = None
    return state, log, now


def audit_actions(log: list[Action]) -> list[str]:
    return [a.action for a in log if isinstance(a, Audit)]


def test_scenario_four_waves_to_completion_across_a_hub_restart() -> None:
    state = rollout()
    assert [len(w) for w in state.waves] == [1, 3, 16, 20]
    fleet = fleet_on_v1()
    final, log, now = drive(state, fleet, restart_after_wave=1)
    assert final.status == "completed"
    assert audit_actions(log) == [
        "rollout.started",
        "rollout.wave_passed",
        "rollout.wave_passed",
        "rollout.wave_passed",
        "rollout.completed",
    ]
    assert [a.device_ids for a in log if isinstance(a, SetDesired)] == list(state.waves)
    assert set(fleet.installed.values()) == {"v2"}
    # each wave passes on the first tick once it has soaked 120 s: the second tick after its start
    assert now == 4 * 2 * TICK_S
    assert [e.event for e in log if isinstance(e, Emit)] == audit_actions(log)
    for a in log:
        if isinstance(a, Audit):
            canonical_json(a.detail)


def test_scenario_rolls_back_when_wave_2_crash_loops() -> None:
    state = rollout()
    wave_2 = state.waves[1]
    fleet = fleet_on_v1(crash_on={wave_2[0]: "v2"})
    final, log, _ = drive(state, fleet)
    assert final.status == "rolled_back"
    assert final.current_wave == 1
    assert audit_actions(log) == [
        "rollout.started",
        "rollout.wave_passed",
        "rollout.rolling_back",
        "rollout.rolled_back",
    ]
    sent_back = state.waves[0] + wave_2
    assert [a for a in log if isinstance(a, SetDesired)][-1] == SetDesired(sent_back, "v1")
    assert set(fleet.installed.values()) == {"v1"}  # waves 3 and 4 never got v2
    failure = next(a for a in log if isinstance(a, Audit) and a.action == "rollout.rolling_back")
    assert failure.detail["cause"] == "gate"
    assert "crash-loop" in failure.detail["verdict"]["reasons"][0]
    assert wave_2[0] in failure.detail["verdict"]["reasons"][0]


def test_scenario_pauses_on_a_noisy_model_and_changes_no_desired_state() -> None:
    state = new_rollout(
        rollout_id="r-noisy",
        version="v2",
        previous_version="v1",
        group="north",
        devices=DEVICES,
        waves_percent=[1, 10, 50, 100],
        policy=GatePolicy(min_soak_s=120, deadline_s=900, on_fail="pause"),
    )
    fleet = fleet_on_v1(alarm_rate={"v1": 1.0, "v2": 5.0})
    final, log, _ = drive(state, fleet)
    assert final.status == "paused"
    assert (final.current_wave, audit_actions(log)) == (0, ["rollout.started", "rollout.paused"])
    assert fleet.desired == dict.fromkeys(state.waves[0], "v2")


def test_scenario_offline_devices_do_not_block_and_catch_up_later() -> None:
    state = rollout()
    # two devices of the 16-device third wave stay offline through the whole rollout:
    # 14 healthy of 16 is below 90 % of the wave, so the wave waits for its deadline,
    # then passes on 14 of 14 responders (quorum 80 % of 16 = 13).
    away = set(state.waves[2][:2])
    fleet = fleet_on_v1(offline=away)
    final, log, _ = drive(state, fleet)
    assert final.status == "completed"
    passed = [a for a in log if isinstance(a, Audit) and a.detail.get("judged_wave_index") == 2]
    assert passed[0].detail["verdict"]["responders"] == 14
    assert "2 offline device(s) will get it when they return" in passed[0].detail["verdict"]["reasons"][0]
    assert passed[0].detail["at_s"] - final.history[2].at_s >= POLICY.deadline_s  # waited for the deadline
    # they return: the retained desired state is there, and they install it
    assert all(fleet.desired[d] == "v2" for d in away)
    fleet.offline.clear()
    fleet.reports(10_000)
    assert set(fleet.installed.values()) == {"v2"}
