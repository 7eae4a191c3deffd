"""The device outbox: a durable, bounded SQLite queue of messages waiting for the hub.

Owns: message ids (``<device_id>:<seq>``, ``seq`` monotonic and never reused,
so the hub can store each message once), the byte bound and its drop order,
the per-kind drop counters, and forwarding in order.

Drop order (when ``max_outbox_bytes`` of payload would be exceeded): the oldest
``summary`` first, then the oldest ``drift``, then the oldest ``state``, and
``alarm`` last. The message being put is a candidate like the others (the
newest of its kind), so a summary never pushes out an alarm. Nothing is
dropped silently: :meth:`Outbox.dropped` counts drops per kind, persisted in
the same file. The decision is the pure function :func:`choose_drops`; the
class is the thin SQLite shell around it.

May import: the standard library and ``pumpops.errors`` only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, get_args

from pumpops.errors import ConfigError, InputError, StoreError

__all__ = [
    "OUTBOX_DROP_ORDER",
    "OUTBOX_KINDS",
    "Outbox",
    "OutboxEntry",
    "OutboxMessage",
    "choose_drops",
]

Kind = Literal["alarm", "summary", "drift", "state"]
#: The message kinds the outbox accepts.
OUTBOX_KINDS: Final[tuple[str, ...]] = get_args(Kind)
#: Which kind is dropped first when the outbox is full (first = dropped first).
OUTBOX_DROP_ORDER: Final[tuple[str, ...]] = ("summary", "drift", "state", "alarm")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_kind_seq ON messages (kind, seq);
"""


@dataclass(frozen=True)
class OutboxEntry:
    """What the drop decision needs to know about one queued message.

    Attributes:
        id: the entry's identity (the sequence number in the outbox).
        kind: ``alarm``, ``summary``, ``drift`` or ``state``.
        size: payload bytes.
    """

    id: int
    kind: str
    size: int


@dataclass(frozen=True)
class OutboxMessage:
    """A queued message, as :meth:`Outbox.peek` returns it.

    Attributes:
        msg_id: ``<device_id>:<seq>``, unique per device, the hub's idempotency key.
        seq: the monotonic sequence number.
        kind: the message kind.
        topic: the MQTT topic to publish on.
        payload: the bytes to publish.
    """

    msg_id: str
    seq: int
    kind: str
    topic: str
    payload: bytes


def choose_drops(entries: Sequence[OutboxEntry], incoming_size: int, max_bytes: int) -> list[int]:
    """Which entries to drop so that the queue plus an incoming message fits the bound.

    Entries are dropped by :data:`OUTBOX_DROP_ORDER` (all summaries before any drift
    report, ...), oldest (lowest id) first within a kind, and only as many as
    needed.

    Args:
        entries: the queued entries (any order).
        incoming_size: payload bytes about to be added (0 if already in ``entries``).
        max_bytes: the bound on the sum of payload bytes.

    Returns:
        The ids to drop, in the order chosen.

    Raises:
        InputError: ``incoming_size`` alone exceeds ``max_bytes``, or an entry has an unknown kind.

    >>> q = [OutboxEntry(1, "alarm", 40), OutboxEntry(2, "summary", 30), OutboxEntry(3, "summary", 30)]
    >>> choose_drops(q, 20, 100)
    [2]
    >>> choose_drops(q, 50, 100)
    [2, 3]
    >>> choose_drops(q, 10, 200)
    []
    """
    if incoming_size > max_bytes:
        raise InputError(f"a message of {incoming_size} bytes can never fit an outbox of {max_bytes} bytes")
    need = sum(e.size for e in entries) + incoming_size - max_bytes
    if need <= 0:
        return []
    rank = {kind: i for i, kind in enumerate(OUTBOX_DROP_ORDER)}
    for e in entries:
        if e.kind not in rank:
            raise InputError(f"unknown outbox kind {e.kind!r}; expected one of {', '.join(OUTBOX_KINDS)}")
    drops: list[int] = []
    for e in sorted(entries, key=lambda e: (rank[e.kind], e.id)):
        if need <= 0:
            break
        drops.append(e.id)
        need -= e.size
    return drops


class Outbox:
    """A durable, bounded queue of messages for the hub, in one SQLite file (WAL).

    Every change is one transaction, so a power cut or ``kill -9`` leaves the
    outbox as it was before or after a call, never in between.

    Args:
        path: the SQLite file (created if missing).
        device_id: this device; part of every message id. A file belongs to one device.
        max_outbox_bytes: bound on the sum of queued payload bytes.

    Raises:
        ConfigError: the bound is not positive, or the file belongs to another device.
        StoreError: the file cannot be opened as an outbox.

    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d, Outbox(pathlib.Path(d) / "o.db", "pump-7", 100) as box:
    ...     box.put("summary", "t/s", b"x" * 60)
    ...     box.put("alarm", "t/a", b"y" * 60)
    ...     [m.msg_id for m in box.peek(10)], box.dropped()["summary"]
    'pump-7:1'
    'pump-7:2'
    (['pump-7:2'], 1)
    """

    def __init__(self, path: Path | str, device_id: str, max_outbox_bytes: int) -> None:
        if max_outbox_bytes <= 0:
            raise ConfigError(f"max_outbox_bytes must be positive, got {max_outbox_bytes}")
        if not device_id or ":" in device_id:
            raise ConfigError(f"device id {device_id!r} must be non-empty and contain no ':'")
        self.device_id = device_id
        self.path = Path(path)
        self.max_outbox_bytes = max_outbox_bytes  # bytes of payload
        try:
            # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, one transaction per call.
            self._db = sqlite3.connect(str(path), isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed alarm survives a power cut, not only a process crash.
            self._db.execute("PRAGMA synchronous=FULL")
            # A small page cache (256 kB, not SQLite's 2 MB): the outbox is written and read
            # at the head and tail only, and the agent must fit a 64 MB device.
            self._db.execute("PRAGMA cache_size=-256")
            self._db.executescript(_SCHEMA)
            with self._tx():
                row = self._db.execute("SELECT value FROM meta WHERE key='device_id'").fetchone()
                if row is None:
                    self._db.execute("INSERT INTO meta VALUES ('device_id', ?)", (device_id,))
                elif row[0] != device_id:
                    raise ConfigError(f"outbox {path} belongs to device {row[0]!r}, not {device_id!r}")
                # The running byte total is kept in meta so a put costs O(log n);
                # recomputed once per open so it can never drift from the table.
                self._db.execute(
                    "INSERT OR REPLACE INTO meta VALUES "
                    "('bytes', (SELECT COALESCE(SUM(size), 0) FROM messages))"
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open outbox {path}: {exc}") from exc

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (everything is already committed)."""
        self._db.close()

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    def put(self, kind: str, topic: str, payload: bytes) -> str:
        """Queue a message, dropping others by the drop order if the bound requires it.

        Args:
            kind: ``alarm``, ``summary``, ``drift`` or ``state``.
            topic: the MQTT topic it goes to.
            payload: the bytes to publish.

        Returns:
            The message id ``<device_id>:<seq>``. If the outbox is full of
            higher-priority messages the new one may itself be dropped (and counted).

        Raises:
            InputError: unknown kind, or a payload larger than ``max_outbox_bytes``.
            StoreError: the file could not be written.
        """
        if kind not in OUTBOX_KINDS:
            raise InputError(f"unknown outbox kind {kind!r}; expected one of {', '.join(OUTBOX_KINDS)}")
        size = len(payload)
        if size > self.max_outbox_bytes:
            raise InputError(
                f"{kind} message of {size} bytes is larger than the whole outbox "
                f"(max_outbox_bytes={self.max_outbox_bytes}); refused"
            )
        try:
            with self._tx():
                cur = self._db.execute(
                    "INSERT INTO messages (kind, topic, payload, size) VALUES (?, ?, ?, ?)",
                    (kind, topic, bytes(payload), size),
                )
                seq = int(cur.lastrowid or 0)
                total = self._add_bytes(size)
                if total > self.max_outbox_bytes:
                    candidates = self._drop_candidates(total - self.max_outbox_bytes)
                    rest = total - sum(e.size for e in candidates)
                    kind_of = {e.id: e.kind for e in candidates}
                    drops = choose_drops(candidates, rest, self.max_outbox_bytes)
                    freed = 0
                    for d in drops:
                        freed += self._db.execute(
                            "DELETE FROM messages WHERE seq = ? RETURNING size", (d,)
                        ).fetchall()[0][0]
                        self._db.execute(
                            "INSERT INTO meta VALUES (?, '1') "
                            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
                            (f"dropped.{kind_of[d]}",),
                        )
                    self._add_bytes(-freed)
        except sqlite3.Error as exc:
            raise StoreError(f"outbox put failed: {exc}") from exc
        return self._msg_id(seq)

    def _add_bytes(self, delta: int) -> int:
        rows = self._db.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key = 'bytes' RETURNING value",
            (delta,),
        ).fetchall()
        return int(rows[0][0])

    def _drop_candidates(self, need: int) -> list[OutboxEntry]:
        """The oldest entries of each kind, in drop order, until they cover ``need`` bytes.

        :func:`choose_drops` picks from these exactly what it would pick from the
        whole table, without reading the whole table on every put.
        """
        found: list[OutboxEntry] = []
        covered = 0
        for kind in OUTBOX_DROP_ORDER:
            cur = self._db.execute("SELECT seq, size FROM messages WHERE kind = ? ORDER BY seq", (kind,))
            for seq, size in cur:
                if covered >= need:
                    break
                found.append(OutboxEntry(int(seq), kind, int(size)))
                covered += int(size)
            cur.close()
            if covered >= need:
                break
        return found

    def _msg_id(self, seq: int) -> str:
        return f"{self.device_id}:{seq}"

    def reserve_msg_id(self) -> str:
        """A message id no queued or future message will use (for a message sent outside the outbox).

        The MQTT last will is published by the broker, not by :meth:`forward`, but the
        hub stores messages by id, so it needs its own number from the same sequence.
        Safe from any thread: it opens its own short connection to the file.

        Raises:
            StoreError: the file could not be written.
        """
        try:
            db = sqlite3.connect(str(self.path), isolation_level=None, timeout=10.0)
            try:
                with _Transaction(db):
                    db.execute(
                        "INSERT INTO sqlite_sequence (name, seq) SELECT 'messages', 0 "
                        "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'messages')"
                    )
                    seq = db.execute(
                        "UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'messages' RETURNING seq"
                    ).fetchall()[0][0]
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise StoreError(f"outbox: cannot reserve a message id: {exc}") from exc
        return self._msg_id(int(seq))

    def peek(self, n: int) -> list[OutboxMessage]:
        """The ``n`` oldest queued messages, oldest first (nothing is removed)."""
        rows = self._db.execute(
            "SELECT seq, kind, topic, payload FROM messages ORDER BY seq LIMIT ?", (max(0, n),)
        ).fetchall()
        return [OutboxMessage(self._msg_id(int(s)), int(s), str(k), str(t), bytes(p)) for s, k, t, p in rows]

    def ack(self, msg_ids: Iterable[str]) -> int:
        """Remove forwarded messages; unknown or already acknowledged ids are ignored.

        Returns:
            How many messages were removed.

        Raises:
            InputError: an id is not one of this device's message ids.
        """
        seqs: list[tuple[int]] = []
        prefix = f"{self.device_id}:"
        for msg_id in msg_ids:
            if not msg_id.startswith(prefix) or not msg_id[len(prefix) :].isdigit():
                raise InputError(f"{msg_id!r} is not a message id of device {self.device_id!r}")
            seqs.append((int(msg_id[len(prefix) :]),))
        try:
            with self._tx():
                removed = freed = 0
                for (seq,) in seqs:
                    row = self._db.execute(
                        "DELETE FROM messages WHERE seq = ? RETURNING size", (seq,)
                    ).fetchone()
                    if row is not None:
                        removed += 1
                        freed += int(row[0])
                if freed:
                    self._add_bytes(-freed)
                return removed
        except sqlite3.Error as exc:
            raise StoreError(f"outbox ack failed: {exc}") from exc

    def forward(self, publish: Callable[[str, bytes, str], bool], batch: int = 100) -> int:
        """Send queued messages in order, acknowledging only what ``publish`` confirmed.

        Stops at the first message ``publish`` does not confirm (returns False
        or raises), so the hub receives messages in order; it is retried next time.

        Args:
            publish: ``publish(topic, payload, msg_id) -> bool``, True once the broker took it.
            batch: messages read from the file at a time.

        Returns:
            How many messages were forwarded and removed.
        """
        sent = 0
        while True:
            done: list[str] = []
            stopped = False
            try:
                for msg in self.peek(batch):
                    if not publish(msg.topic, msg.payload, msg.msg_id):
                        stopped = True
                        break
                    done.append(msg.msg_id)
            finally:
                # Ack what was confirmed even if publish raised.
                sent += self.ack(done)
            if stopped or not done:
                return sent

    def depth(self) -> tuple[int, int]:
        """(messages, payload bytes) queued now."""
        n, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages").fetchone()
        return int(n), int(size)

    def dropped(self) -> dict[str, int]:
        """Messages dropped to respect the bound, per kind, since the file was created."""
        rows = self._db.execute("SELECT key, value FROM meta WHERE key LIKE 'dropped.%'").fetchall()
        counts = dict.fromkeys(OUTBOX_KINDS, 0)
        for key, value in rows:
            counts[str(key).removeprefix("dropped.")] = int(value)
        return counts


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
