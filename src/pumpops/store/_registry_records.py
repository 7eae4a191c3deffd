"""Registry records in the SQL store: alias history, lifecycle events and releases.

Owns :class:`SqlRegistryRecords` (a mixin of :class:`~pumpops.store._sql.SqlTelemetryStore`):
what the model registry keeps beside MLflow. Alias changes are serialised
with the audit lock, so two promotions cannot both leave a period open.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from pumpops.audit import canonical_json, check_fields
from pumpops.errors import InputError
from pumpops.store import _tables as tables
from pumpops.store._core import SqlCore, at_least, build_select, eq, now_us
from pumpops.store._records import AliasRecord, EventRecord, ReleaseRecord


def _alias_record(row: Any) -> AliasRecord:
    return AliasRecord(
        group=row.group_name,
        alias=row.alias,
        model_name=row.model_name,
        version=int(row.version),
        from_us=int(row.from_us),
        to_us=None if row.to_us is None else int(row.to_us),
        set_by=row.set_by,
        reason=row.reason,
    )


def _release_record(row: Any) -> ReleaseRecord:
    return ReleaseRecord(
        release_id=int(row.id),
        model_name=row.model_name,
        version=int(row.version),
        group=row.group_name,
        targets=tuple(t for t in row.targets.split(",") if t),
        created_us=int(row.created_us),
        created_by=row.created_by,
        bundle_root=row.bundle_root,
        record_json=row.record,
    )


class SqlRegistryRecords(SqlCore):
    """:class:`~pumpops.store.RegistryRecordStore` on SQL."""

    # -- alias history ------------------------------------------------------------------------

    def set_alias(
        self,
        group: str,
        alias: str,
        model_name: str,
        version: int,
        *,
        set_by: str,
        reason: str | None = None,
        time_us: int | None = None,
    ) -> AliasRecord:
        """Close the alias's open period and open the next, in one transaction.

        Raises:
            ConfigError: ``set_by`` is empty.
            InputError: ``group``/``alias``/``model_name`` is empty.
            StoreError: the database failed; nothing was recorded.
        """
        check_fields(set_by, alias, f"{model_name}/{version}")
        if not group.strip() or not model_name.strip():
            raise InputError("alias history: group and model name must not be empty")
        t = tables.alias_history.c
        when = now_us() if time_us is None else time_us
        with self._guard("record an alias change in"), self._writer.begin() as conn:
            # The audit lock also serialises alias changes (both are rare
            # writes), so two promotions cannot both leave a period open.
            self._lock_audit(conn)
            conn.execute(
                sa.update(tables.alias_history)
                .where(t.group_name == group, t.alias == alias, t.to_us.is_(None))
                .values(to_us=when)
            )
            conn.execute(
                sa.insert(tables.alias_history).values(
                    group_name=group,
                    alias=alias,
                    model_name=model_name,
                    version=int(version),
                    from_us=when,
                    to_us=None,
                    set_by=set_by,
                    reason=reason,
                )
            )
        return AliasRecord(group, alias, model_name, int(version), when, None, set_by, reason)

    def end_alias(self, group: str, alias: str, *, time_us: int | None = None) -> AliasRecord | None:
        """Close the alias's open period; return it (closed), or None if none was open.

        Raises:
            StoreError: the database failed.
        """
        t = tables.alias_history.c
        when = now_us() if time_us is None else time_us
        with self._guard("record an alias change in"), self._writer.begin() as conn:
            self._lock_audit(conn)
            open_period = [t.group_name == group, t.alias == alias, t.to_us.is_(None)]
            row = conn.execute(build_select(tables.alias_history, where=open_period)).first()
            if row is None:
                return None
            conn.execute(sa.update(tables.alias_history).where(t.id == row.id).values(to_us=when))
        return dataclasses.replace(_alias_record(row), to_us=when)

    def alias_history(self, *, group: str | None = None, alias: str | None = None) -> list[AliasRecord]:
        """Return alias periods oldest first, optionally of one group and/or alias.

        Raises:
            StoreError: the database failed.
        """
        t = tables.alias_history.c
        rows = self._select(
            "read the alias history of",
            tables.alias_history,
            where=[eq(t.group_name, group), eq(t.alias, alias)],
            order_by=[t.from_us, t.id],
        )
        return [_alias_record(row) for row in rows]

    # -- lifecycle events ---------------------------------------------------------------------

    def append_event(
        self, kind: str, subject: str, payload: Mapping[str, Any] | None = None, *, time_us: int | None = None
    ) -> EventRecord:
        """Store one lifecycle event and return it with its sequence number.

        Raises:
            InputError: ``kind``/``subject`` is empty or ``payload`` is not a JSON object.
            StoreError: the database failed; nothing was stored.
        """
        for name, value in (("kind", kind), ("subject", subject)):
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"event {name} must not be empty")
        payload_json = canonical_json(dict(payload or {}))
        when = now_us() if time_us is None else time_us
        with self._guard("store an event in"), self._writer.begin() as conn:
            seq = conn.execute(
                sa.insert(tables.events)
                .values(time_us=when, kind=kind, subject=subject, payload=payload_json)
                .returning(tables.events.c.seq)
            ).scalar_one()
        return EventRecord(int(seq), when, kind, subject, payload_json)

    def events(
        self, *, since_seq: int | None = None, kind: str | None = None, limit: int | None = None
    ) -> list[EventRecord]:
        """Return stored events in sequence order.

        Raises:
            InputError: ``limit`` is negative.
            StoreError: the database failed.
        """
        if limit is not None and limit < 0:
            raise InputError(f"limit must be 0 or more, not {limit}")
        t = tables.events.c
        rows = self._select(
            "read the events of",
            [t.seq, t.time_us, t.kind, t.subject, t.payload],
            where=[at_least(t.seq, since_seq), eq(t.kind, kind)],
            order_by=[t.seq],
            last=limit,
        )
        return [EventRecord(int(r[0]), int(r[1]), r[2], r[3], r[4]) for r in rows]

    # -- releases -----------------------------------------------------------------------------

    def add_release(
        self,
        model_name: str,
        version: int,
        group: str,
        targets: Sequence[str],
        *,
        created_by: str,
        bundle_root: str,
        record: Mapping[str, Any],
        time_us: int | None = None,
    ) -> ReleaseRecord:
        """Store one release and return it with its id.

        Raises:
            ConfigError: ``created_by`` is empty.
            InputError: a name is empty, ``targets`` is empty or ``record`` is not a JSON object.
            StoreError: the database failed; nothing was stored.
        """
        check_fields(created_by, "release.created", f"{model_name}/{version}")
        if not model_name.strip() or not group.strip() or not targets:
            raise InputError("a release needs a model name, a group and at least one target")
        if any("," in t or not t.strip() for t in targets):
            raise InputError(f"target ids must be non-empty and without commas: {list(targets)}")
        record_json = canonical_json(dict(record))
        when = now_us() if time_us is None else time_us
        values = {
            "model_name": model_name,
            "version": int(version),
            "group_name": group,
            "targets": ",".join(targets),
            "created_us": when,
            "created_by": created_by,
            "bundle_root": bundle_root,
            "record": record_json,
        }
        with self._guard("store a release in"), self._writer.begin() as conn:
            rid = conn.execute(
                sa.insert(tables.releases).values(**values).returning(tables.releases.c.id)
            ).scalar_one()
        return ReleaseRecord(
            int(rid),
            model_name,
            int(version),
            group,
            tuple(targets),
            when,
            created_by,
            bundle_root,
            record_json,
        )

    def releases(self, *, group: str | None = None) -> list[ReleaseRecord]:
        """Return releases oldest first, optionally of one device group.

        Raises:
            StoreError: the database failed.
        """
        t = tables.releases.c
        rows = self._select(
            "read the releases of", tables.releases, where=[eq(t.group_name, group)], order_by=[t.id]
        )
        return [_release_record(row) for row in rows]

    def get_release(self, release_id: int) -> ReleaseRecord | None:
        """Return release ``release_id``, or None.

        Raises:
            StoreError: the database failed.
        """
        t = tables.releases.c
        row = self._select_one("read a release of", tables.releases, where=[t.id == int(release_id)])
        return None if row is None else _release_record(row)
