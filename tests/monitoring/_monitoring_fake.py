"""An in-memory stand-in for the store methods the monitoring service uses (the revision 0006 contract).

Kept deliberately small: agent messages, devices, fleet alerts, feedback, audit
actions and events. The service tests run on it and on both real engines.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pumpops.errors import InputError
from pumpops.fleet import Device
from pumpops.store import AgentPut, AgentRecord, EventRecord, FeedbackRecord, FleetAlertRecord


@dataclass(frozen=True)
class FakeAudit:
    """An audit entry without the chain."""

    time_us: int
    actor: str
    action: str
    subject: str
    payload_json: str


class FakeMonitoringStore:
    """Just enough of :class:`~pumpops.store.TelemetryStore` for monitoring, in memory."""

    def __init__(self) -> None:
        self._devices: dict[str, Device] = {}
        self._messages: dict[str, AgentRecord] = {}
        self._alerts: dict[str, FleetAlertRecord] = {}
        self._feedback: dict[str, FeedbackRecord] = {}
        self._audit: list[FakeAudit] = []
        self._events: list[EventRecord] = []

    def upgrade(self) -> None:
        """Nothing to migrate."""

    def close(self) -> None:
        """Nothing to release."""

    def register_devices(self, devices: Iterable[Device]) -> int:
        new = 0
        for device in devices:
            new += device.device_id not in self._devices
            self._devices[device.device_id] = device
        return new

    def devices(self) -> list[Device]:
        return sorted(self._devices.values(), key=lambda d: d.device_id)

    def put_agent_messages(
        self, messages: Sequence[AgentRecord], *, max_seq_jump: int | None = None
    ) -> AgentPut:
        del max_seq_jump  # the monitoring tests put what ingest accepted
        stored = 0
        for message in messages:
            if message.msg_id not in self._messages:
                self._messages[message.msg_id] = message
                stored += 1
        return AgentPut(stored, len(messages) - stored)

    def redate_agent_messages(self, msg_ids: Sequence[str], *, since_us: int, received_at_us: int) -> int:
        moved = 0
        for msg_id in set(msg_ids):
            old = self._messages.get(msg_id)
            if old is not None and since_us <= old.received_at_us < received_at_us:
                self._messages[msg_id] = dataclasses.replace(old, received_at_us=received_at_us)
                moved += 1
        return moved

    def agent_messages(
        self,
        *,
        device_id: str | None = None,
        kind: str | None = None,
        since_us: int | None = None,
        limit: int | None = None,
    ) -> list[AgentRecord]:
        rows = sorted(self._messages.values(), key=lambda r: (r.device_id, r.ts_us, r.seq))
        rows = [
            r
            for r in rows
            if (device_id is None or r.device_id == device_id)
            and (kind is None or r.kind == kind)
            and (since_us is None or r.ts_us >= since_us)
        ]
        return rows[-limit:] if limit else ([] if limit == 0 else rows)

    def open_fleet_alert(
        self, alert_id: str, *, group: str, kind: str, detail_json: str, time_us: int | None = None
    ) -> bool:
        if not isinstance(json.loads(detail_json), dict):
            raise InputError("detail_json must be a JSON object")
        if alert_id in self._alerts:
            return False
        self._alerts[alert_id] = FleetAlertRecord(alert_id, group, kind, time_us or 0, None, detail_json)
        return True

    def close_fleet_alert(self, alert_id: str, *, time_us: int | None = None) -> bool:
        alert = self._alerts.get(alert_id)
        if alert is None or alert.closed_at_us is not None:
            return False
        self._alerts[alert_id] = FleetAlertRecord(
            alert.alert_id, alert.group, alert.kind, alert.opened_at_us, time_us or 0, alert.detail_json
        )
        return True

    def fleet_alerts(self, *, group: str | None = None, open_only: bool = False) -> list[FleetAlertRecord]:
        rows = sorted(self._alerts.values(), key=lambda a: (a.opened_at_us, a.alert_id))
        return [a for a in rows if (group is None or a.group == group) and (not open_only or a.is_open)]

    def put_feedback(
        self, alarm_id: str, *, verdict: str, actor: str, note: str = "", time_us: int | None = None
    ) -> FeedbackRecord:
        record = FeedbackRecord(alarm_id, alarm_id.rpartition(":")[0], verdict, actor, note, time_us or 0)
        old = self._feedback.get(alarm_id)
        if old is None or record.at_us >= old.at_us:
            self._feedback[alarm_id] = record
        return self._feedback[alarm_id]

    def feedback(self, *, device_id: str | None = None, since_us: int | None = None) -> list[FeedbackRecord]:
        return [
            f
            for f in self._feedback.values()
            if (device_id is None or f.device_id == device_id) and (since_us is None or f.at_us >= since_us)
        ]

    def append_audit(
        self,
        actor: str,
        action: str,
        subject: str,
        payload: Mapping[str, Any] | None = None,
        *,
        time_us: int | None = None,
    ) -> FakeAudit:
        entry = FakeAudit(
            time_us or 0, actor, action, subject, json.dumps(dict(payload or {}), sort_keys=True)
        )
        self._audit.append(entry)
        return entry

    def audit_entries(self) -> list[FakeAudit]:
        return list(self._audit)

    def append_event(
        self, kind: str, subject: str, payload: Mapping[str, Any] | None = None, *, time_us: int | None = None
    ) -> EventRecord:
        record = EventRecord(
            len(self._events) + 1, time_us or 0, kind, subject, json.dumps(dict(payload or {}))
        )
        self._events.append(record)
        return record

    def events(self, *, kind: str | None = None) -> list[EventRecord]:
        return [e for e in self._events if kind is None or e.kind == kind]
