"""Retention: how long each kind of stored data lives, and the prune that enforces it.

A :class:`RetentionPolicy` gives a horizon in days per kind — raw readings,
agent messages (alarms, drift reports, state), summaries (agent messages of
kind ``summary``), dead letters, lifecycle events; 0 keeps a kind forever.
The audit trail is not a kind: nothing here can delete it.

:meth:`SqlRetention.prune` removes, per kind, the rows older than ``now -
horizon``: a row whose time is exactly the horizon is **kept** (``time <
horizon`` is removed). Times: readings and agent messages by their own time
(``ts_us``), dead letters by receipt, events by their time. This module does
it with DELETEs in batches of ``batch_rows`` (one short transaction each, so
ingest is never blocked for long): the embedded SQLite default. The PostgreSQL
store overrides readings and agent messages with whole-partition drops
(``_partitions.py``). A prune that removed anything appends one audit entry,
``store.pruned``, with the counts. See ADR 0015.
May import: SQLAlchemy, ``pumpops.errors`` and the store's own modules.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pumpops.errors import InputError
from pumpops.store import _tables as tables
from pumpops.store._core import SqlCore, now_us

DAY_US = 86_400_000_000

#: The kinds of data with a lifetime, in the order reports list them.
PRUNE_KINDS = ("readings", "agent_messages", "summaries", "dead_letters", "events")

#: Agent message kinds pruned as ``summaries``; every other kind is ``agent_messages``.
SUMMARY_KINDS = ("summary",)
OTHER_AGENT_KINDS = ("alarm", "drift", "state")


@dataclasses.dataclass(frozen=True)
class RetentionPolicy:
    """Days each kind is kept (0: forever) and how pruning runs.

    Attributes:
        readings_days: raw readings.
        agent_messages_days: agent messages other than summaries.
        summaries_days: agent summaries.
        dead_letters_days: dead letters, by receipt time.
        events_days: lifecycle events.
        batch_rows: rows per DELETE transaction.
        partitions_ahead_days: PostgreSQL: daily partitions kept created ahead of today.
    """

    readings_days: float = 30.0
    agent_messages_days: float = 90.0
    summaries_days: float = 365.0
    dead_letters_days: float = 30.0
    events_days: float = 365.0
    batch_rows: int = 10_000
    partitions_ahead_days: int = 7

    def __post_init__(self) -> None:
        for kind in PRUNE_KINDS:
            days = self.days(kind)
            if not math.isfinite(days) or days < 0:
                raise InputError(
                    f"retention of {kind} must be 0 (keep forever) or a number of days, not {days}"
                )
            if 0 < days < 1:
                raise InputError(
                    f"retention of {kind} is {days} days: at least 1 day (the partition size on "
                    f"PostgreSQL), or 0 to keep forever"
                )
        if self.batch_rows < 1:
            raise InputError(f"batch_rows must be at least 1, not {self.batch_rows}")
        if not 1 <= self.partitions_ahead_days <= 366:
            raise InputError(f"partitions_ahead_days must be 1 to 366, not {self.partitions_ahead_days}")

    def days(self, kind: str) -> float:
        """The horizon of ``kind`` in days (0: forever)."""
        value: float = getattr(self, f"{kind}_days")
        return value

    def horizon_us(self, kind: str, now: int) -> int | None:
        """The time before which ``kind``'s rows are removed, or None (kept forever)."""
        days = self.days(kind)
        return None if days == 0 else now - round(days * DAY_US)


@dataclasses.dataclass(frozen=True)
class PrunedKind:
    """What a prune removed (or, dry, would remove) of one kind."""

    kind: str
    horizon_us: int | None
    rows: int
    partitions: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class PruneReport:
    """One prune: per kind, and the partitions created ahead (PostgreSQL)."""

    now_us: int
    dry_run: bool
    kinds: tuple[PrunedKind, ...]
    partitions_created: tuple[str, ...] = ()
    audit_seq: int | None = None

    @property
    def rows(self) -> int:
        """Rows removed in all."""
        return sum(k.rows for k in self.kinds)

    def as_payload(self) -> dict[str, Any]:
        """The counts as the ``store.pruned`` audit entry's payload (JSON)."""
        return {
            "now_us": self.now_us,
            "kinds": {
                k.kind: {"horizon_us": k.horizon_us, "rows": k.rows, "partitions_dropped": list(k.partitions)}
                for k in self.kinds
            },
            "partitions_created": list(self.partitions_created),
        }


class SqlRetention(SqlCore):
    """Pruning by DELETE in batches; the PostgreSQL store drops partitions instead where it can."""

    def prune(
        self, policy: RetentionPolicy, *, actor: str, now: int | None = None, dry_run: bool = False
    ) -> PruneReport:
        """Remove each kind's rows older than its horizon; audit it as one ``store.pruned`` entry.

        Args:
            policy: the horizons.
            actor: who the audit entry is attributed to.
            now: the time horizons count back from (default: now).
            dry_run: count what would be removed; write nothing (no audit entry either).

        Raises:
            StoreError: the database failed; batches committed before stay removed.
        """
        at = now_us() if now is None else int(now)
        h = {kind: policy.horizon_us(kind, at) for kind in PRUNE_KINDS}
        kinds = [self._prune_readings(h["readings"], policy.batch_rows, dry_run)]
        kinds += self._prune_agent_messages(h["agent_messages"], h["summaries"], policy.batch_rows, dry_run)
        # Hour aggregates (_aggregates.py) live as long as the summaries they sum: whole hours past it go.
        aggregates = self._prune_hour_aggregates(h["summaries"], dry_run)  # type: ignore[attr-defined]
        kinds.append(PrunedKind("hour_aggregates", h["summaries"], int(aggregates)))
        d, e = tables.dead_letters.c, tables.events.c
        kinds.append(
            self._prune_keyed(
                "dead_letters", d.id, d.received_at_us, h["dead_letters"], policy=policy, dry_run=dry_run
            )
        )
        kinds.append(
            self._prune_keyed("events", e.seq, e.time_us, h["events"], policy=policy, dry_run=dry_run)
        )
        created = self._ensure_partitions(at, policy.partitions_ahead_days, dry_run)
        report = PruneReport(at, dry_run, tuple(kinds), tuple(created))
        if dry_run or not (report.rows or any(k.partitions for k in kinds)):
            return report
        entry = self.append_audit(actor, "store.pruned", "store", report.as_payload())  # type: ignore[attr-defined]
        return dataclasses.replace(report, audit_seq=int(entry.seq))

    # -- engine hooks: the PostgreSQL store overrides these --------------------------------

    def _ensure_partitions(self, now: int, ahead_days: int, dry_run: bool) -> list[str]:
        """Create the partitions of the days ahead; none on an engine without partitions."""
        return []

    def _prune_readings(self, horizon: int | None, batch_rows: int, dry_run: bool) -> PrunedKind:
        """Readings by (device, sensor): each DELETE is a range of the primary key, no table scan."""
        if horizon is None:
            return PrunedKind("readings", None, 0)
        r = tables.readings.c
        with self._guard("prune readings in"), self._engine.connect() as conn:
            pairs = list(conn.execute(sa.select(r.device_id, r.sensor).distinct()))
            if dry_run:
                rows = conn.scalar(sa.select(sa.func.count()).where(r.ts_us < horizon)) or 0
                return PrunedKind("readings", horizon, int(rows))
        removed = 0
        for device_id, sensor in pairs:
            pair = (r.device_id == device_id) & (r.sensor == sensor)
            while True:
                with self._guard("prune readings in"), self._writer.begin() as wconn:
                    # The batch's end: the time of the first row past it (or the horizon).
                    cut = wconn.scalar(
                        sa.select(r.ts_us)
                        .where(pair, r.ts_us < horizon)
                        .order_by(r.ts_us)
                        .offset(batch_rows)
                        .limit(1)
                    )
                    end = horizon if cut is None else int(cut)
                    removed += wconn.execute(sa.delete(tables.readings).where(pair, r.ts_us < end)).rowcount
                if cut is None:
                    break
        return PrunedKind("readings", horizon, removed)

    def _prune_agent_messages(
        self, horizon: int | None, summaries_horizon: int | None, batch_rows: int, dry_run: bool
    ) -> list[PrunedKind]:
        """Agent messages and summaries, each by its own horizon."""
        t = tables.agent_messages.c
        found = []
        for kind, kinds, h in (
            ("agent_messages", OTHER_AGENT_KINDS, horizon),
            ("summaries", SUMMARY_KINDS, summaries_horizon),
        ):
            rows = (
                0
                if h is None
                else self._delete_batches(
                    t.msg_id, t.ts_us, h, t.kind.in_(kinds), batch_rows=batch_rows, dry_run=dry_run
                )
            )
            found.append(PrunedKind(kind, h, rows))
        return found

    def _prune_keyed(
        self,
        kind: str,
        key: sa.Column[Any],
        time: sa.Column[Any],
        horizon: int | None,
        *,
        policy: RetentionPolicy,
        dry_run: bool,
    ) -> PrunedKind:
        rows = (
            0
            if horizon is None
            else self._delete_batches(key, time, horizon, batch_rows=policy.batch_rows, dry_run=dry_run)
        )
        return PrunedKind(kind, horizon, rows)

    def _delete_batches(
        self,
        key: sa.Column[Any],
        time: sa.Column[Any],
        horizon: int,
        *where: sa.ColumnElement[bool],
        batch_rows: int,
        dry_run: bool,
    ) -> int:
        """``DELETE ... WHERE time < horizon`` in transactions of at most ``batch_rows`` rows.

        Rows are chosen by ``key`` (a single column that, together with the time
        condition, picks exactly the rows selected).
        """
        table = key.table
        condition = sa.and_(time < horizon, *where)
        if dry_run:
            with self._guard(f"count rows to prune in {table.name} of"), self._engine.connect() as conn:
                return int(conn.scalar(sa.select(sa.func.count()).select_from(table).where(condition)) or 0)
        removed = 0
        while True:
            chosen = sa.select(key).where(condition).limit(batch_rows).scalar_subquery()
            with self._guard(f"prune {table.name} in"), self._writer.begin() as conn:
                count = conn.execute(sa.delete(table).where(condition, key.in_(chosen))).rowcount
            removed += count
            if count < batch_rows:
                return removed


def connection_rows(conn: Connection, statement: str) -> int:
    """The single integer a statement returns (0 for NULL)."""
    return int(conn.exec_driver_sql(statement).scalar() or 0)
