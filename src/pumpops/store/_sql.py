"""The SQLAlchemy Core implementation of :class:`~pumpops.store.TelemetryStore` shared by both engines.

:class:`SqlTelemetryStore` is composed of one mixin per concern over the
shared engine holder (:class:`~pumpops.store._core.SqlCore`):

==========================  ====================================================
``_devices.py``             devices
``_readings.py``            readings (``write_batches``, ``query``)
``_dead_letters.py``        dead letters
``_agent_messages.py``      agent messages
``_rollouts.py``            rollouts
``_alerts.py``              fleet alerts and alarm feedback
``_audit.py``               the audit trail
``_registry_records.py``    alias history, lifecycle events, releases
``_tokens.py``              API tokens, alarm acknowledgements, the API's fleet-wide reads
``_retention.py``           retention: prune by kind (``_partitions.py`` on PostgreSQL)
``_aggregates.py``          hour aggregates of agents' summaries and alarms; the watermark read
==========================  ====================================================

This module owns what belongs to the database as a whole: migrations
(Alembic, run in code), the schema revision, row counts and closing. An engine
module (``_sqlite.py``, ``_postgres.py``) subclasses :class:`SqlTelemetryStore`
and supplies only the bulk paths of ``write_batches`` (``_claim_messages``,
``_insert_readings``), its dialect's upsert and its locks; the rules live in
the mixins and ``_plan.py``. The engine is chosen by URL in ``_open.py``,
which imports the engine modules; this module imports none of them.
May import: SQLAlchemy, Alembic, ``pumpops.errors`` and the store's own modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from pumpops.store import _tables as tables
from pumpops.store._agent_messages import SqlAgentMessages
from pumpops.store._aggregates import SqlAggregates
from pumpops.store._alerts import SqlAlerts
from pumpops.store._audit import SqlAudit
from pumpops.store._base import TelemetryStore
from pumpops.store._dead_letters import SqlDeadLetters
from pumpops.store._devices import SqlDevices
from pumpops.store._readings import SqlReadings
from pumpops.store._registry_records import SqlRegistryRecords
from pumpops.store._retention import SqlRetention
from pumpops.store._rollouts import SqlRollouts
from pumpops.store._tokens import SqlApiTokens

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """Alembic configuration built in code: the revisions shipped inside the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


class SqlTelemetryStore(
    SqlDevices,
    SqlReadings,
    SqlDeadLetters,
    SqlAgentMessages,
    SqlRollouts,
    SqlAlerts,
    SqlAudit,
    SqlRegistryRecords,
    SqlApiTokens,
    SqlRetention,
    SqlAggregates,
    TelemetryStore,
):
    """A :class:`~pumpops.store.TelemetryStore` on a SQLAlchemy engine; see the module docstring.

    Args:
        engine: the engine, configured by the engine module (pragmas, pool).
    """

    # -- engine hooks -------------------------------------------------------------------------

    def _prepare_upgrade(self, conn: Connection) -> None:
        """Run engine-specific steps before migrating (locks, schema creation)."""

    # -- schema -------------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent).

        Runs in one transaction holding the engine's upgrade lock, so two
        processes upgrading at once do not both create tables.

        Raises:
            StoreError: the database failed or a migration could not be applied.
        """
        config = alembic_config()
        with self._guard("upgrade the schema of"), self._writer.begin() as conn:
            self._prepare_upgrade(conn)
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def current_revision(self) -> str | None:
        """Return the schema's Alembic revision, or None if it was never upgraded.

        Raises:
            StoreError: the database failed.
        """
        with self._guard("read the schema revision of"), self._engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @staticmethod
    def head_revision() -> str | None:
        """Return the newest revision this version of pumpops ships."""
        return ScriptDirectory.from_config(alembic_config()).get_current_head()

    # -- housekeeping -------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Return row counts: ``devices``, ``messages``, ``readings``, ``dead_letters``.

        Exact counts: on PostgreSQL this scans the tables, so it is for status
        pages and tests, not for a hot loop.

        Raises:
            StoreError: the database failed.
        """
        to_count: Mapping[str, sa.Table] = {
            "devices": tables.devices,
            "messages": tables.messages,
            "readings": tables.readings,
            "dead_letters": tables.dead_letters,
        }
        with self._snapshot("count rows in") as conn:
            return {
                name: int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
                for name, table in to_count.items()
            }

    def close(self) -> None:
        """Release connections (the store can still be used; it reconnects)."""
        self._engine.dispose()
