"""The rollout service: the thin shell that carries the state machine's decisions out.

It holds no rollout logic (ADR 0009): :func:`~pumpops.rollout.step` decides,
this module does the I/O around it.

- **Start** (:meth:`RolloutService.start`): find the release in the store,
  the group's devices and the version the group runs now, make the rollout
  (:func:`~pumpops.rollout.new_rollout`), store it, feed ``Start``.
- **Tick** (:meth:`RolloutService.tick`): for every active rollout in the
  store, build one :class:`~pumpops.rollout.DeviceReport` per device from the
  agent messages the hub's ingest stored (:func:`device_report`), feed
  ``Tick`` and carry the actions out.
- **Pause, resume, abort**: feed the operator's event.

Actions are carried out in this order: ``SetDesired`` → a retained QoS 1
message ``{"rollout_id": ..., "version": N}`` on each device's
``<prefix>/<site>/<device>/desired`` topic; ``Audit`` → an entry in the audit
chain; then the new state is stored (``put_rollout``); then ``Emit`` → an
event (stored, then published, by the :class:`~pumpops.registry.EventSink`).
A crash between two of these repeats the step at the next tick: desired
messages are retained and idempotent, and the audit chain may then hold the
step twice rather than not at all.

Two processes stepping one rollout (the controller loop and a ``pumpops
rollout pause``) are told apart by re-reading the stored state just before
the actions are carried out: if it changed since it was loaded, this step is
dropped (the next tick judges the new state). There is no lock, so a race
inside that window is still possible.

May import: errors, store (its records and interface only), fleet, telemetry
(topics; paho in :class:`MqttDesiredPublisher` only),
settings, this package.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from pumpops.errors import BrokerError, ConfigError, InputError, NotFoundError, PumpopsError, ServiceError
from pumpops.fleet import Device
from pumpops.rollout._gate import DeviceReport, GatePolicy, GateVerdict, Health, judge_wave
from pumpops.rollout._machine import (
    Abort,
    Action,
    Audit,
    Emit,
    Event,
    Pause,
    Resume,
    RolloutState,
    SetDesired,
    Start,
    Tick,
    new_rollout,
    step,
)
from pumpops.rollout._plan import DEFAULT_WAVES_PERCENT
from pumpops.store._base import AgentRecord, ReleaseRecord
from pumpops.telemetry._topics import DEFAULT_PREFIX, build_topic

if TYPE_CHECKING:
    from pumpops.telemetry._broker import BrokerAddress

__all__ = [
    "ACTIVE_STATUSES",
    "DesiredPublisher",
    "EventEmitter",
    "MqttDesiredPublisher",
    "ReportOptions",
    "RolloutRow",
    "RolloutService",
    "RolloutStore",
    "StepResult",
    "desired_payload",
    "device_report",
    "parse_release_ref",
]

_log = logging.getLogger(__name__)

#: Statuses the controller ticks (``pending``: created, but its start did not complete).
ACTIVE_STATUSES: Final = ("pending", "running", "paused", "rolling_back")
# Agent health values that mean "the desired release did not take" (docs/rollout.md).
_AGENT_FAILED: Final = frozenset({"refused", "failed", "rolled_back", "incompatible"})
# ... and those of them that mean the agent started the release and had to give it up.
_AGENT_CRASHED: Final = frozenset({"failed", "rolled_back"})


# -- what the service needs from its surroundings ---------------------------------------------


class RolloutRow(Protocol):
    """A stored rollout as the service reads it (``pumpops.store.RolloutRecord``)."""

    @property
    def rollout_id(self) -> str: ...
    @property
    def group(self) -> str: ...
    @property
    def release(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def state_json(self) -> str: ...
    @property
    def created_at_us(self) -> int: ...
    @property
    def updated_at_us(self) -> int: ...


class RolloutStore(Protocol):
    """The part of :class:`~pumpops.store.TelemetryStore` the service uses (a fake implements just this)."""

    def devices(self) -> list[Device]: ...
    def releases(self, *, group: str | None = None) -> list[ReleaseRecord]: ...
    def agent_messages(
        self,
        *,
        device_id: str | None = None,
        kind: str | None = None,
        since_us: int | None = None,
        limit: int | None = None,
    ) -> list[AgentRecord]: ...
    def append_audit(
        self,
        actor: str,
        action: str,
        subject: str,
        payload: Mapping[str, Any] | None = None,
        *,
        time_us: int | None = None,
    ) -> object: ...
    def put_rollout(
        self,
        rollout_id: str,
        *,
        group: str,
        release: str,
        status: str,
        state_json: str,
        time_us: int | None = None,
    ) -> RolloutRow: ...
    def get_rollout(self, rollout_id: str) -> RolloutRow | None: ...
    def rollouts(self, *, group: str | None = None, active_only: bool = False) -> Sequence[RolloutRow]: ...


class EventEmitter(Protocol):
    """Where events go: :class:`pumpops.registry.EventSink` (stores, then publishes)."""

    def emit(self, kind: str, subject: str, payload: dict[str, Any] | None = None) -> object: ...


class DesiredPublisher(Protocol):
    """Writes retained ``desired`` messages (QoS 1)."""

    def publish_retained(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Publish every ``(topic, payload)`` retained with QoS 1; return once all are acknowledged.

        Raises:
            BrokerError: some were not acknowledged.
        """
        ...


# -- pure helpers ------------------------------------------------------------------------------


def parse_release_ref(ref: str) -> tuple[str, int]:
    """Split ``<model name>/<version>`` into its parts.

    Raises:
        ConfigError: not of that shape, or the version is not a whole number ≥ 1.

    >>> parse_release_ref("pumpops-skab/3")
    ('pumpops-skab', 3)
    """
    name, sep, version = ref.strip().rpartition("/")
    if not sep or not name or not version.isdigit() or int(version) < 1:
        raise ConfigError(
            f"release {ref!r} must be <model>/<version> (pumpops-skab-testbed/3) or <model>@<alias>"
        )
    return name, int(version)


def desired_payload(version: str, rollout_id: str) -> bytes:
    """The retained ``desired`` message: the agent installs exactly ``version``.

    A version of digits is sent as a JSON number, as the agent's ``{"version": N}`` has it.

    >>> desired_payload("3", "r-1")
    b'{"rollout_id":"r-1","version":3}'
    """
    value: int | str = int(version) if version.isdigit() else version
    return json.dumps(
        {"rollout_id": rollout_id, "version": value}, sort_keys=True, separators=(",", ":")
    ).encode()


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """How agent messages become a :class:`~pumpops.rollout.DeviceReport`.

    Attributes:
        state_history: the device's newest ``state`` messages looked at for flips.
        crash_flips: returns to an earlier (status, model version) since the
            wave started that make a device crash-looping.
        baseline_window_s: how far before the wave started summaries on the
            previous model count towards the baseline alarm rate.
        min_rate_period_s: summarised time below which a rate is not known yet.
    """

    state_history: int = 20
    crash_flips: int = 2
    baseline_window_s: float = 86_400.0  # s
    min_rate_period_s: float = 600.0  # s

    def __post_init__(self) -> None:
        if self.state_history < 2 or self.crash_flips < 1:
            raise ConfigError("state_history must be at least 2 and crash_flips at least 1")
        if not self.baseline_window_s > 0 or not self.min_rate_period_s >= 0:
            raise ConfigError("baseline_window_s must be above 0 and min_rate_period_s at least 0")


def _alarm_rate(summaries: Iterable[AgentRecord], version: str, min_period_s: float) -> float | None:
    """The alarm load per hour over the summaries of one model version (None: less than ``min_period_s``).

    Alarms raised per hour, plus one for every minute under alarm (the
    alarmed fraction of scored rows × 60): an alarm that stays on for hours
    is raised once but keeps a site busy, and must not look quieter than a
    few short ones.
    """
    alarms = 0
    period_ms = 0
    rows = 0
    alarm_rows = 0
    for record in summaries:
        body = record.body()
        if body.get("model_version") is None or str(body["model_version"]) != version:
            continue
        try:
            span = int(body["period_end_ms"]) - int(body["period_start_ms"])
            raised = int(body.get("alarms_raised") or 0)
            n_rows = int(body.get("rows") or 0)
            n_alarmed = int(body.get("alarm_rows") or 0)
        except (KeyError, TypeError, ValueError):
            continue  # a summary without its period says nothing about a rate
        if span > 0 and raised >= 0:
            period_ms += span
            alarms += raised
            if n_rows > 0 and 0 <= n_alarmed <= n_rows:
                rows += n_rows
                alarm_rows += n_alarmed
    if period_ms <= 0 or period_ms < min_period_s * 1000:
        return None
    alarmed_minutes_per_h = 60.0 * alarm_rows / rows if rows else 0.0
    return alarms / (period_ms / 3_600_000) + alarmed_minutes_per_h


def _flips(states: Sequence[AgentRecord], since_s: float) -> int:
    """Returns to an earlier (status, model version) among the states produced since ``since_s``."""
    seen: set[tuple[object, object]] = set()
    last: tuple[object, object] | None = None
    flips = 0
    for record in states:
        if record.ts_us / 1e6 < since_s:
            continue
        body = record.body()
        key = (body.get("status"), body.get("model_version"))
        if key != last and key in seen:
            flips += 1
        seen.add(key)
        last = key
    return flips


def device_report(
    device_id: str,
    states: Sequence[AgentRecord],
    summaries: Sequence[AgentRecord],
    *,
    version: str,
    previous_version: str | None,
    since_s: float,
    options: ReportOptions | None = None,
) -> DeviceReport | None:
    """What the gate needs to know of one device, from its stored agent messages.

    - ``installed_version``: the newest state's ``model_version``.
    - ``health``: ``ok`` when the agent says ``ok``; ``failed`` when it says
      ``refused``, ``failed``, ``rolled_back`` or ``incompatible`` *and* it
      has received this rollout's version as desired (an older failure is
      not this release's); ``unknown`` otherwise.
    - ``crash_loop``: the agent says ``failed`` or ``rolled_back`` for this
      version, or its (status, model version) returned to an earlier value
      ``crash_flips`` times since the wave started.
    - alarm rates: alarms per hour from the summaries on ``version`` and on
      ``previous_version``.
    - ``last_seen_s``: when the agent produced its newest state (``ts_us``).
      That is what "reported since the wave started" means: a state queued
      in an outbox before the desired message arrived is not an answer to
      it. The agent's clock is trusted within the ingest's
      ``max_future_skew_s``; a hub running on simulated time (the demo)
      works as long as its agents share that time.

    Args:
        device_id: the device.
        states: its ``state`` messages, oldest first (``agent_messages`` order).
        summaries: its ``summary`` messages.
        version: the release being rolled out.
        previous_version: the release the group ran before, or None.
        since_s: when the current wave started (the hub's clock, s).
        options: thresholds.

    Returns:
        The report, or None when the device has sent no state at all.
    """
    if not states:
        return None
    options = options or ReportOptions()
    newest = states[-1]
    body = newest.body()
    model_version = body.get("model_version")
    installed = None if model_version is None else str(model_version)
    desired = body.get("desired_version")
    told = desired is not None and str(desired) == version
    agent_health = body.get("health")
    health: Health = "unknown"
    if agent_health == "ok":
        health = "ok"
    elif agent_health in _AGENT_FAILED and told:
        health = "failed"
    crash_loop = (agent_health in _AGENT_CRASHED and told) or _flips(states, since_s) >= options.crash_flips
    rate = _alarm_rate(summaries, version, options.min_rate_period_s)
    baseline = (
        None
        if previous_version is None
        else _alarm_rate(summaries, previous_version, options.min_rate_period_s)
    )
    return DeviceReport(
        device_id=device_id,
        installed_version=installed,
        health=health,
        crash_loop=bool(crash_loop),
        alarm_rate_per_h=rate,
        baseline_alarm_rate_per_h=baseline,
        last_seen_s=newest.ts_us / 1e6,
    )


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one event did to one rollout.

    Attributes:
        rollout_id: the rollout.
        before: its status before.
        after: its status after.
        actions: the audit actions carried out (empty: nothing happened).
        error: why the step failed (it was not stored), or None.
        unreachable: the step failed because a service (database, broker) did not answer.
    """

    rollout_id: str
    before: str
    after: str
    actions: tuple[str, ...] = ()
    error: str | None = None
    unreachable: bool = False

    @property
    def actions_summary(self) -> str:
        """``running → paused (rollout.paused)``; empty when nothing happened."""
        if self.error is not None:
            return f"{self.before}: step failed, tried again at the next tick: {self.error}"
        if not self.actions:
            return ""
        return f"{self.before} → {self.after} ({', '.join(self.actions)})"


# -- the service -------------------------------------------------------------------------------


class RolloutService:
    """Runs rollouts: stores their state, writes desired states, audits and emits every step.

    Args:
        store: the hub's store (rollouts, devices, releases, agent messages, audit).
        publisher: writes the retained ``desired`` messages.
        events: stores and publishes events (an :class:`~pumpops.registry.EventSink`).
        actor: who audit entries are attributed to (the controller, or the operator).
        topic_prefix: the topic prefix from settings.
        clock: the hub's clock, seconds since the epoch.
        report_options: how agent messages become device reports.
    """

    def __init__(
        self,
        store: RolloutStore,
        publisher: DesiredPublisher,
        *,
        events: EventEmitter,
        actor: str,
        topic_prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] = time.time,
        report_options: ReportOptions | None = None,
    ) -> None:
        if not actor.strip():
            raise ConfigError("a rollout service needs an actor for its audit entries")
        self._store = store
        self._publisher = publisher
        self._events = events
        self._actor = actor
        self._prefix = topic_prefix
        self._clock = clock
        self._options = report_options or ReportOptions()

    # -- reading

    def get(self, rollout_id: str) -> RolloutState:
        """The stored state of one rollout.

        Raises:
            NotFoundError: no rollout has that id.
            InputError: the stored state cannot be read.
        """
        return _state_of(self.record(rollout_id))

    def rollouts(
        self, *, group: str | None = None, active_only: bool = False
    ) -> list[tuple[RolloutRow, RolloutState]]:
        """Stored rollouts, oldest first, with their states."""
        return [(row, _state_of(row)) for row in self._store.rollouts(group=group, active_only=active_only)]

    def verdict(self, rollout_id: str, now: float | None = None) -> GateVerdict | None:
        """What the current wave's gate says now (None unless the rollout is running)."""
        state = self.get(rollout_id)
        if state.status != "running" or state.wave_started_s is None:
            return None
        now_s = self._clock() if now is None else now
        return judge_wave(
            state.policy,
            state.waves[state.current_wave],
            self.reports(state),
            version=state.version,
            now_s=now_s,
            wave_started_s=state.wave_started_s,
        )

    def reports(self, state: RolloutState) -> tuple[DeviceReport, ...]:
        """Reports of the devices judged now: the current wave (all sent devices when rolling back)."""
        if state.wave_started_s is None:
            return ()
        since_s = state.wave_started_s
        if state.status == "rolling_back":
            devices: Sequence[str] = state.sent_devices
            with_rates = False
        else:
            devices = state.waves[state.current_wave]
            with_rates = True
        baseline_from_us = max(0, int((since_s - self._options.baseline_window_s) * 1e6))
        out: list[DeviceReport] = []
        for device_id in devices:
            states = self._store.agent_messages(
                device_id=device_id, kind="state", limit=self._options.state_history
            )
            summaries = (
                self._store.agent_messages(device_id=device_id, kind="summary", since_us=baseline_from_us)
                if with_rates
                else []
            )
            report = device_report(
                device_id,
                states,
                summaries,
                version=state.version,
                previous_version=state.previous_version,
                since_s=since_s,
                options=self._options,
            )
            if report is not None:
                out.append(report)
        return tuple(out)

    # -- commands

    def start(
        self,
        release_ref: str,
        group: str,
        waves: Sequence[int] = DEFAULT_WAVES_PERCENT,
        policy: GatePolicy | None = None,
        *,
        previous_version: str | None = None,
        rollout_id: str | None = None,
        reason: str = "",
    ) -> str:
        """Create a rollout of a release to a group and start its first wave.

        Args:
            release_ref: ``<model name>/<version>``; a release of it for ``group`` must exist.
            group: the device group.
            waves: cumulative percentages (:func:`~pumpops.rollout.parse_waves`).
            policy: the gate of every wave (default :class:`~pumpops.rollout.GatePolicy`).
            previous_version: the version to roll back to; default: the one the
                group runs now (:meth:`current_version`).
            rollout_id: the id; default ``r-<UTC time>-<random>``.
            reason: why, for the audit trail.

        Returns:
            The rollout id.

        Raises:
            ConfigError: a bad reference, plan or policy (see ``new_rollout``).
            NotFoundError: no such release for the group.
            InputError: the group has an active rollout already.
            BrokerError: the desired states could not be written; the rollout
                stays ``pending`` and the controller starts it at its next tick.
        """
        name, version = parse_release_ref(release_ref)
        release = self._release(name, version, group)
        active = [r.rollout_id for r in self._store.rollouts(group=group, active_only=True)]
        if active:
            raise InputError(
                f"group {group} has an active rollout ({', '.join(active)}); "
                "wait for it to end, or abort it first"
            )
        devices = [d.device_id for d in self._store.devices() if d.group == group]
        previous = previous_version if previous_version is not None else self.current_version(group)
        now = self._clock()
        rid = rollout_id or f"r-{datetime.fromtimestamp(now, tz=UTC):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"
        if self._store.get_rollout(rid) is not None:
            raise InputError(f"rollout {rid} exists already")
        state = new_rollout(
            rollout_id=rid,
            version=str(release.version),
            previous_version=previous,
            group=group,
            devices=devices,
            waves_percent=waves,
            policy=policy or GatePolicy(),
        )
        self._put(state, release=f"{name}/{version}", now=now)
        try:
            self._apply(rid, Start(now_s=now, reason=reason), raise_errors=True)
        except BrokerError as exc:
            raise BrokerError(
                f"{exc}; rollout {rid} is stored as pending and the controller "
                "(`pumpops rollout tick` or `run`) starts it once the broker answers"
            ) from exc
        return rid

    def current_version(self, group: str) -> str | None:
        """The version the group runs now, as far as the hub knows.

        The newest ended rollout of the group decides (completed: its
        release; rolled back: its previous release; aborted ones are
        skipped, their devices run a mix); without one, the version most of
        the group's devices report in their newest state; else None.
        """
        for row in reversed(list(self._store.rollouts(group=group))):
            if row.status == "completed":
                return _state_of(row).version
            if row.status == "rolled_back":
                return _state_of(row).previous_version
        counts: dict[str, int] = {}
        for device in self._store.devices():
            if device.group != group:
                continue
            newest = self._store.agent_messages(device_id=device.device_id, kind="state", limit=1)
            version = newest[-1].body().get("model_version") if newest else None
            if version is not None:
                counts[str(version)] = counts.get(str(version), 0) + 1
        if not counts:
            return None
        return max(sorted(counts), key=lambda v: counts[v])

    def pause(self, rollout_id: str, *, reason: str = "") -> RolloutState:
        """Stop the rollout moving on to further waves.

        Raises:
            NotFoundError: no such rollout.
            InputError: its status does not allow a pause (the message says why).
        """
        return self._command(rollout_id, Pause(now_s=self._clock(), reason=reason))

    def resume(self, rollout_id: str, *, reason: str = "") -> RolloutState:
        """Continue a paused rollout (the current wave's clock restarts).

        Raises:
            NotFoundError: no such rollout.
            InputError: it is not paused.
        """
        return self._command(rollout_id, Resume(now_s=self._clock(), reason=reason))

    def abort(self, rollout_id: str, *, roll_back: bool = False, reason: str = "") -> RolloutState:
        """End the rollout; with ``roll_back`` the devices sent the release get the previous one.

        Raises:
            NotFoundError: no such rollout.
            InputError: its status does not allow an abort.
        """
        return self._command(rollout_id, Abort(now_s=self._clock(), reason=reason, roll_back=roll_back))

    def tick(self, now: float | None = None) -> list[StepResult]:
        """One controller step: judge every active rollout and carry out what it decides.

        A rollout whose step fails (the broker or the database is down) is
        left as stored and tried again at the next tick; the others go on.

        Args:
            now: the hub's clock (default: the service's clock).

        Returns:
            One result per active rollout, oldest first.
        """
        now_s = self._clock() if now is None else now
        results: list[StepResult] = []
        for row in self._store.rollouts(active_only=True):
            try:
                state = _state_of(row)
                event: Event
                if state.status == "pending":
                    event = Start(now_s=now_s, reason="the controller completes an interrupted start")
                elif state.status == "paused":
                    event = Tick(now_s=now_s)  # nothing is judged while paused: no reports needed
                else:
                    event = Tick(now_s=now_s, reports=self.reports(state))
                results.append(self._apply(row.rollout_id, event, loaded=row))
            except PumpopsError as exc:
                _log.error(
                    "rollout %s: this tick failed, it is tried again at the next: %s", row.rollout_id, exc
                )
                results.append(
                    StepResult(
                        row.rollout_id,
                        row.status,
                        row.status,
                        error=str(exc),
                        unreachable=isinstance(exc, ServiceError),
                    )
                )
        return results

    def run(self, stop: threading.Event, *, interval_s: float = 30.0) -> None:
        """Tick every ``interval_s`` seconds until ``stop`` is set (the controller loop)."""
        if not interval_s > 0:
            raise ConfigError(f"interval_s must be above 0, not {interval_s}")
        while not stop.is_set():
            try:
                results = self.tick()
            except PumpopsError as exc:  # the store is down: the loop outlives it
                _log.error("rollout controller: the rollouts could not be read, trying again: %s", exc)
                results = []
            for result in results:
                if result.actions_summary:
                    _log.info("rollout %s: %s", result.rollout_id, result.actions_summary)
            stop.wait(interval_s)

    # -- internals

    def record(self, rollout_id: str) -> RolloutRow:
        """The stored record of one rollout.

        Raises:
            NotFoundError: no rollout has that id.
        """
        row = self._store.get_rollout(rollout_id)
        if row is None:
            raise NotFoundError(f"no rollout {rollout_id!r}; `pumpops rollout status` lists them")
        return row

    def _release(self, name: str, version: int, group: str) -> ReleaseRecord:
        releases = self._store.releases(group=group)
        for release in reversed(releases):
            if release.model_name == name and release.version == version:
                return release
        known = ", ".join(f"{r.model_name}/{r.version}" for r in releases[-5:]) or "none"
        raise NotFoundError(
            f"no release of {name}/{version} for group {group} (its newest: {known}); "
            "create one with `pumpops release create`"
        )

    def _command(self, rollout_id: str, event: Event) -> RolloutState:
        self._apply(rollout_id, event, raise_errors=True)
        return self.get(rollout_id)

    def _put(self, state: RolloutState, *, release: str, now: float) -> None:
        self._store.put_rollout(
            state.rollout_id,
            group=state.group,
            release=release,
            status=state.status,
            state_json=_state_json(state),
            time_us=_us(now),
        )

    def _apply(
        self, rollout_id: str, event: Event, *, loaded: RolloutRow | None = None, raise_errors: bool = False
    ) -> StepResult:
        row = loaded or self.record(rollout_id)
        state = _state_of(row)
        new, actions = step(state, event)  # InputError: not allowed now
        if not actions:
            return StepResult(rollout_id, state.status, new.status)
        current = self._store.get_rollout(rollout_id)
        if current is None or current.state_json != row.state_json:
            message = f"rollout {rollout_id} changed while this step was decided; it was not carried out"
            if raise_errors:
                raise InputError(message + "; try again")
            _log.warning(message)
            return StepResult(rollout_id, state.status, state.status, error=message)
        audited: list[str] = []
        emits: list[Emit] = []
        for action in actions:
            self._carry_out(action, new, event.now_s, audited, emits)
        self._put(new, release=row.release, now=event.now_s)
        for emit in emits:
            self._events.emit(emit.event, new.subject, emit.payload)
        return StepResult(rollout_id, state.status, new.status, tuple(audited))

    def _carry_out(
        self, action: Action, state: RolloutState, now_s: float, audited: list[str], emits: list[Emit]
    ) -> None:
        if isinstance(action, SetDesired):
            self._set_desired(action, state.rollout_id)
        elif isinstance(action, Audit):
            self._store.append_audit(
                self._actor, action.action, action.subject, action.detail, time_us=_us(now_s)
            )
            audited.append(action.action)
        else:
            emits.append(action)  # after the state is stored

    def _set_desired(self, action: SetDesired, rollout_id: str) -> None:
        sites = {d.device_id: d.site for d in self._store.devices()}
        payload = desired_payload(action.version, rollout_id)
        messages: list[tuple[str, bytes]] = []
        missing: list[str] = []
        for device_id in action.device_ids:
            site = sites.get(device_id)
            if site is None:
                missing.append(device_id)
                continue
            messages.append((build_topic(site, device_id, "desired", prefix=self._prefix), payload))
        if missing:
            _log.warning(
                "rollout %s: %d device(s) are no longer registered, no desired state written: %s",
                rollout_id,
                len(missing),
                ", ".join(missing[:10]),
            )
        if messages:
            self._publisher.publish_retained(messages)


def _us(seconds: float) -> int:
    return max(0, math.floor(seconds * 1_000_000))


def _state_json(state: RolloutState) -> str:
    return json.dumps(state.to_dict(), sort_keys=True, separators=(",", ":"))


def _state_of(row: RolloutRow) -> RolloutState:
    try:
        data = json.loads(row.state_json)
    except ValueError as exc:
        raise InputError(f"stored rollout {row.rollout_id} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"stored rollout {row.rollout_id} is not a JSON object")
    return RolloutState.from_dict(data)


# -- MQTT --------------------------------------------------------------------------------------


class MqttDesiredPublisher:
    """Publishes retained desired states with QoS 1 over one paho connection, opened on first use.

    Args:
        address: the broker (``parse_broker_url``; for ``embedded``, 127.0.0.1
            and the settings' ``embedded_broker_port``).
        timeout_s: how long to wait for the connection and for the PUBACKs.
    """

    def __init__(self, address: BrokerAddress, *, timeout_s: float = 10.0) -> None:
        self._address = address
        self._timeout_s = timeout_s
        self._client: Any = None
        self._connected = threading.Event()

    @property
    def where(self) -> str:
        """The broker URL."""
        return self._address.url

    def _connect(self) -> Any:
        if self._client is not None:
            return self._client
        import paho.mqtt.client as mqtt  # noqa: PLC0415 - only this class talks to the broker
        from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

        from pumpops.telemetry._publisher import CLIENT_USERNAME  # noqa: PLC0415

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"pumpops-rollout-{os.getpid()}-{uuid.uuid4().hex[:8]}",
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        client.username_pw_set(CLIENT_USERNAME)
        client.max_queued_messages_set(0)
        if self._address.tls:
            client.tls_set()

        def on_connect(client: Any, userdata: object, flags: object, rc: Any, props: object) -> None:
            if not getattr(rc, "is_failure", False):
                self._connected.set()

        def on_disconnect(client: Any, userdata: object, flags: object, rc: Any, props: object) -> None:
            self._connected.clear()

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        try:
            client.connect(self._address.host, self._address.port, keepalive=30)
        except OSError as exc:
            raise BrokerError(f"cannot connect to the MQTT broker at {self.where}: {exc}") from exc
        client.loop_start()
        if not self._connected.wait(self._timeout_s):
            client.loop_stop()
            raise BrokerError(
                f"the MQTT broker at {self.where} did not accept the connection in {self._timeout_s} s"
            )
        self._client = client
        return client

    def publish_retained(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Publish each message retained with QoS 1 and wait for every PUBACK.

        Raises:
            BrokerError: the broker is unreachable or did not acknowledge in time.
        """
        import paho.mqtt.client as mqtt  # noqa: PLC0415

        client = self._connect()
        infos = []
        for topic, payload in messages:
            info = client.publish(topic, payload, qos=1, retain=True)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                raise BrokerError(
                    f"cannot publish the desired state on {topic}: {mqtt.error_string(info.rc)}"
                )
            infos.append((topic, info))
        deadline = time.monotonic() + self._timeout_s
        for topic, info in infos:
            while not info.is_published():
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"the broker at {self.where} did not acknowledge the desired state on {topic}"
                    )
                time.sleep(0.005)

    def close(self) -> None:
        """Disconnect (idempotent)."""
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
