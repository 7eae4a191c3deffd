"""Alembic environment of the store: runs revisions on the connection the store hands over.

Only :meth:`pumpops.store.TelemetryStore.upgrade` runs these migrations; it builds
the Alembic ``Config`` in code and passes its open connection (already inside
the transaction, and holding the upgrade lock) as ``config.attributes["connection"]``.
There is no ``alembic.ini`` and no offline (``--sql``) mode.
May import: alembic, ``pumpops.store._tables``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from pumpops.store._tables import METADATA


def run_migrations(connection: Connection) -> None:
    """Apply the pending revisions on ``connection`` (inside its transaction)."""
    context.configure(connection=connection, target_metadata=METADATA)
    with context.begin_transaction():
        context.run_migrations()


# alembic.context is only populated while Alembic runs this file; anything else
# importing it (pytest --doctest-modules, an IDE) finds no config and does nothing.
_config = getattr(context, "config", None)
if _config is not None:
    _connection = _config.attributes.get("connection")
    if _connection is None:
        raise RuntimeError("pumpops migrations run through TelemetryStore.upgrade() (pumpops db upgrade)")
    run_migrations(_connection)
