"""The store interface: what code above ``store`` may ask of the hub's database.

One interface, two engines (SQLite, PostgreSQL); callers never learn which.
Implementations live in underscore modules and are chosen by URL in
:func:`pumpops.store.open_store`.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple

import numpy as np

from pumpops.audit import AuditEntry, canonical_json, check_fields
from pumpops.errors import InputError
from pumpops.fleet import Device
from pumpops.schema import DeadLetter, ReadingBatch

BatchStatus = Literal["stored", "duplicate", "id_conflict"]

#: The kinds of agent message (``pumpops.agent/1``), as in the envelope's ``kind``.
AGENT_KINDS: Final[tuple[str, ...]] = ("alarm", "summary", "drift", "state")

#: Rollout statuses that count as active in :meth:`TelemetryStore.rollouts` (``active_only``).
ROLLOUT_ACTIVE_STATUSES: Final[tuple[str, ...]] = ("pending", "running", "paused", "rolling_back")

#: A technician's verdicts on an alarm (:meth:`TelemetryStore.put_feedback`).
FEEDBACK_VERDICTS: Final[tuple[str, ...]] = ("confirmed", "false_alarm")


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What happened to one batch in :meth:`TelemetryStore.write_batches`.

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
    """What :meth:`TelemetryStore.put_agent_messages` did.

    Attributes:
        stored: messages newly stored.
        duplicates: resends of stored messages (same id, same payload hash): nothing written.

    The rest of the call's messages were id conflicts (same id, other
    payload): each was written as a ``msg_id_conflict`` dead letter instead.
    """

    stored: int
    duplicates: int


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


class TelemetryStore(abc.ABC):
    """The hub's telemetry database."""

    @abc.abstractmethod
    def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent)."""

    @abc.abstractmethod
    def register_devices(self, devices: Iterable[Device]) -> int:
        """Insert or update devices; return how many were new."""

    @abc.abstractmethod
    def devices(self) -> list[Device]:
        """Return every registered device, sorted by id."""

    @abc.abstractmethod
    def device(self, device_id: str) -> Device | None:
        """Return one device, or None if it is not registered."""

    @abc.abstractmethod
    def write_batches(self, batches: Sequence[ReadingBatch]) -> list[BatchOutcome]:
        """Store batches idempotently in one transaction; one outcome per batch, in order.

        Raises:
            StoreError: the database failed; nothing of the call was stored.
        """

    @abc.abstractmethod
    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Store dead letters (never deduplicated: each rejection is a fact)."""

    @abc.abstractmethod
    def dead_letters(self, *, limit: int = 100, reason: str | None = None) -> list[DeadLetter]:
        """Return the newest dead letters first, optionally of one reason."""

    @abc.abstractmethod
    def put_agent_messages(self, messages: Sequence[AgentRecord]) -> AgentPut:
        """Store agent messages idempotently by ``msg_id``, in one transaction.

        A message whose id is not stored yet is stored. One whose id is stored
        with the same payload hash is a duplicate (a resend; nothing written).
        One whose id is stored with another payload hash is an id conflict: it
        never overwrites, and it is written as a dead letter (reason
        ``msg_id_conflict``) in the same transaction. Messages repeated within
        the call are judged as if written one after the other. The device need
        not be registered (agents may be commissioned before registration).

        Raises:
            InputError: a message is malformed (ids, kind, hash, body); nothing was stored.
            StoreError: the database failed; nothing of the call was stored.
        """

    @abc.abstractmethod
    def agent_messages(
        self,
        *,
        device_id: str | None = None,
        kind: str | None = None,
        since_us: int | None = None,
        limit: int | None = None,
    ) -> list[AgentRecord]:
        """Return stored agent messages ordered by device, then ``seq`` (numerically).

        Args:
            device_id: only this device's.
            kind: only this kind (``alarm``, ``summary``, ``drift``, ``state``).
            since_us: only those produced at or after this instant (``ts_us``).
            limit: only the last ``limit`` of that order (with ``device_id``:
                the device's newest), still in order.

        Raises:
            InputError: ``limit`` is negative or ``kind`` is unknown.
            StoreError: the database failed.
        """

    # -- rollouts, fleet alerts, alarm feedback (revision 0006) -----------------------------------

    @abc.abstractmethod
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
        """Insert a rollout, or update the stored one with this id; return it as stored.

        An update replaces group, release, status and state and sets
        ``updated_at_us``; ``created_at_us`` stays as first stored.

        Args:
            rollout_id: the key (1 to 128 characters).
            group: the device group (an identifier).
            release: what is rolled out; not empty.
            status: the state machine's status (1 to 32 characters).
            state_json: the rollout state, JSON text of an object.
            time_us: when, microseconds since the epoch (UTC); default: now.

        Raises:
            InputError: a field is empty, too long or not an identifier, or
                ``state_json`` is not JSON of an object; nothing was stored.
            StoreError: the database failed; nothing was stored.
        """

    @abc.abstractmethod
    def get_rollout(self, rollout_id: str) -> RolloutRecord | None:
        """Return the rollout with this id, or None.

        Raises:
            StoreError: the database failed.
        """

    @abc.abstractmethod
    def rollouts(self, *, group: str | None = None, active_only: bool = False) -> list[RolloutRecord]:
        """Return rollouts ordered by ``created_at_us`` (then id).

        Args:
            group: only this device group's.
            active_only: only those whose status is in :data:`ROLLOUT_ACTIVE_STATUSES`.

        Raises:
            StoreError: the database failed.
        """

    @abc.abstractmethod
    def open_fleet_alert(
        self, alert_id: str, *, group: str, kind: str, detail_json: str, time_us: int | None = None
    ) -> bool:
        """Open a fleet alert; return False (and change nothing) if this id exists already.

        An id is opened once: opening a closed alert's id again does not reopen it.

        Args:
            alert_id: the key (1 to 128 characters).
            group: the device group (an identifier).
            kind: what it is (1 to 64 characters).
            detail_json: details, JSON text of an object.
            time_us: when, microseconds since the epoch (UTC); default: now.

        Raises:
            InputError: a field is malformed or ``detail_json`` is not JSON of an object.
            StoreError: the database failed; nothing was stored.
        """

    @abc.abstractmethod
    def close_fleet_alert(self, alert_id: str, *, time_us: int | None = None) -> bool:
        """Close an open fleet alert; return False if the id is unknown or already closed.

        Raises:
            InputError: ``time_us`` is not a non-negative integer.
            StoreError: the database failed.
        """

    @abc.abstractmethod
    def fleet_alerts(self, *, group: str | None = None, open_only: bool = False) -> list[FleetAlertRecord]:
        """Return fleet alerts ordered by ``opened_at_us`` (then id).

        Args:
            group: only this device group's.
            open_only: only those not closed.

        Raises:
            StoreError: the database failed.
        """

    @abc.abstractmethod
    def put_feedback(
        self, alarm_id: str, *, verdict: str, actor: str, note: str = "", time_us: int | None = None
    ) -> FeedbackRecord:
        """Record a technician's verdict on an alarm; the newest verdict on an alarm is kept.

        A later verdict (``time_us`` at or after the stored one's) replaces the
        stored one; an older one changes nothing. The audit trail, not this
        table, keeps the history.

        Args:
            alarm_id: ``<device_id>:<started_ms>``; ``device_id`` is derived from it.
            verdict: one of :data:`FEEDBACK_VERDICTS`.
            actor: who gave it; never empty.
            note: free text.
            time_us: when, microseconds since the epoch (UTC); default: now.

        Returns:
            The verdict now stored for the alarm (this one unless a newer one was stored).

        Raises:
            ConfigError: ``actor`` is empty.
            InputError: ``alarm_id`` or ``verdict`` is malformed; nothing was stored.
            StoreError: the database failed; nothing was stored.
        """

    @abc.abstractmethod
    def feedback(self, *, device_id: str | None = None, since_us: int | None = None) -> list[FeedbackRecord]:
        """Return stored verdicts ordered by ``at_us`` (then alarm id).

        Args:
            device_id: only this device's alarms.
            since_us: only verdicts given at or after this instant.

        Raises:
            StoreError: the database failed.
        """

    @abc.abstractmethod
    def query(
        self,
        device_id: str,
        *,
        sensors: Sequence[str] | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> ReadingsFrame:
        """Return a device's readings in ``[since_us, until_us)`` as arrays.

        Raises:
            NotFoundError: the device is not registered.
        """

    @abc.abstractmethod
    def counts(self) -> dict[str, int]:
        """Return row counts: ``devices``, ``messages``, ``readings``, ``dead_letters``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""

    # -- audit trail --------------------------------------------------------------------------
    # Not abstract: a store used only for telemetry (the ingest tests' in-memory
    # fake) need not keep an audit trail. The SQL store implements both hooks.

    def append_audit(
        self,
        actor: str,
        action: str,
        subject: str,
        payload: Mapping[str, Any] | None = None,
        *,
        time_us: int | None = None,
    ) -> AuditEntry:
        """Append one entry to the audit chain and return it (hash included).

        The tail is read and the next entry inserted in one transaction that
        excludes other appenders, so concurrent writers cannot fork the chain.
        There is no way to update or delete an entry.

        Args:
            actor: who did it; never empty.
            action: what was done (``model.promoted``).
            subject: what it was done to (``pump-model/7``).
            payload: details, a JSON object (string keys, JSON values).
            time_us: when, microseconds since the Unix epoch (UTC); default: now.

        Raises:
            ConfigError: ``actor`` is empty.
            InputError: ``action``/``subject`` is empty or ``payload`` is not a JSON object.
            StoreError: the database failed; nothing was appended.
        """
        check_fields(actor, action, subject)
        payload_json = canonical_json(dict(payload or {}))
        if time_us is not None and (type(time_us) is not int or time_us < 0):
            raise InputError(f"audit time_us must be a non-negative integer, not {time_us!r}")
        return self._append_audit(actor, action, subject, payload_json, time_us)

    def _append_audit(
        self, actor: str, action: str, subject: str, payload_json: str, time_us: int | None
    ) -> AuditEntry:
        """Append an entry whose fields were checked; engines override this."""
        raise NotImplementedError(f"{type(self).__name__} keeps no audit trail")

    def audit_entries(
        self,
        *,
        since_seq: int | None = None,
        since_us: int | None = None,
        subject: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Return audit entries in sequence order, as stored (tampering included: verify them).

        Args:
            since_seq: first sequence number included.
            since_us: first ``time_us`` included.
            subject: only entries about this subject.
            limit: only the newest ``limit`` of the entries selected (still oldest first).

        Raises:
            InputError: ``limit`` is negative.
            StoreError: the database failed.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no audit trail")

    # -- registry: alias history and events -----------------------------------------------------
    # Not abstract either, for the same reason as the audit trail.

    def set_alias(
        self,
        group: str,
        alias: str,
        model_name: str,
        version: int,
        *,
        set_by: str,
        reason: str | None = None,
        time_us: int | None = None,
    ) -> AliasRecord:
        """Record that ``alias`` of ``group`` now points at a model version.

        The alias's open period (if any) is closed at the same instant, in the
        same transaction.

        Args:
            group: the device group.
            alias: the alias name.
            model_name: the registered model.
            version: the model version.
            set_by: the actor; never empty.
            reason: why, if a reason was given.
            time_us: when; default: now.

        Raises:
            ConfigError: ``set_by`` is empty.
            StoreError: the database failed; nothing was recorded.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no alias history")

    def end_alias(self, group: str, alias: str, *, time_us: int | None = None) -> AliasRecord | None:
        """Close the alias's open period (it was removed); return it, or None if none was open.

        Raises:
            StoreError: the database failed.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no alias history")

    def alias_history(self, *, group: str | None = None, alias: str | None = None) -> list[AliasRecord]:
        """Return alias periods oldest first, optionally of one group and/or alias.

        Raises:
            StoreError: the database failed.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no alias history")

    def append_event(
        self, kind: str, subject: str, payload: Mapping[str, Any] | None = None, *, time_us: int | None = None
    ) -> EventRecord:
        """Store one lifecycle event and return it with its sequence number.

        Raises:
            InputError: ``kind``/``subject`` is empty or ``payload`` is not a JSON object.
            StoreError: the database failed; nothing was stored.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no events")

    def events(
        self, *, since_seq: int | None = None, kind: str | None = None, limit: int | None = None
    ) -> list[EventRecord]:
        """Return stored events in sequence order.

        Args:
            since_seq: first sequence number included.
            kind: only events of this kind.
            limit: only the newest ``limit`` of those selected (still oldest first).

        Raises:
            InputError: ``limit`` is negative.
            StoreError: the database failed.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no events")

    # -- releases ---------------------------------------------------------------------------
    # Not abstract either, for the same reason as the audit trail.

    def add_release(
        self,
        model_name: str,
        version: int,
        group: str,
        targets: Sequence[str],
        *,
        created_by: str,
        bundle_root: str,
        record: Mapping[str, Any],
        time_us: int | None = None,
    ) -> ReleaseRecord:
        """Store one release and return it with its id.

        Raises:
            ConfigError: ``created_by`` is empty.
            InputError: a name is empty, ``targets`` is empty or ``record`` is not a JSON object.
            StoreError: the database failed; nothing was stored.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no releases")

    def releases(self, *, group: str | None = None) -> list[ReleaseRecord]:
        """Return releases oldest first, optionally of one device group.

        Raises:
            StoreError: the database failed.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no releases")

    def get_release(self, release_id: int) -> ReleaseRecord | None:
        """Return release ``release_id``, or None.

        Raises:
            StoreError: the database failed.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no releases")

    def __enter__(self) -> TelemetryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
