"""The hub's database: devices, telemetry, agent messages, dead letters, audit, registry, releases, rollouts.

SQLAlchemy 2 with Alembic migrations; SQLite (WAL) by default, PostgreSQL
(``postgresql+psycopg://``) at scale, chosen by URL in :func:`open_store`.
Code above this package sees only :class:`TelemetryStore`.
May import: schema, fleet, errors, SQLAlchemy, Alembic, psycopg, numpy.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pumpops.store._base import (
        AGENT_KINDS,
        FEEDBACK_VERDICTS,
        ROLLOUT_ACTIVE_STATUSES,
        AgentPut,
        AgentRecord,
        BatchOutcome,
        FeedbackRecord,
        FleetAlertRecord,
        ReadingsFrame,
        RolloutRecord,
        TelemetryStore,
    )

#: Where each public name lives: loaded on first use, so that importing the package
#: (as ``pumpops --help`` and the edge agent do) loads only what is used.
_LAZY: dict[str, str] = {
    "AGENT_KINDS": "pumpops.store._base",
    "FEEDBACK_VERDICTS": "pumpops.store._base",
    "ROLLOUT_ACTIVE_STATUSES": "pumpops.store._base",
    "AgentPut": "pumpops.store._base",
    "AgentRecord": "pumpops.store._base",
    "BatchOutcome": "pumpops.store._base",
    "FeedbackRecord": "pumpops.store._base",
    "FleetAlertRecord": "pumpops.store._base",
    "ReadingsFrame": "pumpops.store._base",
    "RolloutRecord": "pumpops.store._base",
    "TelemetryStore": "pumpops.store._base",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "AGENT_KINDS",
    "FEEDBACK_VERDICTS",
    "ROLLOUT_ACTIVE_STATUSES",
    "AgentPut",
    "AgentRecord",
    "BatchOutcome",
    "FeedbackRecord",
    "FleetAlertRecord",
    "ReadingsFrame",
    "RolloutRecord",
    "TelemetryStore",
    "open_store",
]


def open_store(url: str) -> TelemetryStore:
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

    Returns:
        The store; use it as a context manager or call ``close()``.

    Raises:
        ConfigError: the URL's scheme or options are not supported.

    >>> with open_store("sqlite://") as store:
    ...     store.upgrade()
    ...     store.counts()
    {'devices': 0, 'messages': 0, 'readings': 0, 'dead_letters': 0}
    """
    from pumpops.store._sql import open_sql_store  # noqa: PLC0415 - SQLAlchemy loads on first use

    return open_sql_store(url)
