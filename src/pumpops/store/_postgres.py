"""The PostgreSQL engine: URL and schema handling, and the binary ``COPY`` bulk paths (psycopg 3).

Writes go ``COPY ... FROM STDIN (FORMAT BINARY)`` straight into ``readings``
in a savepoint: the common case, only new readings (about a third less
database CPU per reading than staging them and ``INSERT ... SELECT``, which
also evaluates each row's device and sensor and runs the executor per row;
measured on this machine). A plain ``COPY`` into a table with a primary key
fails on the first reading stored before; then the savepoint is rolled back
and the readings go ``COPY`` into a temporary staging table, then ``INSERT ...
SELECT ... ON CONFLICT DO NOTHING``, and the overlap is counted per batch.
Both COPY streams are built by numpy as binary records (fixed width per
device-id and sensor-name length): no per-reading Python code, no float
formatting, and values arrive bit-exact. Long series are read back the same
way (``COPY (SELECT ...) TO STDOUT``).
May import: SQLAlchemy, psycopg, numpy and the store's own modules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.engine import Connection, Engine

from pumpops.errors import ConfigError
from pumpops.schema import ReadingBatch
from pumpops.store import _plan
from pumpops.store._partitions import PostgresPartitions
from pumpops.store._sql import SqlTelemetryStore

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_SEARCH_PATH_OPTION = re.compile(r"-c\s*search_path\s*=\s*([^\s,]+)")

_PGCOPY_HEADER = (
    b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
)  # signature, flags, extension
_PGCOPY_TRAILER = b"\xff\xff"

# One staged reading as a binary COPY tuple: field count, then (length, value)
# per field, all big-endian. Fixed width, so numpy writes the whole stream.
_STAGE_RECORD = np.dtype(
    [
        ("fields", ">i2"),
        ("batch_len", ">i4"),
        ("batch", ">i4"),
        ("sensor_len", ">i4"),
        ("sensor", ">i2"),
        ("ts_len", ">i4"),
        ("ts_us", ">i8"),
        ("value_len", ">i4"),
        ("value", ">f8"),
    ]
)
# One (ts_us, value) row read back with COPY ... TO STDOUT (FORMAT BINARY).
_SERIES_RECORD = np.dtype(
    [("fields", ">i2"), ("ts_len", ">i4"), ("ts_us", ">i8"), ("value_len", ">i4"), ("value", ">f8")]
)

# ON COMMIT DELETE ROWS empties it at every commit (a truncate in place, no
# catalog churn); it lives as long as the pooled connection.
_CREATE_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS pumpops_staging_readings "
    "(batch int4 NOT NULL, sensor int2 NOT NULL, ts_us int8 NOT NULL, value float8 NOT NULL) "
    "ON COMMIT DELETE ROWS"
)
_COPY_STAGING = (
    "COPY pg_temp.pumpops_staging_readings (batch, sensor, ts_us, value) FROM STDIN (FORMAT BINARY)"
)
_SELECT_STAGED = (
    "SELECT (%(devices)s::text[])[s.batch + 1], (%(sensors)s::text[])[s.sensor + 1], s.ts_us, s.value "
    "FROM pg_temp.pumpops_staging_readings s"
)
# The fallback when a staged reading was stored before (see _insert_readings).
_INSERT_STAGED_IDEMPOTENT = (
    f"INSERT INTO readings (device_id, sensor, ts_us, value) {_SELECT_STAGED} ON CONFLICT DO NOTHING"
)
# Optimistic: almost every call carries only new readings, and COPY into the
# table is the cheapest way in (module docstring). It runs in a savepoint; on
# a unique violation (an overlapping reading) the call falls back to staging.
_COPY_READINGS = "COPY readings (device_id, sensor, ts_us, value) FROM STDIN (FORMAT BINARY)"
# Staged readings whose key was stored before: the row found was not written
# by us (its xmin is not our transaction's id). Only run on the fallback path,
# after the savepoint is released, so our rows carry the top-level xid.
_OVERLAP_PER_BATCH = (
    "SELECT s.batch, count(*) FROM pg_temp.pumpops_staging_readings s JOIN readings r "
    "ON r.device_id = (%(devices)s::text[])[s.batch + 1] AND r.sensor = (%(sensors)s::text[])[s.sensor + 1] "
    "AND r.ts_us = s.ts_us "
    "WHERE r.xmin <> pg_current_xact_id()::xid GROUP BY s.batch"
)
_CLAIM_MESSAGES = (
    "INSERT INTO messages (device_id, msg_id, payload_sha256, received_at_us, readings) "
    "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::int8[], %s::int4[]) "
    "ON CONFLICT DO NOTHING RETURNING device_id, msg_id"
)


def postgres_url(url: str) -> tuple[sa.URL, str | None]:
    """Normalise a PostgreSQL URL for psycopg 3 and find the schema it selects.

    ``postgresql://`` becomes ``postgresql+psycopg://``. A schema is selected
    either with libpq's ``?options=-csearch_path%3D<schema>`` or with pumpops'
    ``?schema=<schema>`` (turned into that option).

    Returns:
        The URL to give SQLAlchemy, and the schema name (None: the server's default).

    Raises:
        ConfigError: not a PostgreSQL URL, or an invalid schema name.

    >>> url, schema = postgres_url("postgresql://u@h/db?schema=t_1")
    >>> url.render_as_string(), schema
    ('postgresql+psycopg://u@h/db?options=-csearch_path%3Dt_1', 't_1')
    >>> postgres_url("postgresql+psycopg://u@h/db?options=-csearch_path%3Dfleet,public")[1]
    'fleet'
    """
    parsed = sa.make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername != "postgresql+psycopg":
        raise ConfigError(
            f"unsupported PostgreSQL driver {parsed.drivername!r}: use postgresql+psycopg:// (psycopg 3)"
        )
    query = dict(parsed.query)
    schema = query.pop("schema", None)
    options = query.get("options", "")
    if isinstance(schema, tuple) or isinstance(options, tuple):
        raise ConfigError("give the schema and options at most once in the database URL")
    if schema is not None:
        if not _SCHEMA_NAME.match(schema):
            raise ConfigError(f"invalid schema name {schema!r} in the database URL (letters, digits, _)")
        query["options"] = f"{options} -csearch_path={schema}".strip()
    else:
        match = _SEARCH_PATH_OPTION.search(options)
        schema = match.group(1).strip('"') if match else None
    return parsed.set(query=query), schema


def create_postgres_engine(url: str) -> tuple[Engine, str | None]:
    """Create an engine for a PostgreSQL URL; return it and the schema it selects.

    Raises:
        ConfigError: the URL is not usable (see :func:`postgres_url`).
    """
    parsed, schema = postgres_url(url)
    connect_args = {} if "application_name" in parsed.query else {"application_name": "pumpops"}
    # pre_ping: a pooled connection that died with a server restart is replaced
    # instead of failing the next ingest transaction.
    engine = sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    return engine, schema


def _driver(conn: Connection) -> psycopg.Connection[Any]:
    return cast(psycopg.Connection[Any], conn.connection.driver_connection)


class PostgresTelemetryStore(PostgresPartitions, SqlTelemetryStore):
    """The telemetry store on PostgreSQL (psycopg 3; bulk writes with binary ``COPY``).

    Args:
        engine: from :func:`create_postgres_engine`.
        schema: the schema the URL selects, created by :meth:`upgrade` if missing.
    """

    driver_errors = (psycopg.Error,)

    def __init__(self, engine: Engine, schema: str | None = None) -> None:
        super().__init__(engine)
        self._schema = schema

    def _upsert(self, table: sa.Table) -> Any:
        return postgresql_insert(table)

    def _read_options(self) -> dict[str, Any]:
        # Per-sensor queries of one query() see the same snapshot while ingest writes.
        return {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}

    def _is_missing_table(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.errors.UndefinedTable)

    def _prepare_upgrade(self, conn: Connection) -> None:
        # Serialise concurrent upgrades of the same schema (several hub
        # processes starting at once); released at commit.
        key = f"pumpops.store.upgrade:{self._schema or ''}"
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
        if self._schema is None:
            return
        exists = conn.scalar(
            sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :name"), {"name": self._schema}
        )
        if not exists:
            # Checked first: CREATE SCHEMA IF NOT EXISTS needs the CREATE
            # privilege on the database even when the schema is there.
            quoted = conn.dialect.identifier_preparer.quote_identifier(self._schema)
            conn.exec_driver_sql(f"CREATE SCHEMA {quoted}")

    def _lock_audit(self, conn: Connection) -> None:
        # One appender at a time per schema: the tail read next is then the
        # tail the insert follows (READ COMMITTED: each statement sees the
        # latest commits). Released at commit or rollback. The primary key on
        # seq would still refuse a fork if this lock were ever bypassed.
        key = f"pumpops.audit.append:{self._schema or ''}"
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})

    def _lock_agent_messages(self, conn: Connection) -> None:
        # One agent message writer at a time per schema: the ids it looks up
        # cannot be stored by another writer before its insert (the key is
        # (msg_id, ts_us) since revision 0009). Released at commit or rollback.
        key = f"pumpops.agent_messages.put:{self._schema or ''}"
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})

    def _claim_messages(
        self, conn: Connection, batches: Sequence[ReadingBatch]
    ) -> dict[_plan.Key, str | None]:
        # ON CONFLICT DO NOTHING waits for a concurrent writer of the same key
        # and then skips it, so two ingest workers given the same redelivered
        # message store it once, without a unique-violation error. Rows go in
        # key order (as staged readings go in primary-key order) so that two
        # writers wait for each other's keys in the same order: no deadlock.
        rows = sorted((self.ledger_row(b) for b in batches), key=lambda r: (r["device_id"], r["msg_id"]))
        columns = [
            [r["device_id"] for r in rows],
            [r["msg_id"] for r in rows],
            [r["payload_sha256"] for r in rows],
            [r["received_at_us"] for r in rows],
            [r["readings"] for r in rows],
        ]
        with _driver(conn).cursor() as cursor:
            cursor.execute(_CLAIM_MESSAGES, columns)
            inserted = {(device_id, msg_id) for device_id, msg_id in cursor.fetchall()}
        others = [(b.device_id, b.msg_id) for b in batches if (b.device_id, b.msg_id) not in inserted]
        claimed: dict[_plan.Key, str | None] = dict(self.stored_hashes(conn, others)) if others else {}
        claimed.update(dict.fromkeys(inserted))
        return claimed

    def _insert_readings(self, conn: Connection, batches: Sequence[ReadingBatch]) -> list[tuple[int, int]]:
        staged = _plan.stage_readings(batches)
        n = int(staged.ts_us.shape[0])
        overlap = np.zeros(len(batches), dtype=np.int64)
        if n:
            with _driver(conn).cursor() as cursor:
                if not self._copy_new_readings(cursor, staged):
                    self._insert_staged(cursor, staged, overlap)
        written = staged.staged_per_batch - overlap
        overlapping = staged.repeated_per_batch + overlap
        return [(int(w), int(o)) for w, o in zip(written, overlapping, strict=True)]

    @staticmethod
    def _copy_new_readings(cursor: psycopg.Cursor[Any], staged: _plan.StagedReadings) -> bool:
        """COPY all staged readings into ``readings``; False (nothing inserted) if one was stored before."""
        cursor.execute("SAVEPOINT pumpops_new_readings")
        try:
            with cursor.copy(_COPY_READINGS) as copy:
                copy.write(_PGCOPY_HEADER)
                for chunk in reading_records(staged):
                    copy.write(chunk)
                copy.write(_PGCOPY_TRAILER)
        except psycopg.errors.UniqueViolation:
            # RELEASE after the rollback, so that the fallback's rows belong to
            # the top-level transaction (the xmin test of the fallback relies on it).
            cursor.execute("ROLLBACK TO SAVEPOINT pumpops_new_readings")
            cursor.execute("RELEASE SAVEPOINT pumpops_new_readings")
            return False
        cursor.execute("RELEASE SAVEPOINT pumpops_new_readings")
        return True

    @staticmethod
    def _insert_staged(
        cursor: psycopg.Cursor[Any], staged: _plan.StagedReadings, overlap: np.ndarray
    ) -> None:
        """Insert staged readings keeping stored ones; add to ``overlap`` per batch what was stored before."""
        n = int(staged.ts_us.shape[0])
        records = np.empty(n, dtype=_STAGE_RECORD)
        records["fields"] = 4
        records["batch_len"] = 4
        records["batch"] = staged.batch
        records["sensor_len"] = 2
        records["sensor"] = staged.sensor
        records["ts_len"] = 8
        records["ts_us"] = staged.ts_us
        records["value_len"] = 8
        records["value"] = staged.value
        params = {"devices": list(staged.devices), "sensors": list(staged.sensors)}
        cursor.execute(_CREATE_STAGING)
        with cursor.copy(_COPY_STAGING) as copy:
            copy.write(_PGCOPY_HEADER)
            copy.write(records.data)
            copy.write(_PGCOPY_TRAILER)
        cursor.execute(_INSERT_STAGED_IDEMPOTENT, params)
        if cursor.rowcount != n:
            # Some keys were stored before: find which batches they belong to.
            cursor.execute("ANALYZE pg_temp.pumpops_staging_readings")
            cursor.execute(_OVERLAP_PER_BATCH, params)
            for batch_index, count in cursor.fetchall():
                overlap[batch_index] += count

    def _fetch_series(
        self, conn: Connection, device_id: str, sensor: str, since_us: int | None, until_us: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        # COPY takes no bind parameters; sql.Literal quotes the values safely.
        clauses = [
            sql.SQL("device_id = {}").format(sql.Literal(device_id)),
            sql.SQL("sensor = {}").format(sql.Literal(sensor)),
        ]
        if since_us is not None:
            clauses.append(sql.SQL("ts_us >= {}").format(sql.Literal(int(since_us))))
        if until_us is not None:
            clauses.append(sql.SQL("ts_us < {}").format(sql.Literal(int(until_us))))
        statement = sql.SQL(
            "COPY (SELECT ts_us, value FROM readings WHERE {} ORDER BY ts_us) TO STDOUT (FORMAT BINARY)"
        ).format(sql.SQL(" AND ").join(clauses))
        with _driver(conn).cursor() as cursor, cursor.copy(statement) as copy:
            data = b"".join(bytes(block) for block in copy)
        return _parse_series(data)


def reading_records(staged: _plan.StagedReadings) -> list[bytes]:
    """The staged readings as binary COPY tuples ``(device_id text, sensor text, ts_us int8, value float8)``.

    Text fields have the width of their value, so the rows are built in one
    numpy pass per pair of (device id length, sensor name length) — usually a
    handful — with fixed-width records. Rows go in the order ``(len(device_id),
    len(sensor), device_id, sensor, ts_us)``: one total order of keys, the
    same in every writer, so two writers inserting overlapping keys wait for
    each other's keys in the same order (no deadlock), as with the staged rows'
    primary-key order.

    >>> one = ReadingBatch("p-1", "m", "0" * 64, np.array([7]), ("flow",), np.array([[0.5]]), 0)
    >>> (row,) = reading_records(_plan.stage_readings([one]))
    >>> fields, device_len = int.from_bytes(row[:2], "big"), int.from_bytes(row[2:6], "big")
    >>> fields, device_len, row[6:9], row[13:17], int.from_bytes(row[21:29], "big")
    (4, 3, b'p-1', b'flow', 7)
    >>> float(np.frombuffer(row[33:41], ">f8")[0]), len(row)
    (0.5, 41)
    """
    device_bytes = [d.encode() for d in staged.devices]
    sensor_bytes = [s.encode() for s in staged.sensors]
    device_len = np.array([len(b) for b in device_bytes], dtype=np.int64)[staged.batch]
    sensor_len = np.array([len(b) for b in sensor_bytes], dtype=np.int64)[staged.sensor]
    widths = device_len * (_plan.MAX_SENSOR * 4 + 1) + sensor_len  # UTF-8: at most 4 bytes a character
    chunks = []
    for width in np.unique(widths).tolist():
        rows = np.flatnonzero(widths == width)
        d_len, s_len = divmod(int(width), _plan.MAX_SENSOR * 4 + 1)
        record = np.dtype(
            [
                ("fields", ">i2"),
                ("device_len", ">i4"),
                ("device", f"S{d_len}"),
                ("sensor_len", ">i4"),
                ("sensor", f"S{s_len}"),
                ("ts_len", ">i4"),
                ("ts_us", ">i8"),
                ("value_len", ">i4"),
                ("value", ">f8"),
            ]
        )
        out = np.empty(rows.size, dtype=record)
        out["fields"] = 4
        out["device_len"] = d_len
        out["sensor_len"] = s_len
        out["ts_len"] = 8
        out["value_len"] = 8
        # Cast to the group's exact width: every id of the group has that many bytes, none is cut or padded.
        out["device"] = np.array(device_bytes, dtype=object)[staged.batch[rows]].astype(f"S{d_len}")
        out["sensor"] = np.array(sensor_bytes, dtype=object)[staged.sensor[rows]].astype(f"S{s_len}")
        out["ts_us"] = staged.ts_us[rows]
        out["value"] = staged.value[rows]
        chunks.append(out.tobytes())
    return chunks


def _parse_series(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Decode a binary COPY stream of ``(int8, float8)`` rows without NULLs.

    >>> rows = np.zeros(2, _SERIES_RECORD)
    >>> rows["fields"], rows["ts_len"], rows["value_len"] = 2, 8, 8
    >>> rows["ts_us"], rows["value"] = [1, 2], [0.5, -1.0]
    >>> ts, values = _parse_series(_PGCOPY_HEADER + rows.tobytes() + _PGCOPY_TRAILER)
    >>> ts.tolist(), values.tolist()
    ([1, 2], [0.5, -1.0])
    """
    if not data.startswith(_PGCOPY_HEADER[:11]):
        raise psycopg.DataError("unexpected binary COPY header")
    (extension,) = np.frombuffer(data, dtype=">i4", count=1, offset=15)
    start = 19 + int(extension)
    body = len(data) - start - len(_PGCOPY_TRAILER)
    if body < 0 or body % _SERIES_RECORD.itemsize or not data.endswith(_PGCOPY_TRAILER):
        raise psycopg.DataError("unexpected binary COPY layout")
    rows = np.frombuffer(data, dtype=_SERIES_RECORD, count=body // _SERIES_RECORD.itemsize, offset=start)
    if rows.size and not (
        (rows["fields"] == 2).all() and (rows["ts_len"] == 8).all() and (rows["value_len"] == 8).all()
    ):
        raise psycopg.DataError("unexpected binary COPY row layout")
    return rows["ts_us"].astype(np.int64), rows["value"].astype(np.float64)
