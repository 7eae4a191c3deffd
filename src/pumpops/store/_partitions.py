"""PostgreSQL time partitions: daily range partitions of readings and agent messages.

Revision 0009 makes ``readings`` and ``agent_messages`` ``PARTITION BY RANGE
(ts_us)`` with one partition per UTC day, ``<table>_pYYYYMMDD`` covering
``[00:00, next 00:00)`` in microseconds, and a ``<table>_default`` partition
for rows outside every daily one. Why daily (ADR 0015): a 30-day horizon keeps
about 30 partitions (the planner prunes them cheaply), retention is exact to a
day, and one day of a 1,000-device fleet is a partition of a size ``DROP
TABLE`` removes in milliseconds.

:class:`PostgresPartitions` overrides the retention hooks of
``_retention.py``:

- a partition is dropped whole (``DROP TABLE``, never a long DELETE) when its
  end is at or before the horizon; for agent messages, at or before both the
  agent messages' and the summaries' horizons;
- rows before the horizon that no dropped partition held — in the default
  partition, or of the shorter-kept agent kind — are deleted in batches, down
  to the horizon **rounded down to 00:00 UTC** (the partition boundary): on
  PostgreSQL a row is removed at the latest a day after it passed the horizon;
- the partitions of today and the next ``partitions_ahead_days`` days are
  created if missing. Rows of such a day already in the default partition are
  moved into the new partition in the same transaction (create a plain table,
  move, ``ATTACH PARTITION``).

May import: SQLAlchemy and the store's own modules.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pumpops.store import _tables as tables
from pumpops.store._retention import DAY_US, OTHER_AGENT_KINDS, SUMMARY_KINDS, PrunedKind, SqlRetention

PARTITIONED = ("readings", "agent_messages")
_DAILY = re.compile(r"^(readings|agent_messages)_p(\d{8})$")


@dataclasses.dataclass(frozen=True)
class Partition:
    """One daily partition: its name and the day it covers, ``[start_us, end_us)``."""

    table: str
    name: str
    start_us: int
    end_us: int


def day_start(ts_us: int) -> int:
    """00:00 UTC of the day of ``ts_us``.

    >>> day_start(DAY_US + 5), day_start(-1)
    (86400000000, -86400000000)
    """
    return ts_us // DAY_US * DAY_US


def partition_name(table: str, start_us: int) -> str:
    """The name of ``table``'s partition of the day starting at ``start_us``.

    >>> partition_name("readings", 0)
    'readings_p19700101'
    """
    return f"{table}_p{dt.datetime.fromtimestamp(start_us / 1e6, tz=dt.UTC):%Y%m%d}"


def parse_partition(name: str) -> Partition | None:
    """The partition a name stands for, or None for any other table (the default partition too).

    >>> parse_partition("agent_messages_p19700102").start_us == DAY_US
    True
    >>> parse_partition("readings_default") is None
    True
    """
    match = _DAILY.match(name)
    if match is None:
        return None
    day = dt.datetime.strptime(match.group(2), "%Y%m%d").replace(tzinfo=dt.UTC)
    start = int(day.timestamp()) * 1_000_000
    return Partition(match.group(1), name, start, start + DAY_US)


def is_partition_name(name: str | None) -> bool:
    """Whether ``name`` is a partition of a partitioned table (daily or default)."""
    return name is not None and (
        _DAILY.match(name) is not None or name in {f"{t}_default" for t in PARTITIONED}
    )


class PostgresPartitions(SqlRetention):
    """Retention by partition drops and creation ahead (PostgreSQL)."""

    def partitions(self, table: str) -> list[Partition]:
        """The daily partitions of ``table`` attached now, oldest first.

        Raises:
            StoreError: the database failed.
        """
        with self._guard(f"list the partitions of {table} in"), self._engine.connect() as conn:
            return _attached(conn, table)

    def _ensure_partitions(self, now: int, ahead_days: int, dry_run: bool) -> list[str]:
        created: list[str] = []
        with self._guard("create partitions ahead in"), self._writer.begin() as conn:
            _limit_lock_wait(conn)
            for table in PARTITIONED:
                have = {p.start_us for p in _attached(conn, table)}
                for day in range(ahead_days + 1):
                    start = day_start(now) + day * DAY_US
                    if start in have:
                        continue
                    name = partition_name(table, start)
                    created.append(name)
                    if not dry_run:
                        _create_partition(conn, table, name, start)
        return created

    def _drop_before(self, table: str, horizon: int, dry_run: bool) -> tuple[int, list[str]]:
        """Drop ``table``'s partitions that end at or before ``horizon``; their rows and names."""
        rows, names = 0, []
        with self._guard(f"drop old partitions of {table} in"), self._writer.begin() as conn:
            _limit_lock_wait(conn)
            for part in _attached(conn, table):
                if part.end_us > horizon:
                    continue
                rows += _row_count(conn, part.name)
                names.append(part.name)
                if not dry_run:
                    conn.exec_driver_sql(f'DROP TABLE "{part.name}"')
        return rows, names

    def _prune_readings(self, horizon: int | None, batch_rows: int, dry_run: bool) -> PrunedKind:
        if horizon is None:
            return PrunedKind("readings", None, 0)
        cut = day_start(horizon)
        rows, names = self._drop_before("readings", cut, dry_run)
        # What is left before the cut lives in the default partition: a batched delete by key.
        rows += self._delete_default_readings(cut, batch_rows, dry_run)
        return PrunedKind("readings", horizon, rows, tuple(names))

    def _delete_default_readings(self, cut: int, batch_rows: int, dry_run: bool) -> int:
        r = tables.readings.c
        default = sa.table(
            "readings_default", sa.column("device_id"), sa.column("sensor"), sa.column("ts_us")
        )
        d = default.c
        if dry_run:
            with self._guard("count readings to prune in"), self._engine.connect() as conn:
                return int(
                    conn.scalar(sa.select(sa.func.count()).select_from(default).where(d.ts_us < cut)) or 0
                )
        removed = 0
        while True:
            chosen = sa.select(d.device_id, d.sensor, d.ts_us).where(d.ts_us < cut).limit(batch_rows)
            stmt = sa.delete(tables.readings).where(
                r.ts_us < cut, sa.tuple_(r.device_id, r.sensor, r.ts_us).in_(chosen)
            )
            with self._guard("prune readings in"), self._writer.begin() as conn:
                count = conn.execute(stmt).rowcount
            removed += count
            if count < batch_rows:
                return removed

    def _prune_agent_messages(
        self, horizon: int | None, summaries_horizon: int | None, batch_rows: int, dry_run: bool
    ) -> list[PrunedKind]:
        t = tables.agent_messages.c
        cuts = {
            "agent_messages": None if horizon is None else day_start(horizon),
            "summaries": None if summaries_horizon is None else day_start(summaries_horizon),
        }
        names: list[str] = []
        dropped = {"agent_messages": 0, "summaries": 0}
        if None not in cuts.values():
            both = min(c for c in cuts.values() if c is not None)
            with self._guard("count agent messages in"), self._engine.connect() as conn:
                for part in _attached(conn, "agent_messages"):
                    if part.end_us <= both:
                        dropped["summaries"] += _row_count(conn, part.name, "kind IN ('summary')")
            total, names = self._drop_before("agent_messages", both, dry_run)
            dropped["agent_messages"] = total - dropped["summaries"]
        found = []
        for kind, kinds in (("agent_messages", OTHER_AGENT_KINDS), ("summaries", SUMMARY_KINDS)):
            cut = cuts[kind]
            rows = (
                0
                if cut is None
                else self._delete_batches(
                    t.msg_id, t.ts_us, cut, t.kind.in_(kinds), batch_rows=batch_rows, dry_run=dry_run
                )
            )
            h = horizon if kind == "agent_messages" else summaries_horizon
            # Dry, nothing was dropped: the count before the cut already holds the partitions' rows.
            found.append(PrunedKind(kind, h, rows if dry_run else dropped[kind] + rows, tuple(names)))
        return found


#: How long creating or dropping a partition waits for the parent table's lock.
LOCK_TIMEOUT = "10s"


def _limit_lock_wait(conn: Connection) -> None:
    """Give up (StoreError; the hub retries at its next step) rather than wait behind a long reader.

    ``DROP TABLE`` of a partition and ``CREATE TABLE ... PARTITION OF`` lock the
    parent exclusively; while one waits for a long query, every insert queues
    behind it. Ten seconds bounds that stall for ingest.
    """
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")


def _attached(conn: Connection, table: str) -> list[Partition]:
    """The daily partitions attached to ``table`` (in the connection's search path), oldest first."""
    names = conn.execute(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:parent)"
        ),
        {"parent": table},
    ).scalars()
    found = [p for p in (parse_partition(n) for n in names) if p is not None and p.table == table]
    return sorted(found, key=lambda p: p.start_us)


# The SQL below is built from table names of PARTITIONED, partition names that
# parse_partition accepted (letters, digits, _) and integer bounds: nothing a
# caller or a message controls, so the f-strings are safe (S608).


def _row_count(conn: Connection, name: str, where: str = "TRUE") -> int:
    """Exact rows of one partition (the cost of a scan of one day; only for partitions dropped)."""
    statement = f'SELECT count(*) FROM "{name}" WHERE {where}'  # noqa: S608 - see above
    return int(conn.exec_driver_sql(statement).scalar() or 0)


def _create_partition(conn: Connection, table: str, name: str, start: int) -> None:
    """Create ``name`` for ``[start, start + 1 day)``, moving that day's rows out of the default partition."""
    end = start + DAY_US
    waiting = conn.exec_driver_sql(
        f"SELECT EXISTS (SELECT 1 FROM {table}_default WHERE ts_us >= {start} AND ts_us < {end})"  # noqa: S608
    ).scalar()
    if not waiting:
        conn.exec_driver_sql(
            f'CREATE TABLE "{name}" PARTITION OF {table} FOR VALUES FROM ({start}) TO ({end})'
        )
        return
    conn.exec_driver_sql(f'CREATE TABLE "{name}" (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')
    conn.exec_driver_sql(
        f"WITH moved AS (DELETE FROM {table}_default WHERE ts_us >= {start} AND ts_us < {end} RETURNING *) "  # noqa: S608
        f'INSERT INTO "{name}" SELECT * FROM moved'
    )
    conn.exec_driver_sql(
        f'ALTER TABLE {table} ATTACH PARTITION "{name}" FOR VALUES FROM ({start}) TO ({end})'
    )
