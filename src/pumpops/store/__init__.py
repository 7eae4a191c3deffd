"""The hub's database: devices, telemetry, agent messages, dead letters, audit, registry, releases, rollouts.

SQLAlchemy 2 with Alembic migrations; SQLite (WAL) by default, PostgreSQL
(``postgresql+psycopg://``) at scale, chosen by URL in :func:`open_store`.

One store object, :class:`TelemetryStore`, combines one interface per concern:
:class:`DeviceStore`, :class:`ReadingStore`, :class:`DeadLetterStore`,
:class:`AgentMessageStore`, :class:`RolloutRecordStore`, :class:`AlertStore`
(fleet alerts and alarm feedback), :class:`AuditStore` and
:class:`RegistryRecordStore` (alias history, events, releases). Code above
this package annotates with the narrowest of these it needs (or a Protocol of
its own); test fakes implement just those. The records the methods take and
return are exported here too.
May import: schema, fleet, audit, errors, SQLAlchemy, Alembic, psycopg, numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pumpops._lazy import lazy_exports

if TYPE_CHECKING:
    from pumpops.audit import AuditSigner
    from pumpops.store._aggregates import HourAggregate
    from pumpops.store._base import (
        TelemetryStore,
    )
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
    from pumpops.store._open import (
        open_sql_store,
    )
    from pumpops.store._records import (
        AGENT_KINDS,
        FEEDBACK_VERDICTS,
        ROLLOUT_ACTIVE_STATUSES,
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
    from pumpops.store._retention import PRUNE_KINDS, PrunedKind, PruneReport, RetentionPolicy
    from pumpops.store._sql import (
        SqlTelemetryStore,
    )
    from pumpops.store._tokens import API_ROLES, AlarmAckRecord, ApiTokenRecord

#: Where each public name lives: loaded on first use, so that importing the package
#: (as ``pumpops --help`` and the edge agent do) loads only what is used.
_LAZY: dict[str, str] = {
    "AGENT_KINDS": "pumpops.store._records",
    "FEEDBACK_VERDICTS": "pumpops.store._records",
    "ROLLOUT_ACTIVE_STATUSES": "pumpops.store._records",
    "AgentPut": "pumpops.store._records",
    "AgentRecord": "pumpops.store._records",
    "AliasRecord": "pumpops.store._records",
    "BatchOutcome": "pumpops.store._records",
    "EventRecord": "pumpops.store._records",
    "FeedbackRecord": "pumpops.store._records",
    "FleetAlertRecord": "pumpops.store._records",
    "ReadingsFrame": "pumpops.store._records",
    "ReleaseRecord": "pumpops.store._records",
    "RolloutRecord": "pumpops.store._records",
    "AgentMessageStore": "pumpops.store._interfaces",
    "AlertStore": "pumpops.store._interfaces",
    "ApiTokenStore": "pumpops.store._interfaces",
    "API_ROLES": "pumpops.store._tokens",
    "AlarmAckRecord": "pumpops.store._tokens",
    "ApiTokenRecord": "pumpops.store._tokens",
    "AuditStore": "pumpops.store._interfaces",
    "DeadLetterStore": "pumpops.store._interfaces",
    "DeviceStore": "pumpops.store._interfaces",
    "ReadingStore": "pumpops.store._interfaces",
    "RegistryRecordStore": "pumpops.store._interfaces",
    "RolloutRecordStore": "pumpops.store._interfaces",
    "RetentionStore": "pumpops.store._interfaces",
    "HourAggregate": "pumpops.store._aggregates",
    "PRUNE_KINDS": "pumpops.store._retention",
    "PrunedKind": "pumpops.store._retention",
    "PruneReport": "pumpops.store._retention",
    "RetentionPolicy": "pumpops.store._retention",
    "TelemetryStore": "pumpops.store._base",
    "SqlTelemetryStore": "pumpops.store._sql",
    "open_sql_store": "pumpops.store._open",
}


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)


__all__ = [
    "AGENT_KINDS",
    "API_ROLES",
    "FEEDBACK_VERDICTS",
    "PRUNE_KINDS",
    "ROLLOUT_ACTIVE_STATUSES",
    "AgentMessageStore",
    "AgentPut",
    "AgentRecord",
    "AlarmAckRecord",
    "AlertStore",
    "AliasRecord",
    "ApiTokenRecord",
    "ApiTokenStore",
    "AuditStore",
    "BatchOutcome",
    "DeadLetterStore",
    "DeviceStore",
    "EventRecord",
    "FeedbackRecord",
    "FleetAlertRecord",
    "HourAggregate",
    "PruneReport",
    "PrunedKind",
    "ReadingStore",
    "ReadingsFrame",
    "RegistryRecordStore",
    "ReleaseRecord",
    "RetentionPolicy",
    "RetentionStore",
    "RolloutRecord",
    "RolloutRecordStore",
    "SqlTelemetryStore",
    "TelemetryStore",
    "open_sql_store",
    "open_store",
]


def open_store(url: str, *, audit_signer: AuditSigner | None = None) -> TelemetryStore:
    """Open the store at ``url``; the URL's scheme chooses the engine.

    Opening connects lazily: a database that cannot be reached fails on first
    use with :class:`~pumpops.errors.StoreError`. Call
    :meth:`TelemetryStore.upgrade` once to create or migrate the schema.

    Args:
        url: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``,
            ``sqlite://`` (in memory), or ``postgresql+psycopg://user@host:5432/db``
            (``postgresql://`` is accepted and means the same). A PostgreSQL
            URL may select a schema with ``?schema=<name>`` or libpq's
            ``?options=-csearch_path%3D<name>``; ``upgrade()`` creates it if missing.
        audit_signer: signs every audit entry appended through this store and
            anchors each new head (every hub process passes
            ``pumpops.audit.workspace_signer(settings.workspace)``); None
            appends unsigned entries (ADR 0013).

    Returns:
        The store; use it as a context manager or call ``close()``.

    Raises:
        ConfigError: the URL's scheme or options are not supported.

    >>> with open_store("sqlite://") as store:
    ...     store.upgrade()
    ...     store.counts()
    {'devices': 0, 'messages': 0, 'readings': 0, 'dead_letters': 0}
    """
    from pumpops.store._open import open_sql_store  # noqa: PLC0415 - SQLAlchemy loads on first use

    return open_sql_store(url, audit_signer=audit_signer)
