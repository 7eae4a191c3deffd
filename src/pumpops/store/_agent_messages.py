"""Agent messages in the SQL store: alarms, summaries, drift reports and states, idempotent by ``msg_id``.

Owns :class:`SqlAgentMessages` (a mixin of :class:`~pumpops.store._sql.SqlTelemetryStore`):
the insert-or-classify path (stored, duplicate, id conflict or sequence jump
written as a dead letter in the same transaction) and the ordered reads
(device, then time, then seq: "newest" is by time, the seq breaking ties).

A message id is ``<device_id>:<seq>`` and the store refuses any other shape,
so ids are scoped to their device: one device's messages can never take
another's id (ingest also requires the device to be the topic's, whose
publisher the broker's access rules fix).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pumpops.errors import InputError
from pumpops.schema import DeadLetter
from pumpops.store import _plan
from pumpops.store import _tables as tables
from pumpops.store._core import KEYS_PER_QUERY, SqlCore, at_least, build_select, eq
from pumpops.store._dead_letters import dead_letter_rows
from pumpops.store._records import AGENT_KINDS, AgentPut, AgentRecord

#: The dead letters' reason for a sequence number too far past the device's stored maximum.
SEQ_JUMP_REASON = "seq_jump"


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
    return DeadLetter(
        topic=_letter_topic(record),
        payload=_raw_payload(record),
        reason="msg_id_conflict",
        detail=_plan.agent_conflict_detail(record),
        received_at_us=int(record.received_at_us),
        device_id=record.device_id,
        msg_id=record.msg_id,
    )


def _letter_topic(record: AgentRecord) -> str:
    return record.topic or f"(agent {record.kind} of {record.device_id} at {record.site})"


def _raw_payload(record: AgentRecord) -> bytes:
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
    return payload


def seq_jumps(
    records: Sequence[AgentRecord], stored_max: dict[str, int], max_jump: int
) -> dict[str, tuple[int, int]]:
    """The message ids whose seq jumps more than ``max_jump`` past their device's highest seq so far.

    Each device's records are judged in seq order from its stored maximum (0
    for a device with none); an accepted record raises the maximum, a refused
    one does not. Pure: the store calls it inside the writing transaction.

    Args:
        records: the call's distinct messages.
        stored_max: the highest stored seq per device.
        max_jump: the bound (``ingest.max_seq_jump``).

    Returns:
        ``msg_id -> (seq, the device's highest seq it was judged against)``.

    >>> rec = lambda seq: AgentRecord(f"p-1:{seq}", "p-1", "s1", "state", 0, "1", "{}", "0" * 64, 0)
    >>> seq_jumps([rec(2**63 - 1), rec(12), rec(15)], {"p-1": 10}, 100)
    {'p-1:9223372036854775807': (9223372036854775807, 15)}
    """
    refused: dict[str, tuple[int, int]] = {}
    highest = dict(stored_max)
    for record in sorted(records, key=lambda r: (r.device_id, r.seq)):
        ceiling = highest.get(record.device_id, 0)
        if record.seq > ceiling + max_jump:
            refused[record.msg_id] = (record.seq, ceiling)
        else:
            highest[record.device_id] = max(ceiling, record.seq)
    return refused


def _seq_jump_letter(record: AgentRecord, seq: int, ceiling: int, max_jump: int) -> DeadLetter:
    return DeadLetter(
        topic=_letter_topic(record),
        payload=_raw_payload(record),
        reason=SEQ_JUMP_REASON,
        detail=(
            f"message {record.msg_id!r} has seq {seq}, more than {max_jump} (ingest.max_seq_jump) past "
            f"the highest seq {ceiling} stored for device {record.device_id!r}; nothing was stored. An "
            f"agent numbers its messages one by one: a jump like this is a forged or corrupted message "
            f"(if the device's history was deleted on purpose, raise ingest.max_seq_jump and replay it)"
        ),
        received_at_us=int(record.received_at_us),
        device_id=record.device_id,
        msg_id=record.msg_id,
    )


class SqlAgentMessages(SqlCore):
    """:class:`~pumpops.store.AgentMessageStore` on SQL."""

    def _lock_agent_messages(self, conn: Connection) -> None:
        """Exclude other agent message writers until ``conn``'s transaction ends.

        Nothing to do where a write transaction already excludes every other
        writer (SQLite: ``BEGIN IMMEDIATE``); PostgreSQL takes an advisory lock.
        """

    def put_agent_messages(
        self, messages: Sequence[AgentRecord], *, max_seq_jump: int | None = None
    ) -> AgentPut:
        """Store agent messages idempotently by ``msg_id``, in one transaction.

        Not stored yet → stored; stored with the same payload hash → duplicate
        (nothing written); stored with another hash → id conflict: never
        overwritten, written as a ``msg_id_conflict`` dead letter in the same
        transaction. Repeats within the call are judged one after the other.
        With ``max_seq_jump``, a seq more than that past the device's highest
        (see :func:`seq_jumps`) → a ``seq_jump`` dead letter, nothing stored.

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
        if max_seq_jump is not None and max_seq_jump < 1:
            raise InputError(f"max_seq_jump must be at least 1, not {max_seq_jump}")
        firsts: dict[str, AgentRecord] = {}
        for record in messages:
            firsts.setdefault(record.msg_id, record)
        t = tables.agent_messages.c
        with self._guard("store agent messages in"), self._writer.begin() as conn:
            jumped: dict[str, tuple[int, int]] = {}
            if max_seq_jump is not None:
                jumped = seq_jumps(
                    list(firsts.values()), _stored_max_seq(conn, firsts.values()), max_seq_jump
                )
                for msg_id in jumped:
                    del firsts[msg_id]
            # The key is (msg_id, ts_us) since revision 0009 (PostgreSQL partitions by
            # time): an id stored with another time would not conflict on insert, so
            # ids are looked up first, under a lock that keeps another writer from
            # storing one of them in between (SQLite: the write transaction itself).
            self._lock_agent_messages(conn)
            claimed: dict[str, str | None] = {}
            wanted = sorted(firsts)
            for start in range(0, len(wanted), KEYS_PER_QUERY):
                chunk = wanted[start : start + KEYS_PER_QUERY]
                stmt2 = build_select([t.msg_id, t.payload_sha256], where=[t.msg_id.in_(chunk)])
                claimed.update({row.msg_id: row.payload_sha256 for row in conn.execute(stmt2)})
            rows = [_agent_row(firsts[msg_id]) for msg_id in wanted if msg_id not in claimed]
            for start in range(0, len(rows), KEYS_PER_QUERY // 10):
                stmt = (
                    self._upsert(tables.agent_messages)
                    .values(rows[start : start + KEYS_PER_QUERY // 10])
                    .on_conflict_do_nothing(index_elements=[t.msg_id, t.ts_us])
                    .returning(t.msg_id)
                )
                claimed.update(dict.fromkeys(conn.scalars(stmt)))
            kept = [m for m in messages if m.msg_id not in jumped]
            statuses = _plan.classify_keyed([(m.msg_id, m.payload_sha256) for m in kept], claimed)
            letters = [
                _agent_conflict_letter(record)
                for record, status in zip(kept, statuses, strict=True)
                if status == "id_conflict"
            ]
            refused = [m for m in messages if m.msg_id in jumped]
            letters += [_seq_jump_letter(m, *jumped[m.msg_id], max_seq_jump or 0) for m in refused]
            if letters:
                conn.execute(sa.insert(tables.dead_letters), dead_letter_rows(letters))
        return AgentPut(statuses.count("stored"), statuses.count("duplicate"), len(refused))

    def redate_agent_messages(self, msg_ids: Sequence[str], *, since_us: int, received_at_us: int) -> int:
        """Move the receipt time of stored messages forward to ``received_at_us``; return how many moved.

        Only rows of ``msg_ids`` whose receipt time is at or after ``since_us``
        (the attempt that stored them; a row stored earlier by another call
        keeps its time) and before ``received_at_us``. Incremental monitoring
        reads by receipt time with a bounded overlap: ingest re-dates the rows
        of a store call that took longer than that bound to commit, so a
        monitor that read past their first receipt time reads them again as new.

        Raises:
            StoreError: the database failed (nothing moved).
        """
        t = tables.agent_messages.c
        wanted = sorted(set(msg_ids))
        moved = 0
        with self._guard("re-date agent messages in"), self._writer.begin() as conn:
            for start in range(0, len(wanted), KEYS_PER_QUERY):
                chunk = wanted[start : start + KEYS_PER_QUERY]
                stmt = (
                    sa.update(tables.agent_messages)
                    .where(
                        t.msg_id.in_(chunk),
                        t.received_at_us >= since_us,
                        t.received_at_us < received_at_us,
                    )
                    .values(received_at_us=received_at_us)
                )
                moved += conn.execute(stmt).rowcount
        return moved

    def agent_messages(
        self,
        *,
        device_id: str | None = None,
        kind: str | None = None,
        since_us: int | None = None,
        limit: int | None = None,
    ) -> list[AgentRecord]:
        """Return stored agent messages ordered by device, then time (``ts_us``), then ``seq``.

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
            record_columns(),
            where=[eq(t.device_id, device_id), eq(t.kind, kind), at_least(t.ts_us, since_us)],
            # newest by time, seq breaking ties: a forged huge seq cannot shadow newer messages
            order_by=[t.device_id, t.ts_us, t.seq, t.msg_id],
            last=limit,
        )
        return [agent_record(row) for row in rows]


def record_columns() -> list[sa.Column[Any]]:
    """The ``agent_messages`` columns an :class:`AgentRecord` is made of, in :func:`agent_record`'s order."""
    t = tables.agent_messages.c
    return [
        t.msg_id,
        t.device_id,
        t.site,
        t.kind,
        t.ts_us,
        t.agent_version,
        t.body,
        t.payload_sha256,
        t.received_at_us,
    ]


def agent_record(row: Sequence[Any]) -> AgentRecord:
    """The record of a row selected with :func:`record_columns` (every agent message reader uses it)."""
    msg_id, device_id, site, kind, ts_us, agent_version, body, payload_sha256, received_at_us = row
    return AgentRecord(
        msg_id, device_id, site, kind, int(ts_us), agent_version, body, payload_sha256, int(received_at_us)
    )


def _stored_max_seq(conn: Connection, records: Iterable[AgentRecord]) -> dict[str, int]:
    """The highest stored seq of each of the records' devices (read in ``conn``'s transaction)."""
    t = tables.agent_messages.c
    wanted = sorted({r.device_id for r in records})
    found: dict[str, int] = {}
    for start in range(0, len(wanted), KEYS_PER_QUERY):
        chunk = wanted[start : start + KEYS_PER_QUERY]
        stmt = sa.select(t.device_id, sa.func.max(t.seq)).where(t.device_id.in_(chunk)).group_by(t.device_id)
        found.update({device: int(top) for device, top in conn.execute(stmt)})
    return found
