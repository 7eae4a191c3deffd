"""The engine factory: a database URL's scheme chooses the engine module and its store.

Owns :func:`open_sql_store`, behind :func:`pumpops.store.open_store`. It is the
only module that imports the engine modules (``_sqlite.py``, ``_postgres.py``),
which import ``_sql.py``; nothing imports back, so there is no cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pumpops.errors import ConfigError
from pumpops.store._sql import SqlTelemetryStore

if TYPE_CHECKING:
    from pumpops.audit import AuditSigner


def open_sql_store(url: str, *, audit_signer: AuditSigner | None = None) -> SqlTelemetryStore:
    """Open the store at ``url`` (see :func:`pumpops.store.open_store`), typed as the SQL store.

    The command line uses this to reach :meth:`SqlTelemetryStore.current_revision`.
    ``audit_signer`` as in :func:`pumpops.store.open_store`.

    Raises:
        ConfigError: the URL's scheme or options are not supported.
    """
    store = _open(url)
    store._use_audit_signer(audit_signer)
    return store


def _open(url: str) -> SqlTelemetryStore:
    scheme = url.split(":", 1)[0].lower()
    if scheme in ("sqlite", "sqlite+pysqlite"):
        from pumpops.store import _sqlite  # noqa: PLC0415 - the engine's driver loads only when chosen

        return _sqlite.SqliteTelemetryStore(_sqlite.create_sqlite_engine(url))
    if scheme in ("postgresql", "postgresql+psycopg"):
        from pumpops.store import _postgres  # noqa: PLC0415 - psycopg loads only when chosen

        engine, schema = _postgres.create_postgres_engine(url)
        return _postgres.PostgresTelemetryStore(engine, schema)
    raise ConfigError(
        f"unsupported database URL scheme {scheme!r}: use sqlite:///path or postgresql+psycopg://..."
    )
