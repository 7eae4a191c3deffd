"""The hub's database: devices, telemetry, dead letters (later releases, rollouts, audit).

SQLAlchemy 2 with Alembic migrations; SQLite (WAL) by default, PostgreSQL
(``postgresql+psycopg://``) at scale, chosen by URL in :func:`open_store`.
Code above this package sees only :class:`TelemetryStore`.
May import: schema, fleet, errors, SQLAlchemy, Alembic, psycopg, numpy.
"""

from pumpops.store._base import BatchOutcome, ReadingsFrame, TelemetryStore

__all__ = ["BatchOutcome", "ReadingsFrame", "TelemetryStore", "open_store"]


def open_store(url: str) -> TelemetryStore:
    """Open the store at ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``)."""
    raise NotImplementedError("being written")
