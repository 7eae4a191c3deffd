"""API tokens, alarm acknowledgements and the HTTP API's fleet-wide reads in the SQL store (revision 0007).

Owns :class:`SqlApiTokens` (a mixin of :class:`~pumpops.store._sql.SqlTelemetryStore`)
and its records: tokens kept as the SHA-256 of the secret (looked up by it,
revoked by id or owner name, never deleted), an operator's acknowledgement of
an alarm (the first kept), alarms newest first across the fleet, agent
messages received since a cursor (the event stream's poll) and grouped counts
read at scrape time by ``/metrics``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa

from pumpops.errors import ConfigError, InputError
from pumpops.store import _tables as tables
from pumpops.store._core import KEYS_PER_QUERY, SqlCore, at_least, eq, now_us

#: The roles a token may have, least to most powerful.
API_ROLES: Final = ("viewer", "operator", "admin")

_TOKEN_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class ApiTokenRecord:
    """One API token as the store keeps it (never the secret itself).

    Attributes:
        token_id: its public id (what ``pumpops tokens list`` shows and ``revoke`` takes).
        name: its owner: the actor of every audit entry its requests write.
        role: ``viewer``, ``operator`` or ``admin``.
        token_sha256: SHA-256 (hex) of the secret token.
        created_at_us: when it was made, microseconds since the epoch (UTC).
        created_by: who made it.
        expires_at_us: when it stops working; None: never.
        revoked_at_us: when it was revoked; None while it is not.
    """

    token_id: str
    name: str
    role: str
    token_sha256: str
    created_at_us: int
    created_by: str
    expires_at_us: int | None
    revoked_at_us: int | None

    def refusal(self, at_us: int) -> str | None:
        """Why the token is refused at ``at_us`` (revoked, expired), or None if it is valid."""
        if self.revoked_at_us is not None:
            return "the token was revoked"
        if self.expires_at_us is not None and at_us >= self.expires_at_us:
            return "the token has expired"
        return None


@dataclass(frozen=True, slots=True)
class AlarmAckRecord:
    """An operator's acknowledgement of an alarm (the first one; the audit trail keeps them all).

    Attributes:
        alarm_id: the alarm, ``<device_id>:<started_ms>``; the key.
        device_id: the alarm id before its last ``:``.
        actor: who acknowledged it.
        note: free text; may be empty.
        at_us: when, microseconds since the epoch (UTC).
    """

    alarm_id: str
    device_id: str
    actor: str
    note: str
    at_us: int


def _token_record(row: Any) -> ApiTokenRecord:
    return ApiTokenRecord(
        token_id=row.token_id,
        name=row.name,
        role=row.role,
        token_sha256=row.token_sha256,
        created_at_us=int(row.created_at_us),
        created_by=row.created_by,
        expires_at_us=None if row.expires_at_us is None else int(row.expires_at_us),
        revoked_at_us=None if row.revoked_at_us is None else int(row.revoked_at_us),
    )


def _ack_record(row: Any) -> AlarmAckRecord:
    return AlarmAckRecord(
        alarm_id=row.alarm_id, device_id=row.device_id, actor=row.actor, note=row.note, at_us=int(row.at_us)
    )


def check_token_fields(token_id: str, *, name: str, role: str, token_sha256: str, created_by: str) -> None:
    """Check a token's fields before it is stored.

    Raises:
        InputError: the id, name, role or hash is malformed (the message says how).
        ConfigError: ``created_by`` is empty.
    """
    if not _TOKEN_ID.fullmatch(token_id):
        raise InputError(f"token id {token_id!r}: 1 to 32 letters, digits, '_' or '-'")
    if not _NAME.fullmatch(name):
        raise InputError(
            f"token name {name!r}: 1 to 64 characters, letters, digits and _.@+- "
            "(starting with a letter or digit)"
        )
    if role not in API_ROLES:
        raise InputError(f"token role {role!r}: must be one of {', '.join(API_ROLES)}")
    if not _SHA256.fullmatch(token_sha256):
        raise InputError("token hash: 64 lower-case hex digits (SHA-256)")
    if not created_by.strip():
        raise ConfigError("a token needs the actor who created it")


class SqlApiTokens(SqlCore):
    """:class:`~pumpops.store.ApiTokenStore` on SQL."""

    # -- tokens -------------------------------------------------------------------------------

    def add_api_token(
        self,
        token_id: str,
        *,
        name: str,
        role: str,
        token_sha256: str,
        created_by: str,
        expires_at_us: int | None = None,
        time_us: int | None = None,
    ) -> ApiTokenRecord:
        """Store a new token (its hash); return it as stored.

        Raises:
            InputError: a field is malformed, or the id or hash is stored already.
            ConfigError: ``created_by`` is empty.
            StoreError: the database failed; nothing was stored.
        """
        check_token_fields(token_id, name=name, role=role, token_sha256=token_sha256, created_by=created_by)
        when = now_us() if time_us is None else time_us
        if expires_at_us is not None and expires_at_us <= when:
            raise InputError("token expiry: must be after its creation")
        stmt = (
            self._upsert(tables.api_tokens)
            .values(
                token_id=token_id,
                name=name,
                role=role,
                token_sha256=token_sha256,
                created_at_us=when,
                created_by=created_by,
                expires_at_us=expires_at_us,
                revoked_at_us=None,
            )
            .on_conflict_do_nothing()
            .returning(*tables.api_tokens.c)
        )
        with self._guard("store an API token in"), self._writer.begin() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            raise InputError(f"token {token_id}: its id or secret is stored already; make another")
        return _token_record(row)

    def api_token_by_hash(self, token_sha256: str) -> ApiTokenRecord | None:
        """The token whose secret hashes to ``token_sha256`` (revoked and expired ones too), or None.

        Raises:
            StoreError: the database failed.
        """
        t = tables.api_tokens.c
        row = self._select_one(
            "read an API token of", tables.api_tokens, where=[t.token_sha256 == token_sha256]
        )
        return None if row is None else _token_record(row)

    def api_tokens(self, *, name: str | None = None) -> list[ApiTokenRecord]:
        """Every token (revoked and expired ones too) ordered by creation, or only one owner's.

        Raises:
            StoreError: the database failed.
        """
        t = tables.api_tokens.c
        rows = self._select(
            "read the API tokens of",
            tables.api_tokens,
            where=[eq(t.name, name)],
            order_by=[t.created_at_us, t.token_id],
        )
        return [_token_record(row) for row in rows]

    def revoke_api_tokens(
        self, *, token_id: str | None = None, name: str | None = None, time_us: int | None = None
    ) -> list[ApiTokenRecord]:
        """Revoke one token by id, or every token of an owner; return those revoked now.

        Tokens revoked already are left as they are (and not returned).

        Raises:
            InputError: neither or both of ``token_id`` and ``name`` are given.
            StoreError: the database failed; nothing was revoked.
        """
        if (token_id is None) == (name is None):
            raise InputError("revoke a token by its id or every token of a name: give exactly one")
        when = now_us() if time_us is None else time_us
        t = tables.api_tokens.c
        stmt = (
            sa.update(tables.api_tokens)
            .where(t.revoked_at_us.is_(None))
            .values(revoked_at_us=when)
            .returning(*tables.api_tokens.c)
        )
        stmt = stmt.where(t.token_id == token_id) if token_id is not None else stmt.where(t.name == name)
        with self._guard("revoke API tokens in"), self._writer.begin() as conn:
            rows = conn.execute(stmt).all()
        return sorted((_token_record(row) for row in rows), key=lambda r: (r.created_at_us, r.token_id))

    # -- alarm acknowledgements ---------------------------------------------------------------

    def put_alarm_ack(
        self, alarm_id: str, *, actor: str, note: str = "", time_us: int | None = None
    ) -> tuple[AlarmAckRecord, bool]:
        """Acknowledge an alarm unless it is acknowledged already; return the stored one and if it is new.

        Raises:
            InputError: ``alarm_id`` is not ``<device_id>:<started_ms>``.
            ConfigError: ``actor`` is empty.
            StoreError: the database failed; nothing was stored.
        """
        device_id, sep, started = alarm_id.rpartition(":")
        if not sep or not device_id or not started.isdigit() or len(alarm_id) > 128:
            raise InputError(f"alarm id {alarm_id!r}: must be <device_id>:<started_ms>")
        if not actor.strip():
            raise ConfigError("an acknowledgement needs an actor")
        when = now_us() if time_us is None else time_us
        table = tables.alarm_acks
        stmt = (
            self._upsert(table)
            .values(alarm_id=alarm_id, device_id=device_id, actor=actor, note=note, at_us=when)
            .on_conflict_do_nothing(index_elements=[table.c.alarm_id])
            .returning(table.c.alarm_id)
        )
        with self._guard("acknowledge an alarm in"), self._writer.begin() as conn:
            new = conn.execute(stmt).first() is not None
            row = conn.execute(sa.select(table).where(table.c.alarm_id == alarm_id)).one()
        return _ack_record(row), new

    def alarm_acks(self, alarm_ids: Sequence[str]) -> dict[str, AlarmAckRecord]:
        """The acknowledgements of these alarms, by alarm id (alarms not acknowledged are absent).

        Raises:
            StoreError: the database failed.
        """
        table = tables.alarm_acks
        out: dict[str, AlarmAckRecord] = {}
        ids = sorted(set(alarm_ids))
        for start in range(0, len(ids), KEYS_PER_QUERY):
            rows = self._select(
                "read alarm acknowledgements of",
                table,
                where=[table.c.alarm_id.in_(ids[start : start + KEYS_PER_QUERY])],
            )
            out.update((row.alarm_id, _ack_record(row)) for row in rows)
        return out

    # -- fleet-wide reads for the API ---------------------------------------------------------

    def alarm_messages(
        self,
        *,
        device_id: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        limit: int = 100,
        offset: int = 0,
        before: tuple[int, str] | None = None,
    ) -> list[Any]:
        """Alarm messages newest first (``ts_us``, then ``msg_id``), a page of ``limit`` after ``offset``.

        Returns the rows (``msg_id``, ``device_id``, ``site``, ``ts_us``,
        ``received_at_us``, ``body``); the caller parses ``body``. ``before``
        (``(ts_us, msg_id)`` of the previous page's last row) starts the page
        right after that row: paging by it costs the same at any depth, unlike
        ``offset``.

        Raises:
            InputError: ``limit`` or ``offset`` is negative.
            StoreError: the database failed.
        """
        if limit < 0 or offset < 0:
            raise InputError("limit and offset must not be negative")
        t = tables.agent_messages.c
        stmt = (
            sa.select(t.msg_id, t.device_id, t.site, t.ts_us, t.received_at_us, t.body)
            .where(t.kind == "alarm")
            .order_by(t.ts_us.desc(), t.msg_id.desc())
            .limit(limit)
            .offset(offset)
        )
        for condition in (eq(t.device_id, device_id), at_least(t.ts_us, since_us)):
            if condition is not None:
                stmt = stmt.where(condition)
        if until_us is not None:
            stmt = stmt.where(t.ts_us < until_us)
        if before is not None:
            # ts_us <= X first: the part an index on (kind, ts_us) can seek by
            stmt = stmt.where(t.ts_us <= before[0], sa.or_(t.ts_us < before[0], t.msg_id < before[1]))
        with self._guard("read alarms of"), self._engine.connect() as conn:
            return list(conn.execute(stmt).all())

    def agent_messages_received(self, *, after_us: int, kinds: Sequence[str], limit: int = 500) -> list[Any]:
        """Agent messages of ``kinds`` received after ``after_us``, oldest receipt first (the stream's poll).

        Returns rows (``msg_id``, ``device_id``, ``site``, ``kind``, ``ts_us``, ``received_at_us``, ``body``).

        Raises:
            StoreError: the database failed.
        """
        t = tables.agent_messages.c
        stmt = (
            sa.select(t.msg_id, t.device_id, t.site, t.kind, t.ts_us, t.received_at_us, t.body)
            .where(t.kind.in_(list(kinds)), t.received_at_us > after_us)
            .order_by(t.received_at_us, t.msg_id)
            .limit(limit)
        )
        with self._guard("read new agent messages of"), self._engine.connect() as conn:
            return list(conn.execute(stmt).all())

    def grouped_counts(self) -> dict[str, dict[str, int]]:
        """Row counts by group for ``/metrics``, read in one snapshot.

        Keys: ``dead_letters`` (by reason), ``rollouts`` (by status),
        ``agent_messages`` (by kind), ``audit_retrain`` (retrain audit entries
        by action), ``fleet_alerts_open`` (by kind), ``api_tokens_active`` (by role).

        Raises:
            StoreError: the database failed.
        """
        dl, ro, am, au = (
            tables.dead_letters.c,
            tables.rollouts.c,
            tables.agent_messages.c,
            tables.audit.c,
        )
        fa, tk = tables.fleet_alerts.c, tables.api_tokens.c
        now = now_us()
        queries: dict[str, sa.Select[Any]] = {
            "dead_letters": sa.select(dl.reason, sa.func.count()).group_by(dl.reason),
            "rollouts": sa.select(ro.status, sa.func.count()).group_by(ro.status),
            "agent_messages": sa.select(am.kind, sa.func.count()).group_by(am.kind),
            "audit_retrain": sa.select(au.action, sa.func.count())
            .where(au.action.like("retrain.%"))
            .group_by(au.action),
            "fleet_alerts_open": sa.select(fa.kind, sa.func.count())
            .where(fa.closed_at_us.is_(None))
            .group_by(fa.kind),
            "api_tokens_active": sa.select(tk.role, sa.func.count())
            .where(tk.revoked_at_us.is_(None), sa.or_(tk.expires_at_us.is_(None), tk.expires_at_us > now))
            .group_by(tk.role),
        }
        with self._snapshot("count rows by group in") as conn:
            return {
                name: {str(key): int(count) for key, count in conn.execute(query).all()}
                for name, query in queries.items()
            }
