"""Dead letters in the SQL store: rejected messages, each kept as a fact.

Owns :class:`SqlDeadLetters` (a mixin of :class:`~pumpops.store._sql.SqlTelemetryStore`)
and :func:`dead_letter_rows`, which the agent messages' writer also uses for
id conflicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from pumpops.errors import InputError
from pumpops.schema import DeadLetter
from pumpops.store import _plan
from pumpops.store import _tables as tables
from pumpops.store._core import SqlCore, eq


def dead_letter_rows(letters: Sequence[DeadLetter]) -> list[dict[str, Any]]:
    """The ``dead_letters`` rows of ``letters``: payload byte for byte, text made storable."""
    clean = _plan.clean_text
    return [
        {
            "received_at_us": int(letter.received_at_us),
            "topic": clean(letter.topic),
            "device_id": None if letter.device_id is None else clean(letter.device_id),
            "msg_id": None if letter.msg_id is None else clean(letter.msg_id),
            "reason": clean(letter.reason),
            "detail": clean(letter.detail),
            "payload": bytes(letter.payload),
        }
        for letter in letters
    ]


class SqlDeadLetters(SqlCore):
    """:class:`~pumpops.store.DeadLetterStore` on SQL."""

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Store dead letters (never deduplicated: each rejection is a fact).

        The payload is stored byte for byte. Text fields that an engine cannot
        hold (NUL characters, lone surrogates) are stored with visible escapes.

        Raises:
            StoreError: the database failed; none of them was stored.
        """
        if not letters:
            return
        rows = dead_letter_rows(letters)
        with self._guard("write dead letters to"), self._writer.begin() as conn:
            conn.execute(sa.insert(tables.dead_letters), rows)

    def dead_letters(self, *, limit: int = 100, reason: str | None = None) -> list[DeadLetter]:
        """Return the newest dead letters first, optionally of one reason.

        Raises:
            InputError: ``limit`` is negative.
            StoreError: the database failed.
        """
        if limit < 0:
            raise InputError(f"limit must be 0 or more, not {limit}")
        t = tables.dead_letters.c
        rows = self._select(
            "read dead letters from",
            [t.topic, t.payload, t.reason, t.detail, t.received_at_us, t.device_id, t.msg_id],
            where=[eq(t.reason, reason)],
            order_by=[t.received_at_us.desc(), t.id.desc()],
            limit=limit,
        )
        return [
            DeadLetter(
                topic=topic,
                payload=bytes(payload),
                reason=reason_,
                detail=detail,
                received_at_us=received,
                device_id=device_id,
                msg_id=msg_id,
            )
            for topic, payload, reason_, detail, received, device_id, msg_id in rows
        ]
