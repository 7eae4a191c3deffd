"""The store interface: what code above ``store`` may ask of the hub's database.

One interface, two engines (SQLite, PostgreSQL); callers never learn which.
Implementations live in underscore modules and are chosen by URL in
:func:`pumpops.store.open_store`.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pumpops.audit import AuditEntry, canonical_json, check_fields
from pumpops.errors import InputError
from pumpops.fleet import Device
from pumpops.schema import DeadLetter, ReadingBatch

BatchStatus = Literal["stored", "duplicate", "id_conflict"]


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
