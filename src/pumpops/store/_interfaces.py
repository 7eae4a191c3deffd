"""The store's per-concern interfaces: what a consumer may ask of one part of the hub's database.

Owns one :class:`~typing.Protocol` per concern (devices, readings, dead
letters, agent messages, rollouts, alerts and feedback, audit, registry
records, API tokens, retention). Each is both:

- a structural type: a consumer annotates with the narrowest one it needs (or
  declares its own Protocol of the few methods it calls, as the rollout
  service's ``RolloutStore`` does), and a test fake implements just that;
- an abstract base: :class:`~pumpops.store.TelemetryStore` combines them all
  and the SQL store implements every method (each is ``abstractmethod``).

They are ``runtime_checkable`` (``isinstance`` checks that the methods exist,
not their signatures). No I/O here.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pumpops.audit import AuditEntry
from pumpops.fleet import Device
from pumpops.schema import DeadLetter, ReadingBatch
from pumpops.store._records import (
    AgentPut,
    AgentRecord,
    AliasRecord,
    BatchOutcome,
    EventRecord,
    FeedbackRecord,
    FleetAlertRecord,
    ReadingsFrame,
    ReleaseRecord,
    RolloutRecord,
)
from pumpops.store._retention import PruneReport, RetentionPolicy
from pumpops.store._tokens import AlarmAckRecord, ApiTokenRecord


@runtime_checkable
class DeviceStore(Protocol):
    """The registered devices."""

    @abc.abstractmethod
    def register_devices(self, devices: Iterable[Device]) -> int:
        """Insert or update devices; return how many were new."""

    @abc.abstractmethod
    def devices(self) -> list[Device]:
        """Return every registered device, sorted by id."""

    @abc.abstractmethod
    def device(self, device_id: str) -> Device | None:
        """Return one device, or None if it is not registered."""


@runtime_checkable
class ReadingStore(Protocol):
    """Sensor readings: batches written idempotently, read back as arrays."""

    @abc.abstractmethod
    def write_batches(self, batches: Sequence[ReadingBatch]) -> list[BatchOutcome]:
        """Store batches idempotently in one transaction; one outcome per batch, in order.

        Raises:
            StoreError: the database failed; nothing of the call was stored.
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
    def query_minmax(
        self,
        device_id: str,
        *,
        sensors: Sequence[str] | None = None,
        since_us: int,
        until_us: int,
        points: int,
    ) -> list[tuple[str, np.ndarray, np.ndarray, int]]:
        """Each sensor's readings in ``[since_us, until_us)`` cut to ``points``: min and max per time bucket.

        Returns ``(sensor, ts_us, values, readings in range)`` per sensor; the
        points are those of :func:`pumpops.web.minmax` on :meth:`query`'s rows.

        Raises:
            InputError: ``points`` is below 2, or the range is empty or reversed.
            NotFoundError: the device is not registered.
        """


@runtime_checkable
class DeadLetterStore(Protocol):
    """Rejected messages, kept as facts."""

    @abc.abstractmethod
    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Store dead letters (never deduplicated: each rejection is a fact)."""

    @abc.abstractmethod
    def dead_letters(self, *, limit: int = 100, reason: str | None = None) -> list[DeadLetter]:
        """Return the newest dead letters first, optionally of one reason."""


@runtime_checkable
class AgentMessageStore(Protocol):
    """Messages of the device agents (alarms, summaries, drift reports, states)."""

    @abc.abstractmethod
    def put_agent_messages(
        self, messages: Sequence[AgentRecord], *, max_seq_jump: int | None = None
    ) -> AgentPut:
        """Store agent messages idempotently by ``msg_id``, in one transaction.

        A message whose id is not stored yet is stored. One whose id is stored
        with the same payload hash is a duplicate (a resend; nothing written).
        One whose id is stored with another payload hash is an id conflict: it
        never overwrites, and it is written as a dead letter (reason
        ``msg_id_conflict``) in the same transaction. Messages repeated within
        the call are judged as if written one after the other. The device need
        not be registered (agents may be commissioned before registration).
        With ``max_seq_jump``, a message whose ``seq`` exceeds the highest seq
        of its device (stored, or accepted earlier in the call in seq order;
        0 for a device with none) by more than that is not stored but written
        as a ``seq_jump`` dead letter naming both numbers.

        Raises:
            InputError: a message is malformed (ids, kind, hash, body); nothing was stored.
            StoreError: the database failed; nothing of the call was stored.
        """

    @abc.abstractmethod
    def redate_agent_messages(self, msg_ids: Sequence[str], *, since_us: int, received_at_us: int) -> int:
        """Move the receipt time of stored messages forward to ``received_at_us``; return how many moved.

        Only rows of ``msg_ids`` received at or after ``since_us`` and before
        ``received_at_us`` (ingest's repair of a slow commit: see ``docs/monitoring.md``).

        Raises:
            StoreError: the database failed (nothing moved).
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
        """Return stored agent messages ordered by device, then time (``ts_us``), then ``seq``.

        Newest means latest in time, the sequence number breaking ties: a
        message with a huge ``seq`` but an old time never hides newer ones.

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


@runtime_checkable
class RolloutRecordStore(Protocol):
    """Staged rollouts as the rollout service keeps them (revision 0006)."""

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
            active_only: only those whose status is in :data:`~pumpops.store.ROLLOUT_ACTIVE_STATUSES`.

        Raises:
            StoreError: the database failed.
        """


@runtime_checkable
class AlertStore(Protocol):
    """Fleet-level alerts and technicians' verdicts on alarms (revision 0006)."""

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
            verdict: one of :data:`~pumpops.store.FEEDBACK_VERDICTS`.
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


@runtime_checkable
class AuditStore(Protocol):
    """The hash-chained audit trail (:mod:`pumpops.audit` computes the chain; this keeps it)."""

    @abc.abstractmethod
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

    @abc.abstractmethod
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


@runtime_checkable
class RegistryRecordStore(Protocol):
    """What the model registry keeps beside MLflow: alias history, lifecycle events, releases."""

    @abc.abstractmethod
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

    @abc.abstractmethod
    def end_alias(self, group: str, alias: str, *, time_us: int | None = None) -> AliasRecord | None:
        """Close the alias's open period (it was removed); return it, or None if none was open.

        Raises:
            StoreError: the database failed.
        """

    @abc.abstractmethod
    def alias_history(self, *, group: str | None = None, alias: str | None = None) -> list[AliasRecord]:
        """Return alias periods oldest first, optionally of one group and/or alias.

        Raises:
            StoreError: the database failed.
        """

    @abc.abstractmethod
    def append_event(
        self, kind: str, subject: str, payload: Mapping[str, Any] | None = None, *, time_us: int | None = None
    ) -> EventRecord:
        """Store one lifecycle event and return it with its sequence number.

        Raises:
            InputError: ``kind``/``subject`` is empty or ``payload`` is not a JSON object.
            StoreError: the database failed; nothing was stored.
        """

    @abc.abstractmethod
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

    @abc.abstractmethod
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

    @abc.abstractmethod
    def releases(self, *, group: str | None = None) -> list[ReleaseRecord]:
        """Return releases oldest first, optionally of one device group.

        Raises:
            StoreError: the database failed.
        """

    @abc.abstractmethod
    def get_release(self, release_id: int) -> ReleaseRecord | None:
        """Return release ``release_id``, or None.

        Raises:
            StoreError: the database failed.
        """


@runtime_checkable
class ApiTokenStore(Protocol):
    """The HTTP API's own records (revision 0007): hashed tokens with roles, alarm acknowledgements."""

    @abc.abstractmethod
    def add_api_token(
        self,
        token_id: str,
        *,
        name: str,
        role: str,
        token_sha256: str,
        created_by: str,
        expires_at_us: int | None = None,
        time_us: int | None = None,
    ) -> ApiTokenRecord:
        """Store a new token (the SHA-256 of its secret, never the secret); return it as stored."""

    @abc.abstractmethod
    def api_token_by_hash(self, token_sha256: str) -> ApiTokenRecord | None:
        """The token whose secret hashes to ``token_sha256`` (revoked and expired too), or None."""

    @abc.abstractmethod
    def api_tokens(self, *, name: str | None = None) -> list[ApiTokenRecord]:
        """Every token ordered by creation, or only one owner's."""

    @abc.abstractmethod
    def revoke_api_tokens(
        self, *, token_id: str | None = None, name: str | None = None, time_us: int | None = None
    ) -> list[ApiTokenRecord]:
        """Revoke one token by id, or every token of an owner; return those revoked now."""

    @abc.abstractmethod
    def put_alarm_ack(
        self, alarm_id: str, *, actor: str, note: str = "", time_us: int | None = None
    ) -> tuple[AlarmAckRecord, bool]:
        """Acknowledge an alarm unless it is already; return the stored acknowledgement and if it is new."""

    @abc.abstractmethod
    def alarm_acks(self, alarm_ids: Sequence[str]) -> dict[str, AlarmAckRecord]:
        """The acknowledgements of these alarms, by alarm id."""

    @abc.abstractmethod
    def alarm_messages(
        self,
        *,
        device_id: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        limit: int = 100,
        offset: int = 0,
        before: tuple[int, str] | None = None,
    ) -> list[Any]:
        """Alarm messages newest first, one page (rows: msg_id, device_id, site, ts_us, body, ...)."""

    @abc.abstractmethod
    def agent_messages_received(self, *, after_us: int, kinds: Sequence[str], limit: int = 500) -> list[Any]:
        """Agent messages of ``kinds`` received after ``after_us``, oldest receipt first."""

    @abc.abstractmethod
    def grouped_counts(self) -> dict[str, dict[str, int]]:
        """Row counts by group (dead letters by reason, rollouts by status, ...) for ``/metrics``."""


@runtime_checkable
class RetentionStore(Protocol):
    """Data with a lifetime (revision 0009; ADR 0015): prune each kind past its horizon."""

    @abc.abstractmethod
    def prune(
        self, policy: RetentionPolicy, *, actor: str, now: int | None = None, dry_run: bool = False
    ) -> PruneReport:
        """Remove each kind's rows older than its horizon; audit it as one ``store.pruned`` entry.

        The audit trail is never pruned. A row exactly at its horizon is kept.

        Raises:
            StoreError: the database failed.
        """
