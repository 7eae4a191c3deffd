"""An in-memory :class:`TelemetryStore` with the store contract's semantics, and failure injection."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

import numpy as np

from pumpops.errors import NotFoundError, StoreError
from pumpops.fleet import Device
from pumpops.schema import DeadLetter, ReadingBatch
from pumpops.store import AgentPut, AgentRecord, BatchOutcome, ReadingsFrame, TelemetryStore


class MemoryStore(TelemetryStore):
    """Keeps everything in dicts; ``fail_writes`` makes the next N ``write_batches`` raise StoreError."""

    def __init__(self, devices: Iterable[Device] = ()) -> None:
        self._lock = threading.Lock()
        self._devices: dict[str, Device] = {d.device_id: d for d in devices}
        self.messages: dict[tuple[str, str], str] = {}
        self.readings: dict[tuple[str, str, int], float] = {}
        self.letters: list[DeadLetter] = []
        self.agent: dict[str, AgentRecord] = {}
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

    def put_agent_messages(self, messages: Sequence[AgentRecord]) -> AgentPut:
        with self._lock:
            self.write_calls += 1
            if self.fail_writes > 0:
                self.fail_writes -= 1
                raise self.fail_with or StoreError("injected: the database is down")
            stored = duplicates = 0
            for record in messages:
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
            return AgentPut(stored, duplicates)

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
                key=lambda r: (r.device_id, r.seq, r.msg_id),
            )
        return found if limit is None else found[len(found) - limit :] if limit else []

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
