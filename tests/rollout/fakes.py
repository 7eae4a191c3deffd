"""In-memory fakes of what the rollout service talks to: the store's rollout methods, the broker, events.

They implement exactly :class:`pumpops.rollout._service.RolloutStore`,
``DesiredPublisher`` and ``EventEmitter``, so the service's unit tests need
neither a database nor a broker.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pumpops.errors import BrokerError
from pumpops.fleet import Device
from pumpops.store import AgentRecord, ReleaseRecord

ACTIVE = ("pending", "running", "paused", "rolling_back")


@dataclass(frozen=True, slots=True)
class FakeRolloutRecord:
    """The shape of ``pumpops.store.RolloutRecord`` (issue 7 store contract)."""

    rollout_id: str
    group: str
    release: str
    status: str
    state_json: str
    created_at_us: int
    updated_at_us: int


class FakeStore:
    """Devices, releases, agent messages, audit entries and rollouts, in lists."""

    def __init__(self, devices: Sequence[Device] = (), releases: Sequence[ReleaseRecord] = ()) -> None:
        self._devices = list(devices)
        self._releases = list(releases)
        self.messages: list[AgentRecord] = []
        self.audit: list[tuple[str, str, str, dict[str, Any], int | None]] = []
        self.rollout_rows: dict[str, FakeRolloutRecord] = {}
        self.puts = 0

    def devices(self) -> list[Device]:
        return sorted(self._devices, key=lambda d: d.device_id)

    def releases(self, *, group: str | None = None) -> list[ReleaseRecord]:
        return [r for r in self._releases if group is None or r.group == group]

    def agent_messages(
        self,
        *,
        device_id: str | None = None,
        kind: str | None = None,
        since_us: int | None = None,
        limit: int | None = None,
    ) -> list[AgentRecord]:
        found = [
            m
            for m in self.messages
            if (device_id is None or m.device_id == device_id)
            and (kind is None or m.kind == kind)
            and (since_us is None or m.ts_us >= since_us)
        ]
        found.sort(key=lambda m: (m.device_id, m.ts_us, m.seq))  # the store's order: newest by time
        return found[-limit:] if limit else found

    def append_audit(
        self,
        actor: str,
        action: str,
        subject: str,
        payload: Mapping[str, Any] | None = None,
        *,
        time_us: int | None = None,
    ) -> object:
        json.dumps(payload)  # the real chain wants JSON
        self.audit.append((actor, action, subject, dict(payload or {}), time_us))
        return None

    def put_rollout(
        self,
        rollout_id: str,
        *,
        group: str,
        release: str,
        status: str,
        state_json: str,
        time_us: int | None = None,
    ) -> FakeRolloutRecord:
        now = time_us or 0
        old = self.rollout_rows.get(rollout_id)
        row = FakeRolloutRecord(
            rollout_id, group, release, status, state_json, old.created_at_us if old else now, now
        )
        if old is not None:
            row = replace(row, created_at_us=old.created_at_us)
        self.rollout_rows[rollout_id] = row
        self.puts += 1
        return row

    def get_rollout(self, rollout_id: str) -> FakeRolloutRecord | None:
        return self.rollout_rows.get(rollout_id)

    def rollouts(self, *, group: str | None = None, active_only: bool = False) -> list[FakeRolloutRecord]:
        rows = [
            r
            for r in self.rollout_rows.values()
            if (group is None or r.group == group) and (not active_only or r.status in ACTIVE)
        ]
        return sorted(rows, key=lambda r: (r.created_at_us, r.rollout_id))

    # -- test helpers

    def add_message(
        self, device_id: str, kind: str, body: dict[str, Any], *, at_s: float, site: str = "s1"
    ) -> None:
        seq = 1 + sum(1 for m in self.messages if m.device_id == device_id)
        body_json = json.dumps(body, sort_keys=True)
        self.messages.append(
            AgentRecord(
                msg_id=f"{device_id}:{seq}",
                device_id=device_id,
                site=site,
                kind=kind,
                ts_us=int(at_s * 1e6),
                agent_version="0.1.0",
                body_json=body_json,
                payload_sha256=hashlib.sha256(body_json.encode()).hexdigest(),
                received_at_us=int(at_s * 1e6),
            )
        )


class FakePublisher:
    """Keeps the retained message of every topic, like a broker; can be told to fail."""

    def __init__(self) -> None:
        self.retained: dict[str, bytes] = {}
        self.published: list[tuple[str, bytes]] = []
        self.fail = False

    def publish_retained(self, messages: Sequence[tuple[str, bytes]]) -> None:
        if self.fail:
            raise BrokerError("the fake broker is down")
        for topic, payload in messages:
            self.retained[topic] = payload
            self.published.append((topic, payload))

    def desired(self, topic_prefix: str = "pumpops/v1") -> dict[str, dict[str, Any]]:
        """Device id → its retained desired document."""
        out = {}
        for topic, payload in self.retained.items():
            if topic.startswith(topic_prefix + "/") and topic.endswith("/desired"):
                out[topic.split("/")[-2]] = json.loads(payload)
        return out


class FakeEvents:
    """Records emitted events."""

    def __init__(self) -> None:
        self.emitted: list[tuple[str, str, dict[str, Any]]] = []

    def emit(self, kind: str, subject: str, payload: dict[str, Any] | None = None) -> object:
        self.emitted.append((kind, subject, dict(payload or {})))
        return None


def release(model_name: str, version: int, group: str, release_id: int = 1) -> ReleaseRecord:
    """A release record as ``pumpops release create`` stores it."""
    return ReleaseRecord(
        release_id=release_id,
        model_name=model_name,
        version=version,
        group=group,
        targets=("x86_64-ipc",),
        created_us=1,
        created_by="test",
        bundle_root="/tmp/bundles",
        record_json="{}",
    )
