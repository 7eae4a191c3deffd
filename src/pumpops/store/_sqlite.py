"""The SQLite engine: connection pragmas, explicit transactions and the ``INSERT OR IGNORE`` bulk path.

SQLite is the embedded default: one file in the workspace, created readable
by its owner only (0600), WAL mode so that readers (queries, the dashboard)
never block the writer (ingest) nor the other way round. May import:
SQLAlchemy, the standard library's sqlite3, numpy and the store's own modules.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from itertools import repeat
from pathlib import Path
from typing import Any, cast

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from pumpops.errors import ConfigError
from pumpops.schema import ReadingBatch
from pumpops.store import _plan, _tables
from pumpops.store._core import WRITE_OPTION
from pumpops.store._sql import SqlTelemetryStore

#: How long a writer waits for another process's write lock before failing.
BUSY_TIMEOUT_MS = 30_000

_INSERT_READING = "INSERT OR IGNORE INTO readings (device_id, sensor, ts_us, value) VALUES (?, ?, ?, ?)"


def create_sqlite_engine(url: str) -> Engine:
    """Create an engine for ``sqlite:///path`` with pumpops' pragmas and transaction handling.

    Raises:
        ConfigError: the URL is not a SQLite URL.
    """
    parsed = sa.make_url(url)
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite"):
        raise ConfigError(f"not a SQLite URL: {parsed.render_as_string(hide_password=True)}")
    in_memory = parsed.database in (None, "", ":memory:")
    options: dict[str, Any] = {
        # The pool hands a connection to one thread at a time; ingest writes
        # from a worker thread, so the connection must not be pinned to its creator.
        "connect_args": {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
    }
    if in_memory:
        # Every new connection to :memory: would be a new, empty database.
        options["poolclass"] = StaticPool
    elif parsed.database and not parsed.database.startswith("file:"):
        create_private_file(Path(parsed.database))
    engine = sa.create_engine(parsed, **options)
    sa.event.listen(engine, "connect", _on_connect)
    sa.event.listen(engine, "begin", _on_begin)
    return engine


def create_private_file(path: Path) -> bool:
    """Create an empty database file readable and writable by its owner only (0600), unless it exists.

    The workspace database holds devices, readings, audit entries and hashed
    API tokens: no other local user should read it. SQLite gives its ``-wal``
    and ``-shm`` files the database file's permissions. An existing file is
    left as it is (its owner chose). Returns whether the file was created; a
    folder that does not exist is left for SQLite to report in its own words.

    >>> import tempfile, stat
    >>> folder = Path(tempfile.mkdtemp())
    >>> create_private_file(folder / "hub.db"), create_private_file(folder / "hub.db")
    (True, False)
    >>> oct(stat.S_IMODE((folder / "hub.db").stat().st_mode))
    '0o600'
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:  # it exists (FileExistsError), or SQLite will say why it cannot be opened
        return False
    os.close(fd)
    return True


def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # Let SQLAlchemy's "begin" event (below) issue BEGIN itself: the sqlite3
    # module would otherwise begin lazily and only before DML, which breaks
    # transactional DDL (migrations) and cannot take the write lock up front.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _ensure_wal(cursor)
        cursor.execute(
            "PRAGMA synchronous=NORMAL"
        )  # WAL + NORMAL: durable except for the last commits on power loss
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _ensure_wal(cursor: sqlite3.Cursor) -> None:
    """Put the database file in WAL mode (persistent: normally done once, by its first connection).

    Switching needs the file to itself and fails at once with "database is
    locked", without the busy timeout, while another connection writes to a
    fresh file (two processes creating the same database): retry until the
    timeout, as a busy writer would be waited for.
    """
    (mode,) = cursor.execute("PRAGMA journal_mode").fetchone()
    if str(mode).lower() in ("wal", "memory"):
        return
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _on_begin(conn: Connection) -> None:
    # A write transaction takes the write lock at BEGIN (IMMEDIATE): waiting
    # for it honours busy_timeout, whereas upgrading a read lock to a write
    # lock mid-transaction fails at once with "database is locked".
    if conn.get_execution_options().get(WRITE_OPTION):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


class SqliteTelemetryStore(SqlTelemetryStore):
    """The telemetry store on SQLite (WAL, ``synchronous=NORMAL``, foreign keys on)."""

    driver_errors = (sqlite3.Error,)

    def _upsert(self, table: sa.Table) -> Any:
        return sqlite_insert(table)

    def _claim_messages(
        self, conn: Connection, batches: Sequence[ReadingBatch]
    ) -> dict[_plan.Key, str | None]:
        # The write transaction began IMMEDIATE: no other writer runs until it
        # commits, so what is not in the ledger now can be inserted safely.
        stored = self.stored_hashes(conn, [(b.device_id, b.msg_id) for b in batches])
        new = [b for b in batches if (b.device_id, b.msg_id) not in stored]
        if new:
            conn.execute(sa.insert(_tables.messages), [self.ledger_row(b) for b in new])
        claimed: dict[_plan.Key, str | None] = dict(stored)
        claimed.update({(b.device_id, b.msg_id): None for b in new})
        return claimed

    def _insert_readings(self, conn: Connection, batches: Sequence[ReadingBatch]) -> list[tuple[int, int]]:
        # One executemany per batch (the loop over rows runs in C); total_changes
        # counts only rows actually inserted, so the difference is what this
        # batch wrote and the rest overlapped (stored before, or earlier in the call).
        raw = cast(sqlite3.Connection, conn.connection.driver_connection)
        cursor = raw.cursor()
        counts = []
        try:
            for batch in batches:
                cols, ts, values = _plan.batch_readings(batch)
                names = np.asarray(batch.sensors, dtype=object)[cols].tolist() if cols.size else []
                before = raw.total_changes
                cursor.executemany(
                    _INSERT_READING,
                    zip(repeat(batch.device_id), names, ts.tolist(), values.tolist(), strict=False),
                )
                written = raw.total_changes - before
                counts.append((written, int(ts.size) - written))
        finally:
            cursor.close()
        return counts
