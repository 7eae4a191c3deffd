"""Agent messages in the SQL store: alarms, summaries, drift reports and states, idempotent by ``msg_id``.

Owns :class:`SqlAgentMessages` (a mixin of :class:`~pumpops.store._sql.SqlTelemetryStore`):
the insert-or-classify path (stored, duplicate, id conflict written as a
dead letter in the same transaction) and the ordered reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from pumpops.errors import InputError
from pumpops.schema import DeadLetter
from pumpops.store import _plan
from pumpops.store import _tables as tables
from pumpops.store._core import KEYS_PER_QUERY, SqlCore, at_least, build_select, eq
from pumpops.store._dead_letters import dead_letter_rows
from pumpops.store._records import AGENT_KINDS, AgentPut, AgentRecord


def _agent_row(record: AgentRecord) -> dict[str, Any]:
    return {
        "msg_id": record.msg_id,
        "device_id": record.device_id,
        "seq": record.seq,
        "site": record.site,
        "kind": record.kind,
        "ts_us": int(record.ts_us),
        "received_at_us": int(record.received_at_us),
        "agent_version": _plan.clean_text(record.agent_version),
        "body": _plan.clean_text(record.body_json),
        "payload_sha256": record.payload_sha256,
    }


def _agent_conflict_letter(record: AgentRecord) -> DeadLetter:
    payload = record.payload
    if not payload:  # rebuild the envelope from the fields (the body as it came)
        envelope = {
            "schema": "pumpops.agent/1",
            "msg_id": record.msg_id,
            "device_id": record.device_id,
            "site": record.site,
            "kind": record.kind,
            "ts_ms": record.ts_ms,
            "agent_version": record.agent_version,
            "body": json.loads(record.body_json),
        }
        payload = json.dumps(envelope, separators=(",", ":")).encode()
    return DeadLetter(
        topic=record.topic or f"(agent {record.kind} of {record.device_id} at {record.site})",
        payload=payload,
        reason="msg_id_conflict",
        detail=_plan.agent_conflict_detail(record),
        received_at_us=int(record.received_at_us),
        device_id=record.device_id,
        msg_id=record.msg_id,
    )


class SqlAgentMessages(SqlCore):
    """:class:`~pumpops.store.AgentMessageStore` on SQL."""

    def put_agent_messages(self, messages: Sequence[AgentRecord]) -> AgentPut:
        """Store agent messages idempotently by ``msg_id``, in one transaction.

        Not stored yet → stored; stored with the same payload hash → duplicate
        (nothing written); stored with another hash → id conflict: never
        overwritten, written as a ``msg_id_conflict`` dead letter in the same
        transaction. Repeats within the call are judged one after the other.

        ``INSERT ... ON CONFLICT DO NOTHING`` in ``msg_id`` order: two ingest
        workers given the same resend store it once, with no unique-violation
        error and no deadlock (PostgreSQL waits for the other writer's key, then
        skips it; SQLite's write transaction excludes the other writer).

        Raises:
            InputError: a message is malformed; nothing was stored.
            StoreError: the database failed; nothing of the call was stored.
        """
        if not messages:
            return AgentPut(0, 0)
        for record in messages:
            _plan.check_agent_record(record)
        firsts: dict[str, AgentRecord] = {}
        for record in messages:
            firsts.setdefault(record.msg_id, record)
        rows = [_agent_row(firsts[msg_id]) for msg_id in sorted(firsts)]
        t = tables.agent_messages.c
        with self._guard("store agent messages in"), self._writer.begin() as conn:
            inserted: set[str] = set()
            for start in range(0, len(rows), KEYS_PER_QUERY // 10):
                stmt = (
                    self._upsert(tables.agent_messages)
                    .values(rows[start : start + KEYS_PER_QUERY // 10])
                    .on_conflict_do_nothing(index_elements=[t.msg_id])
                    .returning(t.msg_id)
                )
                inserted.update(conn.scalars(stmt))
            others = sorted(firsts.keys() - inserted)
            claimed: dict[str, str | None] = dict.fromkeys(inserted)
            for start in range(0, len(others), KEYS_PER_QUERY):
                chunk = others[start : start + KEYS_PER_QUERY]
                stmt2 = build_select([t.msg_id, t.payload_sha256], where=[t.msg_id.in_(chunk)])
                claimed.update({row.msg_id: row.payload_sha256 for row in conn.execute(stmt2)})
            statuses = _plan.classify_keyed([(m.msg_id, m.payload_sha256) for m in messages], claimed)
            conflicts = [
                _agent_conflict_letter(record)
                for record, status in zip(messages, statuses, strict=True)
                if status == "id_conflict"
            ]
            if conflicts:
                conn.execute(sa.insert(tables.dead_letters), dead_letter_rows(conflicts))
        return AgentPut(statuses.count("stored"), statuses.count("duplicate"))

    def agent_messages(
        self,
        *,
        device_id: str | None = None,
        kind: str | None = None,
        since_us: int | None = None,
        limit: int | None = None,
    ) -> list[AgentRecord]:
        """Return stored agent messages ordered by device, then ``seq`` (numerically).

        Raises:
            InputError: ``limit`` is negative or ``kind`` is unknown.
            StoreError: the database failed.
        """
        if limit is not None and limit < 0:
            raise InputError(f"limit must be 0 or more, not {limit}")
        if kind is not None and kind not in AGENT_KINDS:
            raise InputError(f"agent message kind {kind!r} is not one of {', '.join(AGENT_KINDS)}")
        t = tables.agent_messages.c
        rows = self._select(
            "read agent messages from",
            [
                t.msg_id,
                t.device_id,
                t.site,
                t.kind,
                t.ts_us,
                t.agent_version,
                t.body,
                t.payload_sha256,
                t.received_at_us,
            ],
            where=[eq(t.device_id, device_id), eq(t.kind, kind), at_least(t.ts_us, since_us)],
            order_by=[t.device_id, t.seq, t.msg_id],
            last=limit,
        )
        return [
            AgentRecord(
                msg_id=row.msg_id,
                device_id=row.device_id,
                site=row.site,
                kind=row.kind,
                ts_us=int(row.ts_us),
                agent_version=row.agent_version,
                body_json=row.body,
                payload_sha256=row.payload_sha256,
                received_at_us=int(row.received_at_us),
            )
            for row in rows
        ]
