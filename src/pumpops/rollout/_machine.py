"""The rollout state machine: ``step(state, event) -> (new state, actions)``, with no I/O.

The service (``_service.py``) feeds events in: the operator's Start, Pause,
Resume and Abort, and a periodic Tick carrying the devices' latest reports.
It carries the returned actions out: :class:`SetDesired` (write the retained
``desired`` message of each device), :class:`Audit` (append to the audit
chain) and :class:`Emit` (publish an event), and stores the new state
(:meth:`RolloutState.to_dict`) so a restarted hub continues where it was.
Every transition returns exactly one ``Audit`` and one ``Emit``; an event
that changes nothing (a Tick while a wave waits, or outside ``running`` and
``rolling_back``) returns the same state and no actions; an event the
status does not allow raises :class:`~pumpops.errors.InputError`.

Transitions (``docs/rollout.md`` has the full table, with every refusal):

============  ==============================  ==================  ==========================
status        event                           new status          desired
============  ==============================  ==================  ==========================
pending       Start                           running (wave 0)    wave 0 → release
pending       Abort                           aborted             —
running       Tick, gate passes, more waves   running (wave+1)    next wave → release
running       Tick, gate passes, last wave    completed           —
running       Tick, gate fails, pause         paused              —
running       Tick, gate fails, rollback      rolling_back        sent devices → previous
running       Pause                           paused              —
running/      Abort                           aborted             —
paused
running/      Abort(roll_back=True)           rolling_back        sent devices → previous
paused
paused        Resume                          running (clock      —
                                              restarts)
rolling_back  Tick, all back or deadline      rolled_back         —
============  ==============================  ==================  ==========================

May import: errors, this package's ``_plan`` and ``_gate``, the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, TypeVar, get_args

from pumpops.errors import ConfigError, InputError
from pumpops.rollout._gate import DeviceReport, GatePolicy, GateVerdict, judge_wave
from pumpops.rollout._plan import plan_waves

__all__ = [
    "FINAL_STATUSES",
    "ROLLOUT_SCHEMA",
    "Abort",
    "Action",
    "Audit",
    "Emit",
    "Event",
    "Pause",
    "Resume",
    "RolloutState",
    "RolloutStatus",
    "SetDesired",
    "Start",
    "Tick",
    "Transition",
    "new_rollout",
    "step",
]

_T = TypeVar("_T")

#: ``schema`` of :meth:`RolloutState.to_dict`; a change of layout gets a new number.
ROLLOUT_SCHEMA: Final = "pumpops.rollout/1"

RolloutStatus = Literal["pending", "running", "paused", "rolling_back", "rolled_back", "completed", "aborted"]
_STATUSES: Final = get_args(RolloutStatus)
# How many device ids an audit entry lists (counts are always complete).
_LISTED: Final = 20
#: Statuses a rollout never leaves.
FINAL_STATUSES: Final = frozenset({"rolled_back", "completed", "aborted"})


# Events ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    """Start the rollout: wave 0's devices get the release as desired state."""

    now_s: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed and these are the devices' latest reports: judge the current wave."""

    now_s: float
    reports: tuple[DeviceReport, ...] = ()


@dataclass(frozen=True, slots=True)
class Pause:
    """Stop moving on to further waves; desired states stay as they are."""

    now_s: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Resume:
    """Continue a paused rollout; the current wave's gate clock starts again."""

    now_s: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Abort:
    """End the rollout for good; ``roll_back``: the devices sent the release get the previous one."""

    now_s: float
    reason: str = ""
    roll_back: bool = False


Event = Start | Tick | Pause | Resume | Abort


# Actions --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetDesired:
    """Write ``version`` as the desired model of each of these devices (retained MQTT message)."""

    device_ids: tuple[str, ...]
    version: str


@dataclass(frozen=True, slots=True)
class Audit:
    """Append an audit entry (the service adds the actor and the time)."""

    action: str
    subject: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Emit:
    """Publish an event (``<prefix>/events/<event>``) after the state is stored."""

    event: str
    payload: dict[str, Any]


Action = SetDesired | Audit | Emit


# State ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transition:
    """One line of a rollout's history.

    Attributes:
        at_s: when (the hub's clock, s).
        action: the audit action (``rollout.wave_passed``, ...).
        from_status: status before.
        to_status: status after.
        wave_index: the current wave after the transition (0-based).
        cause: who moved a pause or a rollback: ``gate`` (the wave's gate failed) or
            ``operator``; empty for other transitions and in states stored before it was kept.
    """

    at_s: float
    action: str
    from_status: str
    to_status: str
    wave_index: int
    cause: str = ""


@dataclass(frozen=True, slots=True)
class RolloutState:
    """Everything a rollout needs to continue after a hub restart.

    Attributes:
        rollout_id: the rollout (also the key of its wave plan).
        version: the release being rolled out.
        previous_version: the release the group ran before (``None``: its first rollout).
        group: the device group.
        waves: device ids per wave, fixed when the rollout was created.
        policy: the gate every wave must pass.
        current_wave: index of the wave being judged (0-based).
        status: see the module docstring.
        wave_started_s: when the current wave's (or the rollback's) desired
            states were written; ``None`` until the start (and for ever in a
            rollout aborted before it started).
        history: every transition so far, oldest first.

    Raises:
        InputError: the fields contradict each other (a corrupt stored state).
    """

    rollout_id: str
    version: str
    previous_version: str | None
    group: str
    waves: tuple[tuple[str, ...], ...]
    policy: GatePolicy
    current_wave: int = 0
    status: RolloutStatus = "pending"
    wave_started_s: float | None = None
    history: tuple[Transition, ...] = field(default=())

    def __post_init__(self) -> None:
        where = f"rollout {self.rollout_id!r}"
        if self.status not in _STATUSES:
            raise InputError(f"{where}: status {self.status!r} is not one of {', '.join(_STATUSES)}")
        if not self.waves or any(not w for w in self.waves):
            raise InputError(f"{where}: needs at least one wave and no empty wave")
        devices = [d for wave in self.waves for d in wave]
        if len(set(devices)) != len(devices):
            raise InputError(f"{where}: a device is in more than one wave")
        if not 0 <= self.current_wave < len(self.waves):
            raise InputError(f"{where}: current wave {self.current_wave} outside 0..{len(self.waves) - 1}")
        # aborted before the start is the one status that may go either way
        if self.status != "aborted" and (self.status == "pending") != (self.wave_started_s is None):
            raise InputError(f"{where}: wave_started_s must be set exactly when the rollout has started")

    @property
    def subject(self) -> str:
        """The audit subject of this rollout (``rollout/<id>``)."""
        return f"rollout/{self.rollout_id}"

    @property
    def sent_devices(self) -> tuple[str, ...]:
        """Devices that have been told to run the release (waves up to the current one, once started)."""
        if self.wave_started_s is None:
            return ()
        return tuple(d for wave in self.waves[: self.current_wave + 1] for d in wave)

    @property
    def paused_by_gate(self) -> bool:
        """Paused because a wave's gate failed (not by an operator)."""
        return self.status == "paused" and bool(self.history) and self.history[-1].cause == "gate"

    def to_dict(self) -> dict[str, Any]:
        """The state as JSON-ready values (what the service stores)."""
        return {
            "schema": ROLLOUT_SCHEMA,
            "rollout_id": self.rollout_id,
            "version": self.version,
            "previous_version": self.previous_version,
            "group": self.group,
            "waves": [list(w) for w in self.waves],
            "policy": self.policy.to_dict(),
            "current_wave": self.current_wave,
            "status": self.status,
            "wave_started_s": self.wave_started_s,
            "history": [
                {
                    "at_s": t.at_s,
                    "action": t.action,
                    "from_status": t.from_status,
                    "to_status": t.to_status,
                    "wave_index": t.wave_index,
                    "cause": t.cause,
                }
                for t in self.history
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutState:
        """Read a state written by :meth:`to_dict`.

        Raises:
            InputError: another schema, a missing or mistyped field, or fields
                that contradict each other.

        >>> import json
        >>> s = new_rollout(rollout_id="r-1", version="v2", previous_version="v1", group="g",
        ...                 devices=["p-1", "p-2"], waves_percent=[50, 100], policy=GatePolicy())
        >>> s, _ = step(s, Start(now_s=0))
        >>> RolloutState.from_dict(json.loads(json.dumps(s.to_dict()))) == s
        True
        """
        if data.get("schema") != ROLLOUT_SCHEMA:
            raise InputError(
                f"stored rollout has schema {data.get('schema')!r}; this hub reads {ROLLOUT_SCHEMA}"
            )
        try:
            policy = GatePolicy.from_dict(data["policy"])
            return cls(
                rollout_id=_typed(data["rollout_id"], str, "rollout_id"),
                version=_typed(data["version"], str, "version"),
                previous_version=(
                    None
                    if data["previous_version"] is None
                    else _typed(data["previous_version"], str, "previous_version")
                ),
                group=_typed(data["group"], str, "group"),
                waves=tuple(
                    tuple(_typed(d, str, "waves") for d in _typed(w, list, "waves"))
                    for w in _typed(data["waves"], list, "waves")
                ),
                policy=policy,
                current_wave=_typed(data["current_wave"], int, "current_wave"),
                status=data["status"],
                wave_started_s=(None if data["wave_started_s"] is None else float(data["wave_started_s"])),
                history=tuple(
                    Transition(
                        float(t["at_s"]),
                        str(t["action"]),
                        str(t["from_status"]),
                        str(t["to_status"]),
                        int(t["wave_index"]),
                        str(t.get("cause", "")),
                    )
                    for t in data["history"]
                ),
            )
        except KeyError as exc:
            raise InputError(f"stored rollout lacks the field {exc.args[0]!r}") from None
        except ConfigError as exc:
            raise InputError(f"stored rollout has an invalid gate policy: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise InputError(f"stored rollout has a mistyped field: {exc}") from exc


def _typed(value: object, kind: type[_T], name: str) -> _T:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputError(f"stored rollout: {name} must be {kind.__name__}, not {value!r}")
    return value


def new_rollout(
    *,
    rollout_id: str,
    version: str,
    previous_version: str | None,
    group: str,
    devices: Sequence[str],
    waves_percent: Sequence[int],
    policy: GatePolicy,
) -> RolloutState:
    """A pending rollout with its wave plan (:func:`plan_waves` keyed by the rollout id).

    Raises:
        ConfigError: the waves or the group do not make a plan, the release is
            the one the group already runs, or ``on_fail="rollback"`` without a
            previous release to go back to.

    >>> s = new_rollout(rollout_id="r-1", version="v2", previous_version="v1", group="g",
    ...                 devices=["p-1", "p-2", "p-3"], waves_percent=[50, 100], policy=GatePolicy())
    >>> s.status, [len(w) for w in s.waves]
    ('pending', [2, 1])
    """
    if not rollout_id or not version or not group:
        raise ConfigError("a rollout needs a rollout id, a release version and a group")
    if version == previous_version:
        raise ConfigError(f"group {group} already runs {version}: nothing to roll out")
    if policy.on_fail == "rollback" and previous_version is None:
        raise ConfigError(
            f"group {group} has no previous release to roll back to; start its first rollout "
            "with --on-fail pause (a gate with on_fail 'pause')"
        )
    waves = plan_waves(devices, waves_percent, key=rollout_id)
    return RolloutState(
        rollout_id=rollout_id,
        version=version,
        previous_version=previous_version,
        group=group,
        waves=tuple(tuple(w) for w in waves),
        policy=policy,
    )


# The machine ----------------------------------------------------------------------------------


def _refuse(state: RolloutState, event: Event, why: str) -> InputError:
    name = type(event).__name__.lower()
    return InputError(f"rollout {state.rollout_id} is {state.status}: cannot {name} it ({why})")


def _move(
    state: RolloutState,
    event: Event,
    action: str,
    *,
    status: RolloutStatus,
    current_wave: int | None = None,
    restart_clock: bool = False,
    desired: SetDesired | None = None,
    extra: Mapping[str, Any] | None = None,
) -> tuple[RolloutState, list[Action]]:
    """The new state plus its actions: desired first, then the audit entry and the event."""
    now = event.now_s
    wave = state.current_wave if current_wave is None else current_wave
    cause = str((extra or {}).get("cause", ""))
    new = replace(
        state,
        status=status,
        current_wave=wave,
        wave_started_s=now if restart_clock else state.wave_started_s,
        history=(*state.history, Transition(now, action, state.status, status, wave, cause)),
    )
    detail: dict[str, Any] = {
        "rollout_id": state.rollout_id,
        "group": state.group,
        "version": state.version,
        "previous_version": state.previous_version,
        "from_status": state.status,
        "to_status": status,
        "wave_index": wave,
        "waves": len(state.waves),
        "at_s": now,
    }
    reason = getattr(event, "reason", "")
    if reason:
        detail["reason"] = reason
    if desired is not None:
        detail["desired"] = {"version": desired.version, "devices": len(desired.device_ids)}
    detail.update(extra or {})
    actions: list[Action] = [] if desired is None else [desired]
    actions += [Audit(action, state.subject, detail), Emit(action, dict(detail))]
    return new, actions


def _roll_back(
    state: RolloutState, event: Event, extra: Mapping[str, Any]
) -> tuple[RolloutState, list[Action]]:
    if state.previous_version is None:
        raise _refuse(state, event, "the group has no previous release to roll back to")
    desired = SetDesired(state.sent_devices, state.previous_version)
    return _move(
        state,
        event,
        "rollout.rolling_back",
        status="rolling_back",
        restart_clock=True,
        desired=desired,
        extra=extra,
    )


def step(state: RolloutState, event: Event) -> tuple[RolloutState, list[Action]]:
    """Apply one event to a rollout.

    Args:
        state: the rollout now.
        event: what happened.

    Returns:
        The new state and the actions to carry out, in order (``SetDesired``
        before ``Audit`` and ``Emit``). Unchanged state and no actions when
        nothing happens.

    Raises:
        InputError: the event is not allowed in this status (the message says why).

    >>> s = new_rollout(rollout_id="r-1", version="v2", previous_version="v1", group="g",
    ...                 devices=["p-1", "p-2"], waves_percent=[50, 100], policy=GatePolicy(min_soak_s=0))
    >>> s, actions = step(s, Start(now_s=0))
    >>> s.status, [type(a).__name__ for a in actions]
    ('running', ['SetDesired', 'Audit', 'Emit'])
    >>> ok = DeviceReport(s.waves[0][0], "v2", "ok", False, None, None, last_seen_s=5)
    >>> s, actions = step(s, Tick(now_s=10, reports=(ok,)))
    >>> s.current_wave, actions[0] == SetDesired(s.waves[1], "v2")
    (1, True)
    """
    if not isinstance(event, Start | Tick | Pause | Resume | Abort):
        raise InputError(f"{type(event).__name__} is not a rollout event (Start, Tick, Pause, Resume, Abort)")
    if not math.isfinite(event.now_s):
        raise InputError(f"event time {event.now_s!r} is not a finite number of seconds")
    if isinstance(event, Tick):
        if state.status == "running":
            return _tick_running(state, event)
        if state.status == "rolling_back":
            return _tick_rolling_back(state, event)
        return state, []  # nothing is judged while pending, paused or finished
    if state.status in FINAL_STATUSES:
        raise _refuse(state, event, "the rollout has ended; start a new one")
    return _HANDLERS[type(event)](state, event)


def _on_start(state: RolloutState, event: Start) -> tuple[RolloutState, list[Action]]:
    if state.status != "pending":
        raise _refuse(state, event, "it has already started")
    return _move(
        state,
        event,
        "rollout.started",
        status="running",
        current_wave=0,
        restart_clock=True,
        desired=SetDesired(state.waves[0], state.version),
    )


def _on_pause(state: RolloutState, event: Pause) -> tuple[RolloutState, list[Action]]:
    if state.status != "running":
        why = {
            "pending": "it has not started; abort it instead",
            "paused": "it is already paused",
            "rolling_back": "a rollback runs to its end",
        }[state.status]
        raise _refuse(state, event, why)
    return _move(state, event, "rollout.paused", status="paused", extra={"cause": "operator"})


def _on_resume(state: RolloutState, event: Resume) -> tuple[RolloutState, list[Action]]:
    if state.status != "paused":
        raise _refuse(state, event, "only a paused rollout can be resumed")
    return _move(state, event, "rollout.resumed", status="running", restart_clock=True)


def _on_abort(state: RolloutState, event: Abort) -> tuple[RolloutState, list[Action]]:
    if state.status == "rolling_back":
        raise _refuse(state, event, "a rollback runs to its end")
    if event.roll_back and state.status != "pending":
        return _roll_back(state, event, {"cause": "operator"})
    return _move(
        state,
        event,
        "rollout.aborted",
        status="aborted",
        extra={"devices_on_release": len(state.sent_devices)},
    )


_Handler = Callable[[RolloutState, Any], tuple[RolloutState, list[Action]]]
_HANDLERS: Final[dict[type, _Handler]] = {
    Start: _on_start,
    Pause: _on_pause,
    Resume: _on_resume,
    Abort: _on_abort,
}


def _tick_running(state: RolloutState, tick: Tick) -> tuple[RolloutState, list[Action]]:
    assert state.wave_started_s is not None  # running implies started (checked in __post_init__)
    verdict: GateVerdict = judge_wave(
        state.policy,
        state.waves[state.current_wave],
        tick.reports,
        version=state.version,
        now_s=tick.now_s,
        wave_started_s=state.wave_started_s,
    )
    extra = {"verdict": verdict.to_dict(), "judged_wave_index": state.current_wave}
    if verdict.outcome == "wait":
        return state, []
    if verdict.outcome == "pass":
        if state.current_wave + 1 == len(state.waves):
            return _move(state, tick, "rollout.completed", status="completed", extra=extra)
        nxt = state.current_wave + 1
        return _move(
            state,
            tick,
            "rollout.wave_passed",
            status="running",
            current_wave=nxt,
            restart_clock=True,
            desired=SetDesired(state.waves[nxt], state.version),
            extra=extra,
        )
    if state.policy.on_fail == "pause":
        return _move(state, tick, "rollout.paused", status="paused", extra={**extra, "cause": "gate"})
    return _roll_back(state, tick, {**extra, "cause": "gate"})


def _tick_rolling_back(state: RolloutState, tick: Tick) -> tuple[RolloutState, list[Action]]:
    """Done when every device sent back confirms the previous release, or at the deadline."""
    assert state.wave_started_s is not None
    assert state.previous_version is not None
    sent = state.sent_devices
    latest: dict[str, DeviceReport] = {}
    for r in tick.reports:
        if r.last_seen_s >= state.wave_started_s and (
            r.device_id not in latest or r.last_seen_s >= latest[r.device_id].last_seen_s
        ):
            latest[r.device_id] = r
    unconfirmed = [
        d for d in sent if d not in latest or latest[d].installed_version != state.previous_version
    ]
    if unconfirmed and tick.now_s - state.wave_started_s < state.policy.deadline_s:
        return state, []
    extra: dict[str, Any] = {
        "confirmed": len(sent) - len(unconfirmed),
        "unconfirmed": len(unconfirmed),
        "unconfirmed_devices": unconfirmed[:_LISTED],  # the rest keep the retained desired state too
    }
    return _move(state, tick, "rollout.rolled_back", status="rolled_back", extra=extra)
