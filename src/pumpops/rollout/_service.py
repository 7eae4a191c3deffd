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

Actions are carried out in this order: ``SetDesired`` → first, with an
:class:`IntentSigner`, the hub's signed intent for the group (a rollback pins
the previous version in the group's TUF targets metadata, audited as
``release.intent_signed``; a start or a next wave lifts such a pin), then a
retained QoS 1 message ``{"rollout_id": ..., "version": N}`` on each device's
``<prefix>/<site>/<device>/desired`` topic (only a hint: an agent installs an
older version only when the signed intent pins it); ``Audit`` → an entry in the audit
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

The service talks to no broker itself: it takes a :class:`DesiredPublisher`
(``MqttDesiredPublisher`` in ``_desired``, on ``pumpops.mqtt``). Pure helpers
(device reports, payloads) are in ``_reports``, the Protocols in ``_ports``;
the names stay importable from here.

May import: errors, store (its records only), telemetry (topics), this package.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pumpops.errors import BrokerError, ConfigError, InputError, NotFoundError, PumpopsError, ServiceError
from pumpops.rollout._desired import MqttDesiredPublisher
from pumpops.rollout._gate import DeviceReport, GatePolicy, GateVerdict, judge_wave
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
from pumpops.rollout._ports import DesiredPublisher, EventEmitter, IntentSigner, RolloutRow, RolloutStore
from pumpops.rollout._reports import (
    ACTIVE_STATUSES,
    ReportOptions,
    desired_payload,
    device_report,
    parse_release_ref,
)
from pumpops.telemetry import DEFAULT_PREFIX, build_topic

if TYPE_CHECKING:
    from pumpops.store import ReleaseRecord

__all__ = [
    "ACTIVE_STATUSES",
    "DesiredPublisher",
    "EventEmitter",
    "IntentSigner",
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
        intent: signs the group's pinned version before a rollback's desired
            states are written (None: no TUF repository; agents then refuse
            the rollback's older version as an unsigned downgrade).
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
        intent: IntentSigner | None = None,
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
        self._intent = intent

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
        supersede_gate_paused: bool = False,
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
            supersede_gate_paused: first abort (without rollback) the group's active
                rollouts that their gate paused — a drift retrain's release replaces the
                release whose soak saw the drift (ADR 0018). A rollout an operator paused,
                or one still running, is never superseded: the start is refused as usual.

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
        if supersede_gate_paused:
            for row in self._store.rollouts(group=group, active_only=True):
                if _state_of(row).paused_by_gate:
                    why = f"superseded by {release_ref}" + (f" ({reason})" if reason else "")
                    self.abort(row.rollout_id, reason=why)
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
            self._sign_intent(action, state)
            self._set_desired(action, state.rollout_id)
        elif isinstance(action, Audit):
            self._store.append_audit(
                self._actor, action.action, action.subject, action.detail, time_us=_us(now_s)
            )
            audited.append(action.action)
        else:
            emits.append(action)  # after the state is stored

    def _sign_intent(self, action: SetDesired, state: RolloutState) -> None:
        """Sign the pin before the hint: a woken agent must find the signed intent already there."""
        if self._intent is None:
            if state.status == "rolling_back":
                _log.warning(
                    "rollout %s: no signed-intent writer; agents refuse the unsigned downgrade to %s",
                    state.rollout_id,
                    action.version,
                )
            return
        if state.status == "rolling_back":
            reason = f"rollout {state.rollout_id} rolls group {state.group} back to {action.version}"
            self._intent.pin(state.group, action.version, actor=self._actor, reason=reason)
        else:
            reason = f"rollout {state.rollout_id} moves group {state.group} to {action.version}"
            self._intent.pin(state.group, None, actor=self._actor, reason=reason)

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
