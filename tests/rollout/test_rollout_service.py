"""The rollout service against fakes: agent messages → reports, actions → desired/audit/events/state."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from pumpops.errors import BrokerError, ConfigError, InputError, NotFoundError, StoreError
from pumpops.fleet import Device
from pumpops.rollout import (
    GatePolicy,
    ReportOptions,
    RolloutService,
    Tick,
    desired_payload,
    device_report,
    parse_release_ref,
)

from .fakes import FakeEvents, FakePublisher, FakeStore, release

T0 = 1_767_225_600.0  # 2026-01-01, the hub's clock (s)
GROUP = "g1"
DEVICES = [Device(f"p-{i:02d}", f"site-{i % 2}", "acme-ansi", GROUP) for i in range(10)]
POLICY = GatePolicy(min_soak_s=60, deadline_s=600, on_fail="rollback")


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def state_body(
    version: int | None, *, health: str = "ok", desired: int | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "status": "detecting" if version is not None else "no_model",
        "model_name": "pumpops-skab",
        "model_version": version,
        "slot": "a",
        "health": health,
        "health_reasons": [],
        "last_update_error": None,
        "desired_version": None if desired is None else str(desired),
        "stale": False,
        "counts": {},
        **extra,
    }


def summary_body(version: int, *, hours: float, alarms: int, start_ms: int = 0) -> dict[str, Any]:
    return {
        "period_start_ms": start_ms,
        "period_end_ms": start_ms + round(hours * 3_600_000),
        "rows": 100,
        "alarms_raised": alarms,
        "alarm_rows": alarms * 3,
        "model_name": "pumpops-skab",
        "model_version": version,
    }


@pytest.fixture
def world() -> tuple[FakeStore, FakePublisher, FakeEvents, Clock]:
    store = FakeStore(DEVICES, [release("pumpops-skab", 1, GROUP, 1), release("pumpops-skab", 2, GROUP, 2)])
    for d in DEVICES:  # every device runs v1 before the rollout
        store.add_message(d.device_id, "state", state_body(1), at_s=T0 - 3600, site=d.site)
    return store, FakePublisher(), FakeEvents(), Clock()


def service(world: tuple[FakeStore, FakePublisher, FakeEvents, Clock], **kw: Any) -> RolloutService:
    store, publisher, events, clock = world
    return RolloutService(store, publisher, events=events, actor="ops@test", clock=clock, **kw)


def obey(
    world: tuple[FakeStore, FakePublisher, FakeEvents, Clock],
    *,
    at_s: float,
    bad: frozenset[str] = frozenset(),
) -> None:
    """Every device with a retained desired state installs it and reports (``bad`` ones roll back)."""
    store, publisher, _, _ = world
    for device_id, doc in publisher.desired().items():
        wanted = int(doc["version"])
        site = next(d.site for d in DEVICES if d.device_id == device_id)
        if device_id in bad and wanted == 2:
            body = state_body(1, health="rolled_back", desired=wanted)
        else:
            body = state_body(wanted, desired=wanted)
        store.add_message(device_id, "state", body, at_s=at_s, site=site)


# -- device_report: agent messages → what the gate sees ------------------------------------------

R = 10_000.0  # wave start


def _states(store: FakeStore, *bodies: tuple[float, dict[str, Any]]) -> FakeStore:
    for at, body in bodies:
        store.add_message("p-1", "state", body, at_s=at)
    return store


@pytest.mark.parametrize(
    ("name", "states", "expect"),
    [
        ("installed and ok", [(R + 5, state_body(2, desired=2))], ("2", "ok", False)),
        ("still on the old model", [(R + 5, state_body(1, desired=2))], ("1", "ok", False)),
        (
            "refused this release",
            [(R + 5, state_body(1, health="refused", desired=2))],
            ("1", "failed", False),
        ),
        (
            "an older refusal is not this release's",
            [(R + 5, state_body(1, health="refused", desired=1))],
            ("1", "unknown", False),
        ),
        (
            "incompatible with this release",
            [(R + 5, state_body(1, health="incompatible", desired=2))],
            ("1", "failed", False),
        ),
        (
            "rolled back from this release",
            [(R + 5, state_body(1, health="rolled_back", desired=2))],
            ("1", "failed", True),
        ),
        (
            "failed on this release",
            [(R + 5, state_body(None, health="failed", desired=2))],
            (None, "failed", True),
        ),
        ("never heard of the release", [(R + 5, state_body(None, health="none"))], (None, "unknown", False)),
        (
            "flips back and forth",
            [(R + i, state_body(2 if i % 2 else 1, desired=2)) for i in range(1, 6)],
            ("2", "ok", True),
        ),
        (
            "one install is not a flip",
            [
                (R + 1, state_body(1, desired=2)),
                (R + 2, {**state_body(2, desired=2), "status": "calibrating"}),
                (R + 3, state_body(2, desired=2)),
            ],
            ("2", "ok", False),
        ),
        (
            "flips before the wave do not count",
            [(R - 5 + i, state_body(2 if i % 2 else 1, desired=2)) for i in range(5)]
            + [(R + 1, state_body(2, desired=2))],
            ("2", "ok", False),
        ),
    ],
)
def test_device_report_reads_the_newest_state(
    name: str, states: list[tuple[float, dict[str, Any]]], expect: tuple[Any, ...]
) -> None:
    store = _states(FakeStore(), *states)
    report = device_report(
        "p-1", store.agent_messages(kind="state"), [], version="2", previous_version="1", since_s=R
    )
    assert report is not None, name
    assert (report.installed_version, report.health, report.crash_loop) == expect, name
    assert report.last_seen_s == pytest.approx(states[-1][0])


def test_device_report_is_none_without_any_state() -> None:
    assert device_report("p-1", [], [], version="2", previous_version="1", since_s=R) is None


@pytest.mark.parametrize(
    ("summaries", "rate", "baseline"),
    [
        # alarms raised per hour + minutes under alarm per hour (alarm_rows / rows × 60)
        ([(1, 2.0, 2), (2, 1.0, 6)], 6.0 + 60 * 18 / 100, 1.0 + 60 * 6 / 100),
        ([(1, 1.0, 1), (1, 1.0, 3), (2, 0.5, 1), (2, 0.5, 0)], 1.0 + 60 * 3 / 200, 2.0 + 60 * 12 / 200),
        ([(2, 0.05, 1)], None, None),  # 3 minutes summarised: too short for a rate
        ([(3, 5.0, 9)], None, None),  # another model's summaries count for neither
        ([], None, None),
    ],
)
def test_device_report_alarm_rates_per_model_from_summaries(
    summaries: list[tuple[int, float, int]], rate: float | None, baseline: float | None
) -> None:
    store = _states(FakeStore(), (R + 5, state_body(2, desired=2)))
    for i, (version, hours, alarms) in enumerate(summaries):
        store.add_message(
            "p-1", "summary", summary_body(version, hours=hours, alarms=alarms, start_ms=i * 10**8), at_s=R
        )
    report = device_report(
        "p-1",
        store.agent_messages(kind="state"),
        store.agent_messages(kind="summary"),
        version="2",
        previous_version="1",
        since_s=R,
        options=ReportOptions(min_rate_period_s=600),
    )
    assert report is not None
    assert report.alarm_rate_per_h == (None if rate is None else pytest.approx(rate))
    assert report.baseline_alarm_rate_per_h == (None if baseline is None else pytest.approx(baseline))


def test_an_alarm_that_stays_on_weighs_more_than_a_few_short_ones() -> None:
    store = _states(FakeStore(), (R + 5, state_body(2, desired=2)))
    stuck = {**summary_body(1, hours=2.0, alarms=1), "rows": 7200, "alarm_rows": 7200}  # one alarm, never off
    flicker = {**summary_body(2, hours=2.0, alarms=4, start_ms=10**8), "rows": 7200, "alarm_rows": 120}
    store.add_message("p-1", "summary", stuck, at_s=R)
    store.add_message("p-1", "summary", flicker, at_s=R)
    report = device_report(
        "p-1",
        store.agent_messages(kind="state"),
        store.agent_messages(kind="summary"),
        version="2",
        previous_version="1",
        since_s=R,
    )
    assert report is not None
    assert report.baseline_alarm_rate_per_h == pytest.approx(0.5 + 60.0)
    assert report.alarm_rate_per_h == pytest.approx(2.0 + 1.0)
    assert report.alarm_rate_per_h < report.baseline_alarm_rate_per_h


def test_parse_release_ref_and_desired_payload() -> None:
    assert parse_release_ref(" m/12 ") == ("m", 12)
    for bad in ["m", "m/", "/3", "m/x", "m/0", "m/-1"]:
        with pytest.raises(ConfigError, match="<model>/<version>"):
            parse_release_ref(bad)
    assert json.loads(desired_payload("7", "r-1")) == {"version": 7, "rollout_id": "r-1"}


# -- the service ---------------------------------------------------------------------------------


def test_start_writes_wave_one_desired_audits_emits_and_stores(world: Any) -> None:
    store, publisher, events, _ = world
    rid = service(world).start("pumpops-skab/2", GROUP, [20, 100], POLICY, rollout_id="r-1", reason="test")
    assert rid == "r-1"
    state = service(world).get(rid)
    assert (state.status, state.version, state.previous_version, state.current_wave) == (
        "running",
        "2",
        "1",
        0,
    )
    assert len(state.waves[0]) == 2
    desired = publisher.desired()
    assert sorted(desired) == sorted(state.waves[0])
    assert all(doc == {"version": 2, "rollout_id": "r-1"} for doc in desired.values())
    site = {d.device_id: d.site for d in DEVICES}
    assert {t for t, _ in publisher.published} == {
        f"pumpops/v1/{site[d]}/{d}/desired" for d in state.waves[0]
    }
    assert [(a[0], a[1], a[2]) for a in store.audit] == [("ops@test", "rollout.started", "rollout/r-1")]
    assert store.audit[0][3]["reason"] == "test"
    assert store.audit[0][4] == int(T0 * 1e6)
    assert [(k, s) for k, s, _ in events.emitted] == [("rollout.started", "rollout/r-1")]
    row = store.get_rollout("r-1")
    assert (row.status, row.release, row.group) == ("running", "pumpops-skab/2", GROUP)


def test_a_two_wave_rollout_completes_and_survives_a_restart(world: Any) -> None:
    store, publisher, events, clock = world
    rid = service(world).start("pumpops-skab/2", GROUP, [20, 100], POLICY, rollout_id="r-1")
    clock.now += 10
    assert [r.actions for r in service(world).tick()] == [()]  # nobody has reported yet: wait
    obey(world, at_s=clock.now)
    clock.now += 60
    # a new service instance (a restarted hub) continues from the store
    (result,) = RolloutService(store, publisher, events=events, actor="ops@test", clock=clock).tick()
    assert (result.before, result.after, result.actions) == ("running", "running", ("rollout.wave_passed",))
    assert len(publisher.desired()) == len(DEVICES)
    assert service(world).get(rid).current_wave == 1
    obey(world, at_s=clock.now + 1)
    clock.now += 61
    (result,) = service(world).tick()
    assert result.after == "completed"
    assert [a[1] for a in store.audit] == ["rollout.started", "rollout.wave_passed", "rollout.completed"]
    assert [e[0] for e in events.emitted] == ["rollout.started", "rollout.wave_passed", "rollout.completed"]
    assert service(world).tick() == []  # nothing is active any more
    assert service(world).current_version(GROUP) == "2"


def test_a_crash_looping_wave_rolls_back_to_the_previous_version(world: Any) -> None:
    store, publisher, _, clock = world
    rid = service(world).start("pumpops-skab/2", GROUP, [20, 100], POLICY, rollout_id="r-1")
    wave0 = service(world).get(rid).waves[0]
    obey(world, at_s=clock.now + 5, bad=frozenset({wave0[0]}))
    clock.now += 10
    (result,) = service(world).tick()
    assert result.after == "rolling_back"
    assert {d: doc["version"] for d, doc in publisher.desired().items()} == dict.fromkeys(wave0, 1)
    detail = store.audit[-1][3]
    assert detail["cause"] == "gate"
    assert "crash-loop" in detail["verdict"]["reasons"][0]
    obey(world, at_s=clock.now + 5)
    clock.now += 10
    (result,) = service(world).tick()
    assert result.after == "rolled_back"
    assert store.audit[-1][3]["unconfirmed"] == 0
    assert service(world).current_version(GROUP) == "1"


def test_a_noisy_model_pauses_when_on_fail_is_pause(world: Any) -> None:
    store, _, _, clock = world
    policy = GatePolicy(min_soak_s=60, deadline_s=600, on_fail="pause", max_alarm_rate_ratio=2.0)
    rid = service(world).start("pumpops-skab/2", GROUP, [20, 100], policy, rollout_id="r-1")
    obey(world, at_s=clock.now + 5)
    for device_id in service(world).get(rid).waves[0]:
        old = {**summary_body(1, hours=10, alarms=10), "rows": 36_000, "alarm_rows": 30}  # 1/h + 0.05 min/h
        new = {**summary_body(2, hours=1, alarms=8), "rows": 3_600, "alarm_rows": 24}  # 8/h + 0.4 min/h
        store.add_message(device_id, "summary", old, at_s=T0 - 100)
        store.add_message(device_id, "summary", new, at_s=T0 + 50)
    clock.now += 61
    (result,) = service(world).tick()
    assert result.after == "paused"
    assert store.audit[-1][3]["verdict"]["alarm_rate_ratio"] == pytest.approx(8.0)


def _gate_paused(world: Any) -> str:
    """A rollout of v2 whose first wave's soak saw many alarms and paused it."""
    store, _, _, clock = world
    policy = GatePolicy(min_soak_s=60, deadline_s=600, on_fail="pause", max_alarm_rate_ratio=2.0)
    rid = service(world).start("pumpops-skab/2", GROUP, [20, 100], policy, rollout_id="r-1")
    obey(world, at_s=clock.now + 5)
    for device_id in service(world).get(rid).waves[0]:
        old = {**summary_body(1, hours=10, alarms=10), "rows": 36_000, "alarm_rows": 30}
        new = {**summary_body(2, hours=1, alarms=8), "rows": 3_600, "alarm_rows": 24}
        store.add_message(device_id, "summary", old, at_s=T0 - 100)
        store.add_message(device_id, "summary", new, at_s=T0 + 50)
    clock.now += 61
    (result,) = service(world).tick()
    assert result.after == "paused"
    return rid


def test_a_retrain_supersedes_a_rollout_its_gate_paused(world: Any) -> None:
    store, _, _, _ = world
    rid = _gate_paused(world)
    assert service(world).get(rid).paused_by_gate
    store._releases.append(release("pumpops-skab", 3, GROUP, 3))
    with pytest.raises(InputError, match="active rollout"):  # not asked to supersede: refused as before
        service(world).start("pumpops-skab/3", GROUP, [50, 100], rollout_id="r-2")
    new = service(world).start(
        "pumpops-skab/3", GROUP, [50, 100], rollout_id="r-2", reason="retrained", supersede_gate_paused=True
    )
    old = service(world).get(rid)
    assert old.status == "aborted"
    assert old.sent_devices  # aborted without a rollback: the sent wave keeps v2 until r-2 reaches it
    assert service(world).get(new).status == "running"
    aborted = [entry for entry in store.audit if entry[1] == "rollout.aborted"]
    assert aborted
    assert "superseded by pumpops-skab/3 (retrained)" in json.dumps(aborted[-1])


def test_a_rollout_an_operator_paused_is_never_superseded(world: Any) -> None:
    store, _, _, _ = world
    rid = service(world).start("pumpops-skab/2", GROUP, [20, 100], rollout_id="r-1")
    service(world).pause(rid, reason="holding for the site visit")
    state = service(world).get(rid)
    assert state.status == "paused"
    assert not state.paused_by_gate
    store._releases.append(release("pumpops-skab", 3, GROUP, 3))
    with pytest.raises(InputError, match="active rollout"):
        service(world).start("pumpops-skab/3", GROUP, [50, 100], rollout_id="r-2", supersede_gate_paused=True)
    assert service(world).get(rid).status == "paused"


@pytest.mark.parametrize(
    ("commands", "statuses", "desired_version"),
    [
        ([("pause", {})], ["paused"], 2),
        ([("pause", {}), ("resume", {})], ["paused", "running"], 2),
        ([("abort", {})], ["aborted"], 2),
        ([("pause", {}), ("abort", {"roll_back": True})], ["paused", "rolling_back"], 1),
    ],
)
def test_operator_commands_step_the_stored_rollout(
    world: Any, commands: list[tuple[str, dict[str, Any]]], statuses: list[str], desired_version: int
) -> None:
    store, publisher, events, clock = world
    service(world).start("pumpops-skab/2", GROUP, [20, 100], POLICY, rollout_id="r-1")
    for (command, kwargs), status in zip(commands, statuses, strict=True):
        clock.now += 1
        state = getattr(service(world), command)("r-1", reason="ops", **kwargs)
        assert state.status == status
        assert store.get_rollout("r-1").status == status
    assert {doc["version"] for doc in publisher.desired().values()} == {desired_version}
    assert len(store.audit) == len(events.emitted) == 1 + len(commands)


@pytest.mark.parametrize(
    ("command", "words"),
    [("resume", "only a paused rollout"), ("start_again", "active rollout")],
)
def test_commands_the_status_does_not_allow_are_refused(world: Any, command: str, words: str) -> None:
    svc = service(world)
    svc.start("pumpops-skab/2", GROUP, [20, 100], POLICY, rollout_id="r-1")
    call = (
        (lambda: svc.start("pumpops-skab/2", GROUP, [20, 100], POLICY))
        if command == "start_again"
        else (lambda: getattr(svc, command)("r-1"))
    )
    with pytest.raises(InputError, match=words):
        call()


def test_start_refuses_unknown_releases_and_rollouts(world: Any) -> None:
    svc = service(world)
    with pytest.raises(NotFoundError, match="no release of pumpops-skab/9 for group g1"):
        svc.start("pumpops-skab/9", GROUP)
    with pytest.raises(NotFoundError, match="no release"):
        svc.start("pumpops-skab/2", "other-group")
    with pytest.raises(NotFoundError, match="no rollout 'nope'"):
        svc.pause("nope")
    with pytest.raises(ConfigError, match="already runs 1"):
        svc.start("pumpops-skab/1", GROUP)


def test_the_previous_version_comes_from_what_the_devices_report_or_is_given(world: Any) -> None:
    store, *_ = world
    svc = service(world)
    assert svc.current_version(GROUP) == "1"
    assert svc.current_version("empty") is None
    rid = svc.start("pumpops-skab/2", GROUP, [100], GatePolicy(on_fail="pause"), previous_version="7")
    assert svc.get(rid).previous_version == "7"
    store.rollout_rows.clear()
    for d in DEVICES[:6]:
        store.add_message(d.device_id, "state", state_body(3), at_s=T0, site=d.site)
    assert svc.current_version(GROUP) == "3"  # most devices' newest state


def test_a_broker_outage_leaves_the_rollout_as_stored_and_the_next_tick_retries(world: Any) -> None:
    store, publisher, events, clock = world
    publisher.fail = True
    with pytest.raises(BrokerError, match="rollout r-1 is stored as pending"):
        service(world).start("pumpops-skab/2", GROUP, [20, 100], POLICY, rollout_id="r-1")
    assert store.get_rollout("r-1").status == "pending"
    assert store.audit == []
    assert events.emitted == []
    assert publisher.desired() == {}
    (result,) = service(world).tick()
    assert "down" in (result.error or "")
    publisher.fail = False
    clock.now += 5
    (result,) = service(world).tick()  # the controller completes the interrupted start
    assert (result.before, result.after) == ("pending", "running")
    assert len(publisher.desired()) == 2


def test_a_step_on_a_state_changed_meanwhile_is_not_carried_out(world: Any) -> None:
    store, publisher, _, clock = world
    svc = service(world)
    svc.start("pumpops-skab/2", GROUP, [20, 100], POLICY, rollout_id="r-1")
    stale = store.get_rollout("r-1")
    svc.pause("r-1")  # another process pauses it
    obey(world, at_s=clock.now + 5)
    clock.now += 61
    reports = svc.reports(svc.get("r-1"))
    result = svc._apply("r-1", Tick(clock.now, reports), loaded=stale)  # what a racing controller does
    assert "changed" in (result.error or "")
    assert store.get_rollout("r-1").status == "paused"
    assert len(publisher.desired()) == 2


def test_the_controller_loop_outlives_a_store_outage_and_stops_when_told(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, publisher, _, clock = world
    svc = service(world)
    svc.start("pumpops-skab/2", GROUP, [20, 100], POLICY, rollout_id="r-1")
    obey(world, at_s=clock.now + 5)
    clock.now += 61
    real = store.rollouts
    failures = iter([True, False])

    def flaky(**kw: Any) -> Any:
        if next(failures, False):
            raise StoreError("database is down")
        return real(**kw)

    monkeypatch.setattr(store, "rollouts", flaky)
    stop = threading.Event()
    loop = threading.Thread(target=svc.run, args=(stop,), kwargs={"interval_s": 0.01})
    loop.start()
    deadline = time.monotonic() + 10
    while len(publisher.desired()) < len(DEVICES) and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    loop.join(10)
    assert not loop.is_alive()
    assert svc.get("r-1").current_wave == 1
    with pytest.raises(ConfigError, match="interval_s"):
        svc.run(stop, interval_s=0)
