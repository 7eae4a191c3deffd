"""Rollouts in the SQL store: the rollout service's state, one row per rollout (revision 0006).

Owns :class:`SqlRollouts` (a mixin of :class:`~pumpops.store._sql.SqlTelemetryStore`):
an upsert that keeps ``created_at_us``, and reads by id, group or status.
"""

from __future__ import annotations

from typing import Any

from pumpops.store import _plan
from pumpops.store import _tables as tables
from pumpops.store._core import SqlCore, eq, now_us
from pumpops.store._records import ROLLOUT_ACTIVE_STATUSES, RolloutRecord


def _rollout_record(row: Any) -> RolloutRecord:
    return RolloutRecord(
        rollout_id=row.rollout_id,
        group=row.group_name,
        release=row.release,
        status=row.status,
        state_json=row.state,
        created_at_us=int(row.created_at_us),
        updated_at_us=int(row.updated_at_us),
    )


class SqlRollouts(SqlCore):
    """:class:`~pumpops.store.RolloutRecordStore` on SQL."""

    def put_rollout(
        self,
        rollout_id: str,
        *,
        group: str,
        release: str,
        status: str,
        state_json: str,
        time_us: int | None = None,
    ) -> RolloutRecord:
        """Insert a rollout or update the stored one (``created_at_us`` kept); return it as stored.

        One ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``: two writers of
        the same id never fail on the key, the later one's fields win.

        Raises:
            InputError: a field is malformed or ``state_json`` is not JSON of an object.
            StoreError: the database failed; nothing was stored.
        """
        _plan.check_rollout(
            rollout_id, group=group, release=release, status=status, state_json=state_json, time_us=time_us
        )
        when = now_us() if time_us is None else time_us
        t = tables.rollouts.c
        stmt = self._upsert(tables.rollouts).values(
            rollout_id=rollout_id,
            group_name=group,
            release=release,
            status=status,
            state=state_json,
            created_at_us=when,
            updated_at_us=when,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.rollout_id],
            set_={
                "group_name": stmt.excluded.group_name,
                "release": stmt.excluded.release,
                "status": stmt.excluded.status,
                "state": stmt.excluded.state,
                "updated_at_us": stmt.excluded.updated_at_us,
            },
        ).returning(*tables.rollouts.c)
        with self._guard("store a rollout in"), self._writer.begin() as conn:
            row = conn.execute(stmt).one()
        return _rollout_record(row)

    def get_rollout(self, rollout_id: str) -> RolloutRecord | None:
        """Return the rollout with this id, or None.

        Raises:
            StoreError: the database failed.
        """
        t = tables.rollouts.c
        row = self._select_one("read a rollout of", tables.rollouts, where=[t.rollout_id == rollout_id])
        return None if row is None else _rollout_record(row)

    def rollouts(self, *, group: str | None = None, active_only: bool = False) -> list[RolloutRecord]:
        """Return rollouts ordered by ``created_at_us`` (then id); of one group, or only active ones.

        Raises:
            StoreError: the database failed.
        """
        t = tables.rollouts.c
        rows = self._select(
            "read the rollouts of",
            tables.rollouts,
            where=[eq(t.group_name, group), t.status.in_(ROLLOUT_ACTIVE_STATUSES) if active_only else None],
            order_by=[t.created_at_us, t.rollout_id],
        )
        return [_rollout_record(row) for row in rows]
