"""Downsampled aggregates: agents' summaries and alarms per device, hour and model (revision 0010).

One row of ``agent_hour_aggregates`` per (device, hour of message time, model
``<name>/<version>``, ``""`` when no model was named) holds the mergeable sums
of that hour's summaries — alarm-counted summaries, alarms raised, summed
periods, scored summaries, sum and count of medians, highest p95 and maximum,
weighted sum and weight of means — and the number of alarm messages. The
incremental monitor (:mod:`pumpops.monitoring._incremental`) writes a row with
**absolute** values each time a batch touches its hour (an upsert that
replaces, so writing the same hour twice is harmless); readers merge rows
(sums add, maxima take the larger) for any span of whole hours without
reading the raw messages. Rows live as long as summaries
(``[retention] summaries_days``) and are pruned by ``hour_us`` with them.

Also here: the monitor's reads by receipt time (index
``ix_agent_messages_kind_received_at_us``): :meth:`SqlAggregates.agent_messages_after`,
the rows stored since its watermark in keyset pages;
:meth:`SqlAggregates.agent_message_ids`, the ids (no bodies) of its
overlap; :meth:`SqlAggregates.agent_messages_by_id`, the few of those it
had not read yet.

May import: SQLAlchemy, ``pumpops.errors`` and the store's own modules.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Container, Sequence

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from pumpops.errors import InputError
from pumpops.store import _tables as tables
from pumpops.store._agent_messages import agent_record, record_columns
from pumpops.store._core import KEYS_PER_QUERY, SqlCore, at_least
from pumpops.store._records import AGENT_KINDS, AgentRecord

__all__ = ["HourAggregate", "SqlAggregates"]

_HOUR_US = 3_600_000_000


@dataclasses.dataclass(frozen=True, slots=True)
class HourAggregate:
    """One device's summaries and alarms of one hour and one model, summed.

    Attributes:
        device_id: the device.
        hour_us: the hour's start, microseconds since the epoch (UTC, a multiple of 3.6e9).
        model: ``<model_name>/<model_version>``; ``""`` for messages that named none.
        summaries: summaries with a valid period and alarm count.
        alarms_raised: their ``alarms_raised``, summed.
        period_ms: their periods, summed (ms).
        scored: summaries that carried scores.
        p50_sum: the sum of their medians; ``p50_n``: how many medians.
        p50_n: medians summed.
        p95_max: the highest p95 (None: none).
        score_max: the highest score (None: none).
        mean_wsum: the sum of their means weighted by windows scored; ``mean_w``: the weights.
        mean_w: windows the means weigh.
        alarm_messages: alarm messages of the hour.
        updated_at_us: when the row was last written.
    """

    device_id: str
    hour_us: int
    model: str
    summaries: int
    alarms_raised: int
    period_ms: int
    scored: int
    p50_sum: float
    p50_n: int
    p95_max: float | None
    score_max: float | None
    mean_wsum: float
    mean_w: int
    alarm_messages: int
    updated_at_us: int

    @property
    def alarm_rate_per_h(self) -> float | None:
        """Alarms raised per hour of summarised period (None without a period).

        >>> HourAggregate("p", 0, "", 6, 3, 3_600_000, 0, 0.0, 0, None, None, 0.0, 0, 0, 0).alarm_rate_per_h
        3.0
        """
        return self.alarms_raised / (self.period_ms / 3_600_000) if self.period_ms > 0 else None


def _check(row: HourAggregate) -> None:
    if not row.device_id:
        raise InputError("hour aggregate: device_id is empty")
    if row.hour_us % _HOUR_US:
        raise InputError(
            f"hour aggregate of {row.device_id}: hour_us {row.hour_us} is not the start of an hour"
        )
    counts = (row.summaries, row.alarms_raised, row.period_ms, row.scored, row.p50_n, row.mean_w)
    if min(counts) < 0 or row.alarm_messages < 0:
        raise InputError(f"hour aggregate of {row.device_id} at {row.hour_us}: a count is negative")
    sums = (row.p50_sum, row.mean_wsum, row.p95_max, row.score_max)
    if not all(v is None or math.isfinite(v) for v in sums):
        raise InputError(
            f"hour aggregate of {row.device_id} at {row.hour_us}: a sum or maximum is not finite"
        )


class SqlAggregates(SqlCore):
    """``agent_hour_aggregates`` and the watermark read of agent messages."""

    def put_hour_aggregates(self, rows: Sequence[HourAggregate]) -> int:
        """Write device-hour rows, replacing those of the same (device, hour, model); the rows written.

        One statement for all rows (PostgreSQL: the rows as one JSON array,
        unpacked by ``json_to_recordset``; SQLite: one prepared statement run
        per row). Of rows with the same key in one call, the last is written.

        Raises:
            InputError: a row is malformed (nothing written).
            StoreError: the database failed (nothing written).
        """
        for row in rows:
            _check(row)
        unique = list({(r.device_id, r.hour_us, r.model): r for r in rows}.values())
        if not unique:
            return 0
        t = tables.agent_hour_aggregates
        keys = ("device_id", "hour_us", "model")
        names = [c.name for c in t.columns]
        with self._guard("write hour aggregates to"), self._writer.begin() as conn:
            postgres = conn.dialect.name == "postgresql"
            stmt = self._upsert(t)
            if postgres:  # no SQL text or parameters per row: orjson writes the dataclasses
                data = sa.bindparam("rows", orjson.dumps(unique).decode(), type_=sa.Text())
                columns = [sa.column(n, t.c[n].type) for n in names]
                fields = sa.func.json_to_recordset(sa.cast(data, pg.JSON)).table_valued(*columns)
                stmt = stmt.from_select(names, sa.select(fields.render_derived(with_types=True)))
            stmt = stmt.on_conflict_do_update(
                index_elements=[t.c[k] for k in keys],
                set_={name: stmt.excluded[name] for name in names if name not in keys},
            )
            conn.execute(stmt, None if postgres else [dataclasses.asdict(r) for r in unique])
        return len(unique)

    def hour_aggregates(
        self,
        *,
        device_id: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> list[HourAggregate]:
        """Rows by device, hour, model; hours from ``since_us`` (inclusive) to ``until_us`` (exclusive).

        Raises:
            StoreError: the database failed.
        """
        t = tables.agent_hour_aggregates.c
        where = [at_least(t.hour_us, since_us)]
        if device_id is not None:
            where.append(t.device_id == device_id)
        if until_us is not None:
            where.append(t.hour_us < until_us)
        rows = self._select(
            "read hour aggregates from",
            list(tables.agent_hour_aggregates.c),
            where=where,
            order_by=[t.device_id, t.hour_us, t.model],
        )
        return [HourAggregate(**row._asdict()) for row in rows]

    def agent_messages_after(
        self,
        *,
        received_after_us: int,
        after_msg_id: str = "",
        limit: int = 20_000,
        skip_ids: Container[str] = (),
    ) -> list[tuple[str, int, AgentRecord | None]]:
        """Agent messages received after ``(received_after_us, after_msg_id)``, in that order.

        The keyset page of the incremental monitor: the next page starts after
        the last row's ``(received_at_us, msg_id)``. Each row comes as
        ``(msg_id, received_at_us, record)``; the record is None for an id in
        ``skip_ids`` (a row the caller has already: not built again).

        Raises:
            InputError: ``limit`` is below 1.
            StoreError: the database failed.
        """
        if limit < 1:
            raise InputError(f"limit must be 1 or more, not {limit}")
        t = tables.agent_messages.c
        stmt = (
            sa.select(*record_columns())
            .where(
                t.kind.in_(AGENT_KINDS),
                t.received_at_us >= received_after_us,
                sa.or_(t.received_at_us > received_after_us, t.msg_id > after_msg_id),
            )
            .order_by(t.received_at_us, t.msg_id)
            .limit(limit)
        )
        with self._guard("read new agent messages of"), self._engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [
            (row.msg_id, int(row.received_at_us), None if row.msg_id in skip_ids else agent_record(row))
            for row in rows
        ]

    def agent_message_ids(self, *, received_from_us: int, received_until_us: int) -> list[str]:
        """The ids of the agent messages received in a span (both ends included), in no order.

        Ids only, no bodies: the incremental monitor's check of its overlap
        for rows committed after it read past them.

        Raises:
            StoreError: the database failed.
        """
        t = tables.agent_messages.c
        stmt = sa.select(t.msg_id).where(
            t.kind.in_(AGENT_KINDS),
            t.received_at_us >= received_from_us,
            t.received_at_us <= received_until_us,
        )
        with self._guard("read agent message ids of"), self._engine.connect() as conn:
            return list(conn.scalars(stmt).all())

    def agent_messages_by_id(
        self, msg_ids: Collection[str], *, received_from_us: int, received_until_us: int
    ) -> list[AgentRecord]:
        """The records of ``msg_ids`` among the agent messages received in a span (both ends included).

        Raises:
            StoreError: the database failed.
        """
        t = tables.agent_messages.c
        wanted = sorted(set(msg_ids))
        found: list[AgentRecord] = []
        with self._guard("read agent messages of"), self._engine.connect() as conn:
            for start in range(0, len(wanted), KEYS_PER_QUERY):
                stmt = sa.select(*record_columns()).where(
                    t.kind.in_(AGENT_KINDS),
                    t.received_at_us >= received_from_us,
                    t.received_at_us <= received_until_us,
                    t.msg_id.in_(wanted[start : start + KEYS_PER_QUERY]),
                )
                found += [agent_record(row) for row in conn.execute(stmt).all()]
        return found

    def _prune_hour_aggregates(self, horizon: int | None, dry_run: bool) -> int:
        """Remove the hours that end at or before ``horizon`` (the summaries' horizon); the rows removed."""
        if horizon is None:
            return 0
        t = tables.agent_hour_aggregates
        condition = t.c.hour_us + _HOUR_US <= horizon
        if dry_run:
            with self._guard("count hour aggregates to prune in"), self._engine.connect() as conn:
                return int(conn.scalar(sa.select(sa.func.count()).select_from(t).where(condition)) or 0)
        with self._guard("prune hour aggregates in"), self._writer.begin() as conn:
            return int(conn.execute(sa.delete(t).where(condition)).rowcount)
