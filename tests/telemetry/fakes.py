"""An in-memory store of the concerns ingest uses, with the store contract's rules, and failure injection."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterable, Sequence

import numpy as np

from pumpops.errors import InputError, NotFoundError, StoreError
from pumpops.fleet import Device
from pumpops.schema import DeadLetter, ReadingBatch
from pumpops.store import (
    ROLLOUT_ACTIVE_STATUSES,
    AgentMessageStore,
    AgentPut,
    AgentRecord,
    AlertStore,
    BatchOutcome,
    DeadLetterStore,
    DeviceStore,
    FeedbackRecord,
    FleetAlertRecord,
    ReadingsFrame,
    ReadingStore,
    RolloutRecord,
    RolloutRecordStore,
)
from pumpops.store._agent_messages import seq_jumps
from pumpops.store._plan import check_feedback, check_fleet_alert, check_rollout, check_time_us
from pumpops.web import minmax


class MemoryStore(
    DeviceStore, ReadingStore, DeadLetterStore, AgentMessageStore, RolloutRecordStore, AlertStore
):
    """Keeps everything in dicts; ``fail_writes`` makes the next N ``write_batches`` raise StoreError.

    It implements the store's concerns that ingest and its tests use (no audit
    trail, no registry records), plus ``upgrade``, ``counts`` and ``close``.
    """

    def __init__(self, devices: Iterable[Device] = ()) -> None:
        self._lock = threading.Lock()
        self._devices: dict[str, Device] = {d.device_id: d for d in devices}
        self.messages: dict[tuple[str, str], str] = {}
        self.readings: dict[tuple[str, str, int], float] = {}
        self.letters: list[DeadLetter] = []
        self.agent: dict[str, AgentRecord] = {}
        self.rollout_rows: dict[str, RolloutRecord] = {}
        self.alerts: dict[str, FleetAlertRecord] = {}
        self.verdicts: dict[str, FeedbackRecord] = {}
        self.fail_writes = 0
        self.fail_with: Exception | None = None
        self.write_calls = 0
        self.device_calls = 0

    def upgrade(self) -> None:
        pass

    def register_devices(self, devices: Iterable[Device]) -> int:
        with self._lock:
            new = 0
            for device in devices:
                new += device.device_id not in self._devices
                self._devices[device.device_id] = device
            return new

    def devices(self) -> list[Device]:
        with self._lock:
            return sorted(self._devices.values(), key=lambda d: d.device_id)

    def device(self, device_id: str) -> Device | None:
        with self._lock:
            self.device_calls += 1
            return self._devices.get(device_id)

    def write_batches(self, batches: Sequence[ReadingBatch]) -> list[BatchOutcome]:
        with self._lock:
            self.write_calls += 1
            if self.fail_writes > 0:
                self.fail_writes -= 1
                raise self.fail_with or StoreError("injected: the database is down")
            missing = {b.device_id for b in batches} - set(self._devices)
            if missing:
                raise NotFoundError(f"devices not registered: {sorted(missing)}")
            messages = dict(self.messages)
            readings = dict(self.readings)
            outcomes = []
            for batch in batches:
                key = (batch.device_id, batch.msg_id)
                if key in messages:
                    status = "duplicate" if messages[key] == batch.payload_sha256 else "id_conflict"
                    outcomes.append(BatchOutcome(batch.device_id, batch.msg_id, status))  # type: ignore[arg-type]
                    continue
                messages[key] = batch.payload_sha256
                written = overlapping = 0
                conflicting = []
                for i, ts in enumerate(batch.ts_us.tolist()):
                    for j, sensor in enumerate(batch.sensors):
                        value = float(batch.values[i, j])
                        if np.isnan(value):
                            continue
                        rkey = (batch.device_id, sensor, ts)
                        if rkey in readings:
                            overlapping += 1
                            if readings[rkey] != value and len(conflicting) < 10:
                                conflicting.append((sensor, ts, readings[rkey], value))
                            continue
                        readings[rkey] = value
                        written += 1
                outcomes.append(
                    BatchOutcome(
                        batch.device_id, batch.msg_id, "stored", written, overlapping, tuple(conflicting)
                    )
                )
            self.messages, self.readings = messages, readings
            return outcomes

    def put_agent_messages(
        self, messages: Sequence[AgentRecord], *, max_seq_jump: int | None = None
    ) -> AgentPut:
        with self._lock:
            self.write_calls += 1
            if self.fail_writes > 0:
                self.fail_writes -= 1
                raise self.fail_with or StoreError("injected: the database is down")
            jumped: dict[str, tuple[int, int]] = {}
            if max_seq_jump is not None:
                highest: dict[str, int] = {}
                for r in self.agent.values():
                    highest[r.device_id] = max(highest.get(r.device_id, 0), r.seq)
                firsts = {m.msg_id: m for m in reversed(messages)}
                jumped = seq_jumps(list(firsts.values()), highest, max_seq_jump)
            stored = duplicates = jumps = 0
            for record in messages:
                if record.msg_id in jumped:
                    jumps += 1
                    self.letters.append(
                        DeadLetter(
                            record.topic,
                            record.payload,
                            "seq_jump",
                            f"seq {jumped[record.msg_id]}",
                            record.received_at_us,
                            record.device_id,
                            record.msg_id,
                        )
                    )
                    continue
                old = self.agent.get(record.msg_id)
                if old is None:
                    self.agent[record.msg_id] = record
                    stored += 1
                elif old.payload_sha256 == record.payload_sha256:
                    duplicates += 1
                else:
                    self.letters.append(
                        DeadLetter(
                            record.topic,
                            record.payload,
                            "msg_id_conflict",
                            "reused id",
                            record.received_at_us,
                            record.device_id,
                            record.msg_id,
                        )
                    )
            return AgentPut(stored, duplicates, jumps)

    def redate_agent_messages(self, msg_ids: Sequence[str], *, since_us: int, received_at_us: int) -> int:
        moved = 0
        with self._lock:
            for msg_id in set(msg_ids):
                old = self.agent.get(msg_id)
                if old is not None and since_us <= old.received_at_us < received_at_us:
                    self.agent[msg_id] = dataclasses.replace(old, received_at_us=received_at_us)
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
        with self._lock:
            found = sorted(
                (
                    r
                    for r in self.agent.values()
                    if (device_id is None or r.device_id == device_id)
                    and (kind is None or r.kind == kind)
                    and (since_us is None or r.ts_us >= since_us)
                ),
                key=lambda r: (r.device_id, r.ts_us, r.seq, r.msg_id),
            )
        return found if limit is None else found[len(found) - limit :] if limit else []

    def put_rollout(
        self,
        rollout_id: str,
        *,
        group: str,
        release: str,
        status: str,
        state_json: str,
        time_us: int | None = None,
    ) -> RolloutRecord:
        check_rollout(
            rollout_id, group=group, release=release, status=status, state_json=state_json, time_us=time_us
        )
        when = time.time_ns() // 1000 if time_us is None else time_us
        with self._lock:
            old = self.rollout_rows.get(rollout_id)
            created = when if old is None else old.created_at_us
            record = RolloutRecord(rollout_id, group, release, status, state_json, created, when)
            self.rollout_rows[rollout_id] = record
            return record

    def get_rollout(self, rollout_id: str) -> RolloutRecord | None:
        with self._lock:
            return self.rollout_rows.get(rollout_id)

    def rollouts(self, *, group: str | None = None, active_only: bool = False) -> list[RolloutRecord]:
        with self._lock:
            return sorted(
                (
                    r
                    for r in self.rollout_rows.values()
                    if (group is None or r.group == group)
                    and (not active_only or r.status in ROLLOUT_ACTIVE_STATUSES)
                ),
                key=lambda r: (r.created_at_us, r.rollout_id),
            )

    def open_fleet_alert(
        self, alert_id: str, *, group: str, kind: str, detail_json: str, time_us: int | None = None
    ) -> bool:
        check_fleet_alert(alert_id, group=group, kind=kind, detail_json=detail_json, time_us=time_us)
        when = time.time_ns() // 1000 if time_us is None else time_us
        with self._lock:
            if alert_id in self.alerts:
                return False
            self.alerts[alert_id] = FleetAlertRecord(alert_id, group, kind, when, None, detail_json)
            return True

    def close_fleet_alert(self, alert_id: str, *, time_us: int | None = None) -> bool:
        check_time_us(f"fleet alert {alert_id!r}", time_us)
        when = time.time_ns() // 1000 if time_us is None else time_us
        with self._lock:
            alert = self.alerts.get(alert_id)
            if alert is None or alert.closed_at_us is not None:
                return False
            self.alerts[alert_id] = dataclasses.replace(alert, closed_at_us=when)
            return True

    def fleet_alerts(self, *, group: str | None = None, open_only: bool = False) -> list[FleetAlertRecord]:
        with self._lock:
            return sorted(
                (
                    a
                    for a in self.alerts.values()
                    if (group is None or a.group == group) and (not open_only or a.closed_at_us is None)
                ),
                key=lambda a: (a.opened_at_us, a.alert_id),
            )

    def put_feedback(
        self, alarm_id: str, *, verdict: str, actor: str, note: str = "", time_us: int | None = None
    ) -> FeedbackRecord:
        device_id = check_feedback(alarm_id, verdict=verdict, actor=actor, note=note, time_us=time_us)
        when = time.time_ns() // 1000 if time_us is None else time_us
        with self._lock:
            old = self.verdicts.get(alarm_id)
            if old is None or when >= old.at_us:
                self.verdicts[alarm_id] = FeedbackRecord(alarm_id, device_id, verdict, actor, note, when)
            return self.verdicts[alarm_id]

    def feedback(self, *, device_id: str | None = None, since_us: int | None = None) -> list[FeedbackRecord]:
        with self._lock:
            return sorted(
                (
                    f
                    for f in self.verdicts.values()
                    if (device_id is None or f.device_id == device_id)
                    and (since_us is None or f.at_us >= since_us)
                ),
                key=lambda f: (f.at_us, f.alarm_id),
            )

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        with self._lock:
            self.letters.extend(letters)

    def dead_letters(self, *, limit: int = 100, reason: str | None = None) -> list[DeadLetter]:
        with self._lock:
            found = [d for d in reversed(self.letters) if reason is None or d.reason == reason]
            return found[:limit]

    def query(
        self,
        device_id: str,
        *,
        sensors: Sequence[str] | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> ReadingsFrame:
        with self._lock:
            if device_id not in self._devices:
                raise NotFoundError(device_id)
            rows = [
                (ts, s, v)
                for (d, s, ts), v in self.readings.items()
                if d == device_id
                and (sensors is None or s in sensors)
                and (since_us is None or ts >= since_us)
                and (until_us is None or ts < until_us)
            ]
        names = tuple(sorted({s for _, s, _ in rows})) if sensors is None else tuple(sensors)
        times = sorted({ts for ts, _, _ in rows})
        values = np.full((len(times), len(names)), np.nan)
        ti = {t: i for i, t in enumerate(times)}
        si = {s: j for j, s in enumerate(names)}
        for ts, s, v in rows:
            values[ti[ts], si[s]] = v
        return ReadingsFrame(device_id, np.array(times, dtype=np.int64), names, values)

    def query_minmax(
        self,
        device_id: str,
        *,
        sensors: Sequence[str] | None = None,
        since_us: int,
        until_us: int,
        points: int,
    ) -> list[tuple[str, np.ndarray, np.ndarray, int]]:
        if points < 2 or until_us <= since_us:
            raise InputError(f"points {points} below 2 or range [{since_us}, {until_us}) empty")
        frame = self.query(device_id, sensors=sensors, since_us=since_us, until_us=until_us)
        out = []
        for index, sensor in enumerate(frame.sensors):
            column = frame.values[:, index]
            ts, kept = minmax(frame.ts_us, column, points)
            out.append((sensor, ts, kept, int(np.count_nonzero(~np.isnan(column)))))
        return out

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "devices": len(self._devices),
                "messages": len(self.messages),
                "readings": len(self.readings),
                "dead_letters": len(self.letters),
            }

    def close(self) -> None:
        pass
