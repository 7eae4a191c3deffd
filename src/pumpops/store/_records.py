"""The store's records: what its methods take and return, as frozen values.

Owns the record types of every concern (devices use :class:`pumpops.fleet.Device`,
dead letters :class:`pumpops.schema.DeadLetter`) and the constants their
checks use. Plain data: no SQLAlchemy, no I/O, so consumers and test fakes
import them without a database driver.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple

import numpy as np

BatchStatus = Literal["stored", "duplicate", "id_conflict"]

#: The kinds of agent message (``pumpops.agent/1``), as in the envelope's ``kind``.
AGENT_KINDS: Final[tuple[str, ...]] = ("alarm", "summary", "drift", "state")

#: Rollout statuses that count as active in :meth:`~pumpops.store.TelemetryStore.rollouts` (``active_only``).
ROLLOUT_ACTIVE_STATUSES: Final[tuple[str, ...]] = ("pending", "running", "paused", "rolling_back")

#: A technician's verdicts on an alarm (:meth:`~pumpops.store.TelemetryStore.put_feedback`).
FEEDBACK_VERDICTS: Final[tuple[str, ...]] = ("confirmed", "false_alarm")


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What happened to one batch in :meth:`~pumpops.store.TelemetryStore.write_batches`.

    Attributes:
        device_id: the batch's device.
        msg_id: the batch's message id.
        status: ``stored`` (new message), ``duplicate`` (same id and same
            payload hash already stored: a redelivery, nothing written) or
            ``id_conflict`` (same id, different payload: nothing written; the
            caller dead-letters it).
        readings_written: readings newly stored.
        readings_overlapping: readings whose ``(device, sensor, ts)`` was
            already stored by another message; the first value is kept.
        conflicting: up to 10 ``(sensor, ts_us, stored_value, new_value)`` of
            the overlapping readings whose values differ.
    """

    device_id: str
    msg_id: str
    status: BatchStatus
    readings_written: int = 0
    readings_overlapping: int = 0
    conflicting: tuple[tuple[str, int, float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class ReadingsFrame:
    """Readings of one device as arrays, ready for training.

    Attributes:
        device_id: the device.
        ts_us: shape ``(M,)`` int64, sorted, microseconds since the epoch (UTC).
        sensors: ``N`` canonical sensor names.
        values: shape ``(M, N)`` float64 in SI units; NaN where a sensor has
            no reading at that instant.
    """

    device_id: str
    ts_us: np.ndarray
    sensors: tuple[str, ...]
    values: np.ndarray


@dataclass(frozen=True, slots=True)
class AliasRecord:
    """One period during which an alias (``<group>-champion``) pointed at a model version.

    Attributes:
        group: the device group.
        alias: the alias name (``<group>-champion``, ``<group>-challenger``).
        model_name: the registered model's name.
        version: the model version.
        from_us: when the alias was set, microseconds since the epoch (UTC).
        to_us: when it moved on or was removed; None while it is current.
        set_by: the actor who set it.
        reason: why (a forced promotion's reason), or None.
    """

    group: str
    alias: str
    model_name: str
    version: int
    from_us: int
    to_us: int | None
    set_by: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One stored lifecycle event (``model.promoted``, ...).

    Attributes:
        seq: its number, given by the database, increasing.
        time_us: when, microseconds since the epoch (UTC).
        kind: what happened (``model.registered``, ``release.published``, ...).
        subject: what it happened to (``pumpops-skab/3``).
        payload_json: details, canonical JSON text of an object.
    """

    seq: int
    time_us: int
    kind: str
    subject: str
    payload_json: str


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    """One release: a model version packaged for one or more targets.

    Attributes:
        release_id: its number, given by the database, increasing.
        model_name: the registered model.
        version: the model version.
        group: the device group the bundles are for.
        targets: the target ids, in the order given.
        created_us: when, microseconds since the epoch (UTC).
        created_by: the actor.
        bundle_root: the folder the bundles were written under.
        record_json: canonical JSON: what was built per target and why.
    """

    release_id: int
    model_name: str
    version: int
    group: str
    targets: tuple[str, ...]
    created_us: int
    created_by: str
    bundle_root: str
    record_json: str


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """One message of a device agent (alarm, summary, drift report, state), as the store keeps it.

    The ingest service builds these from checked ``pumpops.agent/1`` envelopes
    (``docs/protocol.md``, "Agent messages"); the store checks the fields again.

    Attributes:
        msg_id: ``<device_id>:<seq>``; the idempotency key, unique across the fleet.
        device_id: the sending device (need not be registered).
        site: its site, as in the topic and the envelope.
        kind: ``alarm``, ``summary``, ``drift`` or ``state``.
        ts_us: when the agent produced it, microseconds since the epoch (UTC;
            the envelope's ``ts_ms`` x 1000).
        agent_version: the agent's version.
        body_json: the body, JSON text of an object, as it came.
        payload_sha256: SHA-256 (hex) of the envelope's canonical JSON; a
            resend has the same, a reused id with other content another.
        received_at_us: when the hub received it.
        topic: the topic it arrived on; kept only if the message is
            dead-lettered (an id conflict), never in ``agent_messages``.
        payload: the raw payload, kept the same way; empty: the dead letter
            keeps the envelope rebuilt from the fields.
    """

    msg_id: str
    device_id: str
    site: str
    kind: str
    ts_us: int
    agent_version: str
    body_json: str
    payload_sha256: str
    received_at_us: int
    topic: str = field(default="", repr=False, compare=False)
    payload: bytes = field(default=b"", repr=False, compare=False)

    @property
    def seq(self) -> int:
        """The agent outbox's sequence number: the integer after the last ``:`` of ``msg_id``.

        >>> AgentRecord("p-1:42", "p-1", "s1", "state", 0, "0.1.0", "{}", "0" * 64, 0).seq
        42
        """
        return int(self.msg_id.rsplit(":", 1)[1])

    @property
    def ts_ms(self) -> int:
        """``ts_us`` in milliseconds, as the agent sent it."""
        return self.ts_us // 1000

    def body(self) -> dict[str, Any]:
        """The body as a dict (parsed from ``body_json``)."""
        value = json.loads(self.body_json)
        return value if isinstance(value, dict) else {}


class AgentPut(NamedTuple):
    """What :meth:`~pumpops.store.TelemetryStore.put_agent_messages` did.

    Attributes:
        stored: messages newly stored.
        duplicates: resends of stored messages (same id, same payload hash): nothing written.
        seq_jumps: messages whose sequence number jumped too far past their
            device's stored maximum: each was written as a ``seq_jump`` dead letter.

    The rest of the call's messages were id conflicts (same id, other
    payload): each was written as a ``msg_id_conflict`` dead letter instead.
    """

    stored: int
    duplicates: int
    seq_jumps: int = 0


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    """One staged rollout as the store keeps it (revision 0006).

    Attributes:
        rollout_id: its id, the key.
        group: the device group rolled out to.
        release: what is rolled out (as the rollout service names it).
        status: the state machine's status (``pending``, ``running``,
            ``paused``, ``rolling_back``, ... see :mod:`pumpops.rollout`).
        state_json: the rollout state, JSON text of an object, as it was put.
        created_at_us: when it was first put, microseconds since the epoch (UTC); kept by updates.
        updated_at_us: when it was last put.
    """

    rollout_id: str
    group: str
    release: str
    status: str
    state_json: str
    created_at_us: int
    updated_at_us: int

    @property
    def active(self) -> bool:
        """Whether its status is one of :data:`ROLLOUT_ACTIVE_STATUSES`."""
        return self.status in ROLLOUT_ACTIVE_STATUSES


@dataclass(frozen=True, slots=True)
class FleetAlertRecord:
    """One fleet-level alert (a drifting group, ...) (revision 0006).

    Attributes:
        alert_id: its id, the key; opening the same id again changes nothing.
        group: the device group it is about.
        kind: what it is (``fleet_drift``, ...).
        opened_at_us: when it was opened, microseconds since the epoch (UTC).
        closed_at_us: when it was closed; None while it is open.
        detail_json: details, JSON text of an object, as it was given.
    """

    alert_id: str
    group: str
    kind: str
    opened_at_us: int
    closed_at_us: int | None
    detail_json: str

    @property
    def is_open(self) -> bool:
        """Whether it is still open."""
        return self.closed_at_us is None


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """A technician's verdict on one alarm (revision 0006).

    Attributes:
        alarm_id: the alarm, ``<device_id>:<started_ms>``; the key.
        device_id: the alarm id before its last ``:``.
        verdict: ``confirmed`` (a real fault) or ``false_alarm``.
        actor: who gave it.
        note: free text; may be empty.
        at_us: when, microseconds since the epoch (UTC).
    """

    alarm_id: str
    device_id: str
    verdict: str
    actor: str
    note: str
    at_us: int
