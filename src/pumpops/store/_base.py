"""The full store interface: every concern of the hub's database behind one object.

:class:`TelemetryStore` combines the per-concern interfaces of
``_interfaces.py`` (devices, readings, dead letters, agent messages, rollouts,
alerts and feedback, audit, registry records) and adds what belongs to the
database as a whole: schema upgrade, row counts, closing. One interface, two
engines (SQLite, PostgreSQL); callers never learn which. Implementations live
in underscore modules and are chosen by URL in :func:`pumpops.store.open_store`.

Code that needs only part of the store annotates with that concern's
interface (or a Protocol of its own) instead of this one.
"""

from __future__ import annotations

import abc

from pumpops.store._interfaces import (
    AgentMessageStore,
    AlertStore,
    ApiTokenStore,
    AuditStore,
    DeadLetterStore,
    DeviceStore,
    ReadingStore,
    RegistryRecordStore,
    RetentionStore,
    RolloutRecordStore,
)


class TelemetryStore(
    DeviceStore,
    ReadingStore,
    DeadLetterStore,
    AgentMessageStore,
    RolloutRecordStore,
    AlertStore,
    AuditStore,
    RegistryRecordStore,
    ApiTokenStore,
    RetentionStore,
    abc.ABC,
):
    """The hub's telemetry database: every concern, plus schema, counts and closing."""

    @abc.abstractmethod
    def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent)."""

    @abc.abstractmethod
    def counts(self) -> dict[str, int]:
        """Return row counts: ``devices``, ``messages``, ``readings``, ``dead_letters``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> TelemetryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
