"""step() as a table: every event in every status, the transitions allowed and the refusals."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from pumpops.audit import canonical_json
from pumpops.errors import ConfigError, InputError
from pumpops.rollout import (
    ROLLOUT_SCHEMA,
    Abort,
    Audit,
    DeviceReport,
    Emit,
    Event,
    GatePolicy,
    Pause,
    Resume,
    RolloutState,
    SetDesired,
    Start,
    Tick,
    Transition,
    new_rollout,
    step,
)

DEVICES = [f"p-{i}" for i in range(10)]
POLICY = GatePolicy(min_soak_s=0, deadline_s=600)


def pending(policy: GatePolicy = POLICY, previous: str | None = "v1") -> RolloutState:
    return new_rollout(
        rollout_id="r-1",
        version="v2",
        previous_version=previous,
        group="north",
        devices=DEVICES,
        waves_percent=[10, 50, 100],
        policy=policy,
    )


def in_status(status: str, **kw: Any) -> RolloutState:
    """A rollout in ``status``, at wave 1 (of 0..2) unless pending, its wave started at t=100."""
    state = pending(**kw)
    if status == "pending":
        return state
    return replace(state, status=status, current_wave=1, wave_started_s=100.0)  # type: ignore[arg-type]


STATUSES = ["pending", "running", "paused", "rolling_back", "rolled_back", "completed", "aborted"]
EVENTS: dict[str, Event] = {
    "start": Start(now_s=200),
    "tick-nothing-heard": Tick(now_s=200),
    "pause": Pause(now_s=200, reason="night shift"),
    "resume": Resume(now_s=200),
    "abort": Abort(now_s=200, reason="wrong release"),
    "abort-roll-back": Abort(now_s=200, roll_back=True),
}
NOOP = "no-op"
# (status, event) -> (new status, audit action, desired version or None) | NOOP | "refused: <fragment>"
EXPECTED: dict[tuple[str, str], Any] = {
    ("pending", "start"): ("running", "rollout.started", "v2"),
    ("pending", "tick-nothing-heard"): NOOP,
    ("pending", "pause"): "refused: it has not started; abort it instead",
    ("pending", "resume"): "refused: only a paused rollout can be resumed",
    ("pending", "abort"): ("aborted", "rollout.aborted", None),
    ("pending", "abort-roll-back"): ("aborted", "rollout.aborted", None),  # nothing was sent
    ("running", "start"): "refused: it has already started",
    ("running", "tick-nothing-heard"): NOOP,  # the gate waits
    ("running", "pause"): ("paused", "rollout.paused", None),
    ("running", "resume"): "refused: only a paused rollout can be resumed",
    ("running", "abort"): ("aborted", "rollout.aborted", None),
    ("running", "abort-roll-back"): ("rolling_back", "rollout.rolling_back", "v1"),
    ("paused", "start"): "refused: it has already started",
    ("paused", "tick-nothing-heard"): NOOP,
    ("paused", "pause"): "refused: it is already paused",
    ("paused", "resume"): ("running", "rollout.resumed", None),
    ("paused", "abort"): ("aborted", "rollout.aborted", None),
    ("paused", "abort-roll-back"): ("rolling_back", "rollout.rolling_back", "v1"),
    ("rolling_back", "start"): "refused: it has already started",
    ("rolling_back", "tick-nothing-heard"): NOOP,  # before the deadline
    ("rolling_back", "pause"): "refused: a rollback runs to its end",
    ("rolling_back", "resume"): "refused: only a paused rollout can be resumed",
    ("rolling_back", "abort"): "refused: a rollback runs to its end",
    ("rolling_back", "abort-roll-back"): "refused: a rollback runs to its end",
}
for _final in ("rolled_back", "completed", "aborted"):
    for _event in EVENTS:
        EXPECTED[(_final, _event)] = (
            NOOP if _event.startswith("tick") else "refused: the rollout has ended; start a new one"
        )


def test_the_table_covers_every_status_and_event() -> None:
    assert set(EXPECTED) == {(s, e) for s in STATUSES for e in EVENTS}


@pytest.mark.parametrize(
    ("status", "event_name"),
    [pytest.param(s, e, id=f"{s}-{e}") for s in STATUSES for e in EVENTS],
)
def test_step_every_event_in_every_status(status: str, event_name: str) -> None:
    state, event = in_status(status), EVENTS[event_name]
    expected = EXPECTED[(status, event_name)]
    if expected == NOOP:
        assert step(state, event) == (state, [])
        return
    if isinstance(expected, str):
        with pytest.raises(InputError, match=expected.removeprefix("refused: ")) as info:
            step(state, event)
        assert f"rollout r-1 is {status}" in str(info.value)
        return
    new_status, action, desired_version = expected
    new, actions = step(state, event)
    assert new.status == new_status
    audits = [a for a in actions if isinstance(a, Audit)]
    emits = [a for a in actions if isinstance(a, Emit)]
    desired = [a for a in actions if isinstance(a, SetDesired)]
    assert [a.action for a in audits] == [action]  # exactly one audit entry ...
    assert [e.event for e in emits] == [action]  # ... and one event per transition
    assert audits[0].subject == "rollout/r-1"
    assert audits[0].detail["from_status"] == status
    assert audits[0].detail["to_status"] == new_status
    canonical_json(audits[0].detail)  # the audit chain accepts it
    assert new.history[-1].action == action
    assert len(new.history) == len(state.history) + 1
    if desired_version is None:
        assert desired == []
    else:
        assert [d.version for d in desired] == [desired_version]
        assert actions[0] is desired[0]  # desired states are written before the audit entry


def test_start_sets_wave_zero_desired_and_starts_the_clock() -> None:
    state, actions = step(pending(), Start(now_s=5))
    assert actions[0] == SetDesired(state.waves[0], "v2")
    assert (state.current_wave, state.wave_started_s) == (0, 5)


def test_roll_back_sends_every_device_that_got_the_release() -> None:
    state = in_status("running")
    new, actions = step(state, Abort(now_s=300, roll_back=True))
    assert actions[0] == SetDesired(state.waves[0] + state.waves[1], "v1")
    assert new.wave_started_s == 300


def test_resume_restarts_the_wave_clock() -> None:
    new, _ = step(in_status("paused"), Resume(now_s=999))
    assert (new.status, new.current_wave, new.wave_started_s) == ("running", 1, 999)


def test_operator_reason_reaches_the_audit_entry() -> None:
    _, actions = step(in_status("running"), Pause(now_s=1, reason="night shift"))
    audit = next(a for a in actions if isinstance(a, Audit))
    assert audit.detail["reason"] == "night shift"
    assert audit.detail["cause"] == "operator"


def _report(device: str, version: str, *, crash: bool = False, seen: float = 150) -> DeviceReport:
    return DeviceReport(device, version, "ok", crash, 1.0, 1.0, seen)


@pytest.mark.parametrize(
    ("policy", "make_reports", "now_s", "status", "action", "desired"),
    [
        pytest.param(
            POLICY,
            lambda s: [_report(d, "v2") for d in s.waves[1]],
            200,
            "running",
            "rollout.wave_passed",
            "next wave",
            id="pass-moves-to-next-wave",
        ),
        pytest.param(
            POLICY,
            lambda s: [_report(d, "v2", crash=True) for d in s.waves[1]],
            200,
            "rolling_back",
            "rollout.rolling_back",
            "v1",
            id="fail-with-rollback",
        ),
        pytest.param(
            replace(POLICY, on_fail="pause"),
            lambda s: [_report(d, "v2", crash=True) for d in s.waves[1]],
            200,
            "paused",
            "rollout.paused",
            None,
            id="fail-with-pause",
        ),
        pytest.param(
            POLICY,
            lambda s: [],
            800,
            "rolling_back",
            "rollout.rolling_back",
            "v1",
            id="deadline-without-quorum",
        ),
    ],
)
def test_step_tick_while_running(
    policy: GatePolicy, make_reports: Any, now_s: float, status: str, action: str, desired: str | None
) -> None:
    state = in_status("running", policy=policy)
    new, actions = step(state, Tick(now_s=now_s, reports=tuple(make_reports(state))))
    assert new.status == status
    audit = next(a for a in actions if isinstance(a, Audit))
    assert audit.action == action
    assert audit.detail["verdict"]["outcome"] in {"pass", "fail"}
    sets = [a for a in actions if isinstance(a, SetDesired)]
    if desired == "next wave":
        assert sets == [SetDesired(state.waves[2], "v2")]
        assert (new.current_wave, new.wave_started_s) == (2, now_s)
    elif desired is None:
        assert sets == []
    else:
        assert sets == [SetDesired(state.waves[0] + state.waves[1], desired)]


def test_step_tick_passing_the_last_wave_completes() -> None:
    state = replace(in_status("running"), current_wave=2)
    new, actions = step(state, Tick(now_s=200, reports=tuple(_report(d, "v2") for d in state.waves[2])))
    assert new.status == "completed"
    assert [type(a) for a in actions] == [Audit, Emit]


@pytest.mark.parametrize(
    ("reports", "now_s", "expected", "unconfirmed"),
    [
        pytest.param("all-back", 200, "rolled_back", 0, id="all-confirm-previous"),
        pytest.param("one-silent", 200, None, None, id="one-silent-waits"),
        pytest.param("one-silent", 700, "rolled_back", 1, id="one-silent-at-deadline"),
        pytest.param("one-still-new", 700, "rolled_back", 1, id="one-still-on-release-at-deadline"),
    ],
)
def test_step_tick_while_rolling_back(
    reports: str, now_s: float, expected: str | None, unconfirmed: int
) -> None:
    state = in_status("rolling_back")
    sent = state.sent_devices
    got = [_report(d, "v1") for d in sent]
    if reports == "one-silent":
        got = got[1:]
    elif reports == "one-still-new":
        got = [_report(sent[0], "v2"), *got[1:]]
    new, actions = step(state, Tick(now_s=now_s, reports=tuple(got)))
    if expected is None:
        assert (new, actions) == (state, [])
        return
    assert new.status == expected
    audit = next(a for a in actions if isinstance(a, Audit))
    assert audit.detail["unconfirmed"] == unconfirmed
    assert audit.detail["confirmed"] == len(sent) - unconfirmed


def test_abort_with_roll_back_refused_without_a_previous_release() -> None:
    state = in_status("running", policy=replace(POLICY, on_fail="pause"), previous=None)
    with pytest.raises(InputError, match="no previous release"):
        step(state, Abort(now_s=1, roll_back=True))


def test_step_refuses_what_is_not_an_event() -> None:
    with pytest.raises(InputError, match="not a rollout event"):
        step(pending(), Transition(0, "x", "a", "b", 0))  # type: ignore[arg-type]


def test_abort_before_the_start_leaves_nothing_to_undo() -> None:
    new, actions = step(pending(), Abort(now_s=3, roll_back=True))
    assert (new.status, new.wave_started_s, new.sent_devices) == ("aborted", None, ())
    assert next(a for a in actions if isinstance(a, Audit)).detail["devices_on_release"] == 0
    assert RolloutState.from_dict(json.loads(json.dumps(new.to_dict()))) == new


def test_step_refuses_a_time_that_is_not_finite() -> None:
    with pytest.raises(InputError, match="not a finite number"):
        step(pending(), Start(now_s=float("nan")))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"version": "v1"}, "already runs v1", id="same-version"),
        pytest.param({"previous_version": None}, "no previous release", id="rollback-without-previous"),
        pytest.param({"group": ""}, "needs a rollout id", id="no-group"),
        pytest.param({"waves_percent": [50, 40, 100]}, "40 follows 50", id="bad-waves"),
    ],
)
def test_new_rollout_refuses(changes: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "rollout_id": "r-1",
        "version": "v2",
        "previous_version": "v1",
        "group": "north",
        "devices": DEVICES,
        "waves_percent": [10, 50, 100],
        "policy": POLICY,
    }
    with pytest.raises(ConfigError, match=message):
        new_rollout(**(args | changes))


def test_state_json_round_trip_mid_rollout() -> None:
    state, _ = step(pending(), Start(now_s=0))
    state, _ = step(state, Tick(now_s=60, reports=tuple(_report(d, "v2", seen=30) for d in state.waves[0])))
    state, _ = step(state, Pause(now_s=70, reason="lunch"))
    assert (state.status, state.current_wave, len(state.history)) == ("paused", 1, 3)
    restored = RolloutState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored == state
    # and it carries on exactly as the original would
    assert step(restored, Resume(now_s=80)) == step(state, Resume(now_s=80))


def _stored() -> dict[str, Any]:
    state, _ = step(pending(), Start(now_s=0))
    return json.loads(json.dumps(state.to_dict()))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"schema": "pumpops.rollout/0"}, "this hub reads " + ROLLOUT_SCHEMA, id="other-schema"),
        pytest.param({"status": "sleeping"}, "status 'sleeping'", id="unknown-status"),
        pytest.param({"current_wave": 3}, "current wave 3 outside 0..2", id="wave-out-of-range"),
        pytest.param({"current_wave": "1"}, "current_wave must be int", id="wave-mistyped"),
        pytest.param({"waves": [["p-1"], []]}, "no empty wave", id="empty-wave"),
        pytest.param({"wave_started_s": None}, "wave_started_s must be set", id="running-without-clock"),
        pytest.param({"policy": {"deadline_s": -1}}, "invalid gate policy", id="bad-policy"),
        pytest.param({"history": [{"at_s": 1}]}, "lacks the field 'action'", id="history-missing-field"),
        pytest.param({"waves": "p-1"}, "waves must be list", id="waves-not-a-list"),
        pytest.param({"waves": [["p-1"], ["p-1"]]}, "more than one wave", id="device-in-two-waves"),
    ],
)
def test_state_from_dict_refuses(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        RolloutState.from_dict(_stored() | change)


def test_state_from_dict_names_a_missing_field() -> None:
    doc = _stored()
    del doc["group"]
    with pytest.raises(InputError, match="lacks the field 'group'"):
        RolloutState.from_dict(doc)
