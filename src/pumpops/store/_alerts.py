"""Fleet alerts and alarm feedback in the SQL store (revision 0006).

Owns :class:`SqlAlerts` (a mixin of :class:`~pumpops.store._sql.SqlTelemetryStore`):
fleet-level alerts opened once per id and closed once, and technicians'
verdicts on alarms, the newest kept.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from pumpops.store import _plan
from pumpops.store import _tables as tables
from pumpops.store._core import SqlCore, at_least, build_select, eq, now_us
from pumpops.store._records import FeedbackRecord, FleetAlertRecord


def _fleet_alert_record(row: Any) -> FleetAlertRecord:
    return FleetAlertRecord(
        alert_id=row.alert_id,
        group=row.group_name,
        kind=row.kind,
        opened_at_us=int(row.opened_at_us),
        closed_at_us=None if row.closed_at_us is None else int(row.closed_at_us),
        detail_json=row.detail,
    )


def _feedback_record(row: Any) -> FeedbackRecord:
    return FeedbackRecord(
        alarm_id=row.alarm_id,
        device_id=row.device_id,
        verdict=row.verdict,
        actor=row.actor,
        note=row.note,
        at_us=int(row.at_us),
    )


class SqlAlerts(SqlCore):
    """:class:`~pumpops.store.AlertStore` on SQL."""

    # -- fleet alerts -------------------------------------------------------------------------

    def open_fleet_alert(
        self, alert_id: str, *, group: str, kind: str, detail_json: str, time_us: int | None = None
    ) -> bool:
        """Open a fleet alert; False (nothing changed) if the id exists already, open or closed.

        ``INSERT ... ON CONFLICT DO NOTHING``: two monitors raising the same
        alert at once store it once, and exactly one of them gets True.

        Raises:
            InputError: a field is malformed or ``detail_json`` is not JSON of an object.
            StoreError: the database failed; nothing was stored.
        """
        _plan.check_fleet_alert(alert_id, group=group, kind=kind, detail_json=detail_json, time_us=time_us)
        when = now_us() if time_us is None else time_us
        t = tables.fleet_alerts.c
        stmt = (
            self._upsert(tables.fleet_alerts)
            .values(
                alert_id=alert_id,
                group_name=group,
                kind=kind,
                opened_at_us=when,
                closed_at_us=None,
                detail=detail_json,
            )
            .on_conflict_do_nothing(index_elements=[t.alert_id])
            .returning(t.alert_id)
        )
        with self._guard("open a fleet alert in"), self._writer.begin() as conn:
            inserted = conn.execute(stmt).first()
        return inserted is not None

    def close_fleet_alert(self, alert_id: str, *, time_us: int | None = None) -> bool:
        """Close an open fleet alert; False if the id is unknown or the alert already closed.

        Raises:
            InputError: ``time_us`` is not a non-negative integer.
            StoreError: the database failed.
        """
        _plan.check_time_us(f"fleet alert {alert_id!r}", time_us)
        when = now_us() if time_us is None else time_us
        t = tables.fleet_alerts.c
        stmt = (
            sa.update(tables.fleet_alerts)
            .where(t.alert_id == alert_id, t.closed_at_us.is_(None))
            .values(closed_at_us=when)
            .returning(t.alert_id)
        )
        with self._guard("close a fleet alert in"), self._writer.begin() as conn:
            closed = conn.execute(stmt).first()
        return closed is not None

    def fleet_alerts(self, *, group: str | None = None, open_only: bool = False) -> list[FleetAlertRecord]:
        """Return fleet alerts ordered by ``opened_at_us`` (then id); of one group, or only open ones.

        Raises:
            StoreError: the database failed.
        """
        t = tables.fleet_alerts.c
        rows = self._select(
            "read the fleet alerts of",
            tables.fleet_alerts,
            where=[eq(t.group_name, group), t.closed_at_us.is_(None) if open_only else None],
            order_by=[t.opened_at_us, t.alert_id],
        )
        return [_fleet_alert_record(row) for row in rows]

    # -- alarm feedback -----------------------------------------------------------------------

    def put_feedback(
        self, alarm_id: str, *, verdict: str, actor: str, note: str = "", time_us: int | None = None
    ) -> FeedbackRecord:
        """Store a verdict on an alarm unless a newer one is stored; return the one stored now.

        The upsert replaces the stored verdict only if this one's ``at_us`` is
        at or after it, so verdicts put out of order still keep the newest.

        Raises:
            ConfigError: ``actor`` is empty.
            InputError: ``alarm_id`` or ``verdict`` is malformed; nothing was stored.
            StoreError: the database failed; nothing was stored.
        """
        device_id = _plan.check_feedback(alarm_id, verdict=verdict, actor=actor, note=note, time_us=time_us)
        when = now_us() if time_us is None else time_us
        table = tables.alarm_feedback
        stmt = self._upsert(table).values(
            alarm_id=alarm_id, device_id=device_id, verdict=verdict, actor=actor, note=note, at_us=when
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.alarm_id],
            set_={
                "verdict": stmt.excluded.verdict,
                "actor": stmt.excluded.actor,
                "note": stmt.excluded.note,
                "at_us": stmt.excluded.at_us,
            },
            where=stmt.excluded.at_us >= table.c.at_us,
        )
        with self._guard("store alarm feedback in"), self._writer.begin() as conn:
            conn.execute(stmt)
            row = conn.execute(build_select(table, where=[table.c.alarm_id == alarm_id])).one()
        return _feedback_record(row)

    def feedback(self, *, device_id: str | None = None, since_us: int | None = None) -> list[FeedbackRecord]:
        """Return stored verdicts ordered by ``at_us`` (then alarm id); of one device, or since an instant.

        Raises:
            StoreError: the database failed.
        """
        t = tables.alarm_feedback.c
        rows = self._select(
            "read alarm feedback of",
            tables.alarm_feedback,
            where=[eq(t.device_id, device_id), at_least(t.at_us, since_us)],
            order_by=[t.at_us, t.alarm_id],
        )
        return [_feedback_record(row) for row in rows]
