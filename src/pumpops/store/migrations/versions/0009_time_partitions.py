"""Time partitions: ``readings`` and ``agent_messages`` range-partitioned by day on PostgreSQL.

Revision ID: 0009
Revises: 0008

Written by hand and frozen. On PostgreSQL both tables become declarative
``PARTITION BY RANGE (ts_us)`` tables with one partition per UTC day, named
``<table>_pYYYYMMDD`` (bounds in microseconds, ``[00:00, next 00:00)``), and a
``<table>_default`` partition that catches any row outside the daily ones.
Existing rows are kept: the old table is renamed, the partitioned one created
with partitions for every day the rows cover (at most the last 120 days of
them; older rows go to the default partition), today and tomorrow, the rows
copied, and the old table dropped. ``pumpops db prune`` (and the hub's
retention step, which runs when the hub starts) creates the partitions of the
days ahead and drops whole partitions past the horizon (ADR 0015). Few
partitions at creation: every partition and its indexes take a lock slot when
the schema is dropped or a query reads all of them.

PostgreSQL requires every primary key of a partitioned table to include the
partition key. ``readings`` already has ``(device_id, sensor, ts_us)``.
``agent_messages`` changes from ``(msg_id)`` to ``(msg_id, ts_us)`` on both
engines (SQLite rebuilds the table, unpartitioned): a message's time is part
of its identity and a replay carries the same time, so a replay still finds its
key; a forged message reusing an id with another time is still refused as an
id conflict because the store looks the id up before it inserts
(``store/_agent_messages.py``).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_DAY_US = 86_400_000_000
_AHEAD_DAYS = 1
_MAX_BACK_DAYS = 120

_AGENT_INDEXES = {
    "ix_agent_messages_device_kind_ts_us": "device_id, kind, ts_us",
    "ix_agent_messages_device_seq": "device_id, seq",
    "ix_agent_messages_kind_ts_us": "kind, ts_us",
    "ix_agent_messages_kind_received_at_us": "kind, received_at_us",
}

_PG_COLUMNS = {
    "readings": (
        'device_id varchar(64) COLLATE "C" NOT NULL, sensor varchar(64) COLLATE "C" NOT NULL, '
        "ts_us bigint NOT NULL, value double precision NOT NULL, "
        "CONSTRAINT readings_pkey PRIMARY KEY (device_id, sensor, ts_us)"
    ),
    "agent_messages": (
        'msg_id varchar(128) COLLATE "C" NOT NULL, device_id varchar(64) COLLATE "C" NOT NULL, '
        'seq bigint NOT NULL, site varchar(64) COLLATE "C" NOT NULL, kind varchar(16) COLLATE "C" NOT NULL, '
        "ts_us bigint NOT NULL, received_at_us bigint NOT NULL, agent_version text NOT NULL, "
        "body text NOT NULL, payload_sha256 varchar(64) NOT NULL, "
        "CONSTRAINT agent_messages_pkey PRIMARY KEY ({key})"
    ),
}


def _day_name(table: str, day: int) -> str:
    date = dt.datetime.fromtimestamp(day * 86_400, tz=dt.UTC).strftime("%Y%m%d")
    return f"{table}_p{date}"


def _pg_partition(table: str, key: str, *, drop_old: bool) -> None:
    """Rename ``table``, create it partitioned by day, copy the rows, drop the old one."""
    conn = op.get_bind()
    indexes = _AGENT_INDEXES if table == "agent_messages" else {}
    op.execute(f"ALTER TABLE {table} RENAME TO {table}_old")
    op.execute(f"ALTER TABLE {table}_old RENAME CONSTRAINT {table}_pkey TO {table}_old_pkey")
    for name in indexes:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.execute(f"CREATE TABLE {table} ({_PG_COLUMNS[table].format(key=key)}) PARTITION BY RANGE (ts_us)")
    for name, columns in indexes.items():
        op.execute(f"CREATE INDEX {name} ON {table} ({columns})")
    op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
    low, high = conn.execute(sa.text(f"SELECT min(ts_us), max(ts_us) FROM {table}_old")).one()  # noqa: S608
    today = dt.datetime.now(dt.UTC).timestamp() // 86_400
    last = int(max(today, (high // _DAY_US) if high is not None else today)) + _AHEAD_DAYS
    first = int(min(today, (low // _DAY_US) if low is not None else today))
    first = max(first, last - _MAX_BACK_DAYS)
    for day in range(first, last + 1):
        op.execute(
            f"CREATE TABLE {_day_name(table, day)} PARTITION OF {table} "
            f"FOR VALUES FROM ({day * _DAY_US}) TO ({(day + 1) * _DAY_US})"
        )
    op.execute(f"INSERT INTO {table} SELECT * FROM {table}_old")  # noqa: S608 - our own table names
    if drop_old:
        op.execute(f"DROP TABLE {table}_old")


def _pg_unpartition(table: str, key: str) -> None:
    """The reverse: a plain table with the rows of every partition."""
    indexes = _AGENT_INDEXES if table == "agent_messages" else {}
    op.execute(f"ALTER TABLE {table} RENAME TO {table}_parted")
    op.execute(f"ALTER TABLE {table}_parted RENAME CONSTRAINT {table}_pkey TO {table}_parted_pkey")
    for name in indexes:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.execute(f"CREATE TABLE {table} ({_PG_COLUMNS[table].format(key=key)})")
    for name, columns in indexes.items():
        op.execute(f"CREATE INDEX {name} ON {table} ({columns})")
    op.execute(f"INSERT INTO {table} SELECT * FROM {table}_parted")  # noqa: S608 - our own table names
    op.execute(f"DROP TABLE {table}_parted CASCADE")  # its partitions go with it


def _sqlite_agent_key(key: list[str]) -> None:
    """Rebuild SQLite's ``agent_messages`` with primary key ``key`` (rows and indexes kept)."""
    for name in _AGENT_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.execute("ALTER TABLE agent_messages RENAME TO agent_messages_old")
    op.create_table(
        "agent_messages",
        sa.Column("msg_id", sa.String(128), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ts_us", sa.BigInteger(), nullable=False),
        sa.Column("received_at_us", sa.BigInteger(), nullable=False),
        sa.Column("agent_version", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint(*key),
    )
    op.execute("INSERT INTO agent_messages SELECT * FROM agent_messages_old")
    op.execute("DROP TABLE agent_messages_old")
    for name, columns in _AGENT_INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON agent_messages ({columns})")


def upgrade() -> None:
    """Partition readings and agent messages by day (PostgreSQL); key agent messages by (msg_id, ts_us)."""
    if op.get_bind().dialect.name == "postgresql":
        _pg_partition("readings", "", drop_old=True)
        _pg_partition("agent_messages", "msg_id, ts_us", drop_old=True)
    else:
        _sqlite_agent_key(["msg_id", "ts_us"])


def downgrade() -> None:
    """Back to plain tables; agent messages keyed by ``msg_id`` alone (fails if an id repeats)."""
    if op.get_bind().dialect.name == "postgresql":
        _pg_unpartition("readings", "")
        _pg_unpartition("agent_messages", "msg_id")
    else:
        _sqlite_agent_key(["msg_id"])
