"""The monitoring service: reads the store, runs the pure views and drift rule, keeps fleet alerts.

The thin shell around ``_fleet.py`` and ``_drift.py``. :meth:`MonitoringService.evaluate`
is one monitoring step (a hub background loop or ``pumpops fleet evaluate``
from cron calls it): it reads the agents' messages, builds the
:class:`~pumpops.monitoring.FleetView`, and for each group compares the drift
verdict with the group's open ``drift`` alert:

- drifting and no open alert → open ``drift:<group>:<now_ms>``, audit and
  event ``fleet.drift_detected``;
- not drifting (or no devices left) and an open alert → close it, audit and
  event ``fleet.drift_cleared``;
- otherwise nothing: a step that changes nothing writes nothing, so running
  it every minute is cheap and the alert table holds one row per episode.

The group's verdict is the shift verdict (:func:`judge_shifts`: sensors shifted
on enough of the group's devices, fault-like devices left out) when its devices
send shift tests' answers; for a group whose devices send none (older agents)
it is the count of drifting devices (:func:`judge_group`). The alert's detail
and audit entry carry the shift verdict: which sensors, which devices, since
when, and the devices that are device-local shifts or faults.

At most one ``drift`` alert per group is open at a time, as long as one
monitoring process runs per hub (two processes stepping at the same
millisecond open the same id once; at different instants they could open two).
The store writes the alert before the audit entry and the event; a crash in
between leaves an open alert without its audit entry, never the reverse.

:func:`record_feedback` is the technician's verdict on an alarm
(``pumpops feedback``), refused for an alarm id the hub never received.

May import: store, registry (``EventSink``), settings, errors and this package.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal, Protocol

from pumpops.errors import InputError, NotFoundError
from pumpops.fleet import Device
from pumpops.monitoring._drift import NO_DATA, DriftPolicy, GroupDrift
from pumpops.monitoring._fleet import UNREGISTERED_GROUP, FleetView, build_fleet_view
from pumpops.monitoring._shift_verdicts import (
    GroupResponse,
    GroupShift,
    device_shift,
    judge_shifts,
    model_affected,
    plan_response,
)
from pumpops.monitoring._watermark import incremental_monitor
from pumpops.registry import EventSink
from pumpops.settings import MonitoringSettings
from pumpops.store import (
    FEEDBACK_VERDICTS,
    AgentMessageStore,
    AgentRecord,
    AlertStore,
    FeedbackRecord,
    FleetAlertRecord,
)

__all__ = [
    "DRIFT_ALERT_KIND",
    "EVENT_ALARM_FEEDBACK",
    "EVENT_DRIFT_CLEARED",
    "EVENT_DRIFT_DETECTED",
    "AlertChange",
    "Evaluation",
    "MonitoringService",
    "find_alarm",
    "record_feedback",
]

_log = logging.getLogger(__name__)

#: The ``kind`` of the fleet alerts this service opens (one open per group at a time).
DRIFT_ALERT_KIND: Final = "drift"
#: Event and audit action when a group starts drifting.
EVENT_DRIFT_DETECTED: Final = "fleet.drift_detected"
#: Event and audit action when it stops.
EVENT_DRIFT_CLEARED: Final = "fleet.drift_cleared"
#: Event and audit action of a technician's verdict on an alarm.
EVENT_ALARM_FEEDBACK: Final = "alarm.feedback"
#: Who automatic monitoring steps are attributed to, unless told otherwise.
DEFAULT_ACTOR: Final = "pumpops-monitoring"


class MonitoringStore(AgentMessageStore, AlertStore, Protocol):
    """The part of :class:`~pumpops.store.TelemetryStore` monitoring uses (a fake implements just this).

    Agent messages, fleet alerts and alarm feedback (the store's
    :class:`~pumpops.store.AgentMessageStore` and :class:`~pumpops.store.AlertStore`),
    the registered devices and audit appends.
    """

    def devices(self) -> list[Device]: ...
    def append_audit(
        self,
        actor: str,
        action: str,
        subject: str,
        payload: Mapping[str, Any] | None = None,
        *,
        time_us: int | None = None,
    ) -> object: ...


@dataclass(frozen=True, slots=True)
class AlertChange:
    """An alert this step opened or closed.

    Attributes:
        alert_id: the alert.
        group: its device group.
        action: ``opened`` or ``closed``.
        detail: what was stored (opened) or recorded (closed): the verdict and the policy.
    """

    alert_id: str
    group: str
    action: Literal["opened", "closed"]
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one monitoring step saw and did.

    Attributes:
        view: the fleet view at the step's instant.
        changes: the alerts opened and closed, by group.
    """

    view: FleetView
    changes: tuple[AlertChange, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return {"view": self.view.to_dict(), "changes": [asdict(c) for c in self.changes]}


class MonitoringService:
    """Fleet views and fleet-level drift alerts over a store.

    Args:
        store: the hub's store (agent messages, devices, fleet alerts, audit).
        sink: where events go (stored, then published when a broker is configured).
        settings: the ``[monitoring]`` settings (window and thresholds).
        actor: who the audit entries of alert changes are attributed to.

    Raises:
        ConfigError: a setting is out of range.
    """

    def __init__(
        self,
        store: MonitoringStore,
        sink: EventSink,
        settings: MonitoringSettings,
        *,
        actor: str = DEFAULT_ACTOR,
    ) -> None:
        self._store = store
        self._sink = sink
        self._policy = DriftPolicy(
            window_s=settings.window_s, min_fraction=settings.min_fraction, min_devices=settings.min_devices
        )
        self._actor = actor
        self._overlap_s = settings.overlap_s

    @property
    def policy(self) -> DriftPolicy:
        """The window and thresholds in force."""
        return self._policy

    def view(self, now_us: int | None = None) -> FleetView:
        """The fleet view at ``now_us`` (default: now).

        Reads the messages of the window, plus the newest state of each
        registered device that sent none in the window (so a silent device
        still shows its model, health and last-seen time).

        Raises:
            StoreError: the database failed.
        """
        return self._view(_now_us(now_us) // 1000, self._store.devices())

    def _view(self, now_ms: int, devices: list[Device]) -> FleetView:
        # issue 18: only what arrived since the last step
        incremental = incremental_monitor(self._store, overlap_s=self._overlap_s)
        found = incremental.try_view(now_ms, devices, self._policy) if incremental is not None else None
        if found is not None:
            return found
        cutoff_us = self._policy.cutoff_ms(now_ms) * 1000
        records = self._store.agent_messages(since_us=cutoff_us)
        with_state = {r.device_id for r in records if r.kind == "state"}
        older: list[AgentRecord] = []
        for device in devices:
            if device.device_id not in with_state:
                older += self._store.agent_messages(device_id=device.device_id, kind="state", limit=1)
        return build_fleet_view([*records, *older], devices, now_ms=now_ms, policy=self._policy)

    def shift_verdicts(self, now_us: int | None = None) -> dict[str, GroupShift]:
        """Per registered group, what its devices' shift tests say: shared drift, device-local, fault.

        :func:`judge_shifts` on each device's newest drift report in the window that
        carries a shift test's answer. A group without such a report is ``no data``.
        The reports come from the incremental state (the drift reports that arrived
        since the last step), or from the window's stored reports when the state
        cannot serve ``now_us`` (a store without the watermark reads, a time before
        the hours it keeps).

        Raises:
            StoreError: the database failed.
        """
        return self._shift_verdicts(_now_us(now_us) // 1000, self._store.devices())

    def _shift_verdicts(
        self, now_ms: int, devices: list[Device], *, refresh: bool = True
    ) -> dict[str, GroupShift]:
        incremental = incremental_monitor(self._store, overlap_s=self._overlap_s)
        shifts = (
            incremental.try_device_shifts(now_ms, devices, self._policy, refresh=refresh)
            if incremental is not None
            else None
        )
        if shifts is None:
            by_device: dict[str, list[AgentRecord]] = defaultdict(list)
            cutoff_us = self._policy.cutoff_ms(now_ms) * 1000
            for record in self._store.agent_messages(kind="drift", since_us=cutoff_us):
                by_device[record.device_id].append(record)
            shifts = {d.device_id: device_shift(d.device_id, by_device.get(d.device_id, [])) for d in devices}
        groups: dict[str, list[str]] = defaultdict(list)
        for device in devices:
            groups[device.group].append(device.device_id)
        return {
            group: judge_shifts(group, [shifts[d] for d in sorted(ids)], now_ms=now_ms, policy=self._policy)
            for group, ids in sorted(groups.items())
        }

    def responses(self, now_us: int | None = None) -> dict[str, GroupResponse]:
        """Per registered group, the tiered response its shift verdict asks for (:func:`plan_response`).

        Which devices to recalibrate, whether to retrain the group, which devices are faults
        (keep alarming); each with its evidence (``GroupResponse.verdict``).

        Raises:
            StoreError: the database failed.
        """
        return {g: plan_response(v) for g, v in self.shift_verdicts(now_us).items()}

    def open_alerts(self, group: str | None = None) -> list[FleetAlertRecord]:
        """The open ``drift`` alerts, oldest first, optionally of one group.

        Raises:
            StoreError: the database failed.
        """
        alerts = self._store.fleet_alerts(group=group, open_only=True)
        return [a for a in alerts if a.kind == DRIFT_ALERT_KIND]

    def evaluate(self, now_us: int | None = None) -> Evaluation:
        """One monitoring step at ``now_us`` (default: now): open and close drift alerts.

        Returns:
            The view and the alerts opened or closed (empty when nothing changed).

        Raises:
            StoreError: the database failed (alerts already changed stay changed;
                the next step carries on from what is stored).
        """
        now = _now_us(now_us)
        devices = self._store.devices()  # once a step: both reads below use the same registrations
        view = self._view(now // 1000, devices)
        shifts = self._shift_verdicts(now // 1000, devices, refresh=False)  # the view's step refreshed
        open_by_group: dict[str, list[FleetAlertRecord]] = defaultdict(list)
        for alert in self.open_alerts():
            open_by_group[alert.group].append(alert)
        changes: list[AlertChange | None] = []
        for group in view.groups:
            if group.group == UNREGISTERED_GROUP:
                continue  # devices not registered belong to no group to alert about
            alerts = open_by_group.pop(group.group, [])
            shift = shifts.get(group.group)
            if shift is not None and shift.verdict == NO_DATA:
                shift = None  # no shift test answered in the window: the devices' drift words decide
            # a shared shift the model tolerates raises no alert (and ends one): nothing to retrain for
            affected = shift is not None and shift.verdict == "drift" and model_affected(shift)
            drifting = affected if shift is not None else group.drift.drifting
            ended = not affected if shift is not None else group.drift.verdict == "ok"
            if drifting and not alerts:
                changes.append(self._open(group.drift, group.model_versions, now, shift))
            elif ended:  # no data is no evidence the drift ended: keep it open
                changes += [self._close(alert, self._detail(group.drift, shift), now) for alert in alerts]
        for group_name, alerts in sorted(open_by_group.items()):  # groups without devices any more
            detail = {"group": group_name, "drifting": False, "reason": "the group has no devices"}
            changes += [self._close(alert, detail, now) for alert in alerts]
        return Evaluation(view, tuple(c for c in changes if c is not None))

    def _detail(self, verdict: GroupDrift, shift: GroupShift | None = None) -> dict[str, Any]:
        detail = {
            **verdict.to_dict(),
            "drifting_devices": list(verdict.drifting_devices),
            "policy": {
                "window_s": self._policy.window_s,
                "min_fraction": self._policy.min_fraction,
                "min_devices": self._policy.min_devices,
            },
        }
        if shift is not None:  # the shift verdict decided: its words lead
            detail |= {
                "drifting": shift.verdict == "drift",
                "verdict": shift.verdict,
                "reason": shift.reason,
                "drifting_devices": sorted(d for d, v in shift.devices.items() if v == "group_drift"),
                "shift": shift.to_dict(),
            }
        return detail

    def _open(
        self, verdict: GroupDrift, versions: Mapping[str, int], now_us: int, shift: GroupShift | None = None
    ) -> AlertChange | None:
        alert_id = f"{DRIFT_ALERT_KIND}:{verdict.group}:{now_us // 1000}"
        detail = {**self._detail(verdict, shift), "model_versions": dict(versions)}
        opened = self._store.open_fleet_alert(
            alert_id,
            group=verdict.group,
            kind=DRIFT_ALERT_KIND,
            detail_json=json.dumps(detail, sort_keys=True),
            time_us=now_us,
        )
        if not opened:  # the id exists: another step at the same millisecond opened it
            _log.warning("fleet alert %s exists already; not opened again", alert_id)
            return None
        self._record(EVENT_DRIFT_DETECTED, alert_id, detail, now_us)
        _log.warning("fleet drift in group %s: %s (alert %s)", verdict.group, detail["reason"], alert_id)
        return AlertChange(alert_id, verdict.group, "opened", detail)

    def _close(self, alert: FleetAlertRecord, detail: dict[str, Any], now_us: int) -> AlertChange | None:
        if not self._store.close_fleet_alert(alert.alert_id, time_us=now_us):
            return None  # closed by another step since it was read: that step recorded it
        self._record(EVENT_DRIFT_CLEARED, alert.alert_id, detail, now_us)
        _log.info("fleet drift in group %s cleared (alert %s)", alert.group, alert.alert_id)
        return AlertChange(alert.alert_id, alert.group, "closed", detail)

    def _record(self, action: str, alert_id: str, detail: dict[str, Any], now_us: int) -> None:
        payload = {"alert_id": alert_id, **detail}
        self._store.append_audit(self._actor, action, alert_id, payload, time_us=now_us)
        self._sink.emit(action, alert_id, payload)


def find_alarm(store: MonitoringStore, alarm_id: str) -> AgentRecord | None:
    """The first alarm message the hub received with this ``alarm_id``, or None.

    Args:
        store: the hub's store.
        alarm_id: ``<device_id>:<started_ms>``; only that device's alarms are read.

    Raises:
        StoreError: the database failed.
    """
    device_id = alarm_id.rpartition(":")[0]
    if not device_id:
        return None
    for record in store.agent_messages(device_id=device_id, kind="alarm"):
        if record.body().get("alarm_id") == alarm_id:
            return record
    return None


def record_feedback(
    store: MonitoringStore,
    sink: EventSink,
    alarm_id: str,
    *,
    verdict: str,
    actor: str,
    note: str = "",
    time_us: int | None = None,
) -> FeedbackRecord:
    """Store a technician's verdict on an alarm, with an audit entry and an event ``alarm.feedback``.

    Args:
        store: the hub's store.
        sink: where the event goes.
        alarm_id: the alarm (``<device_id>:<started_ms>``, as in its alarm messages).
        verdict: ``confirmed`` (a real fault) or ``false_alarm``.
        actor: who gives it.
        note: free text.
        time_us: when; default: now.

    Returns:
        The verdict now stored for the alarm (a newer stored one wins).

    Raises:
        InputError: ``verdict`` is not one of ``confirmed``, ``false_alarm``.
        NotFoundError: the hub never received an alarm message with this id.
        ConfigError: ``actor`` is empty.
        StoreError: the database failed.
    """
    if verdict not in FEEDBACK_VERDICTS:
        raise InputError(f"feedback verdict {verdict!r} must be one of {', '.join(FEEDBACK_VERDICTS)}")
    alarm = find_alarm(store, alarm_id)
    if alarm is None:
        raise NotFoundError(
            f"alarm {alarm_id!r}: the hub never received an alarm message with this id "
            "(ids are <device_id>:<started_ms>; see `pumpops agents messages --kind alarm`)"
        )
    when = _now_us(time_us)
    stored = store.put_feedback(alarm_id, verdict=verdict, actor=actor, note=note, time_us=when)
    body = alarm.body()
    payload = {
        "alarm_id": alarm_id,
        "device_id": alarm.device_id,
        "verdict": verdict,
        "note": note,
        "model_name": body.get("model_name"),
        "model_version": body.get("model_version"),
        "started_ms": body.get("started_ms"),
    }
    store.append_audit(actor, EVENT_ALARM_FEEDBACK, alarm_id, payload, time_us=when)
    sink.emit(EVENT_ALARM_FEEDBACK, alarm_id, payload)
    return stored


def _now_us(now_us: int | None) -> int:
    return time.time_ns() // 1000 if now_us is None else now_us
