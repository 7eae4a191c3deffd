"""The audit trail in the SQL store: append-only, hash-chained, signed, one appender at a time.

Owns :class:`SqlAudit` (a mixin of :class:`~pumpops.store._sql.SqlTelemetryStore`):
the field checks, the append (tail read, signature and insert under the
engine's audit lock, in one write transaction; then the new head anchored in
the workspace's anchors file) and the reads. The one path every audit entry
takes: a store opened with an :class:`~pumpops.audit.AuditSigner`
(``open_store(url, audit_signer=...)``, which every hub process does through
``pumpops.audit.workspace_signer``) signs each entry it appends; one opened
without appends unsigned entries, which ``pumpops audit verify`` fails once a
signed entry precedes them. The chain itself (hashes, canonical JSON,
signatures, verification) is :mod:`pumpops.audit`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from pumpops.audit import GENESIS_HASH, AuditEntry, canonical_json, check_fields, entry_hash
from pumpops.errors import InputError
from pumpops.store import _tables as tables
from pumpops.store._core import SqlCore, at_least, build_select, eq, now_us

if TYPE_CHECKING:
    from pumpops.audit import AuditSigner


class SqlAudit(SqlCore):
    """:class:`~pumpops.store.AuditStore` on SQL."""

    #: Signs every appended entry (None: entries are appended unsigned). Set once at open.
    _audit_signer: AuditSigner | None = None
    #: The first signed seq of the chain, once known (a store reads it once).
    _audit_signed_from: int | None = None

    def _use_audit_signer(self, signer: AuditSigner | None) -> None:
        """Sign every entry appended from now on with ``signer`` (``open_store`` calls this)."""
        self._audit_signer = signer

    def append_audit(
        self,
        actor: str,
        action: str,
        subject: str,
        payload: Mapping[str, Any] | None = None,
        *,
        time_us: int | None = None,
    ) -> AuditEntry:
        """Append one entry to the audit chain and return it (hash and signature included).

        The fields are checked first; then the tail is read and the next entry
        signed (if the store has an audit signer) and inserted in one write
        transaction holding the audit lock, so concurrent writers cannot fork
        the chain. After the commit, the new head is signed into the
        workspace's anchors file. There is no way to update or delete an entry.

        Args:
            actor: who did it; never empty.
            action: what was done (``model.promoted``).
            subject: what it was done to (``pump-model/7``).
            payload: details, a JSON object (string keys, JSON values).
            time_us: when, microseconds since the Unix epoch (UTC); default: now.

        Raises:
            ConfigError: ``actor`` is empty.
            InputError: ``action``/``subject`` is empty or ``payload`` is not a JSON object.
            StoreError: the database failed; nothing was appended.
            ConfigError: the entry was appended but its head could not be
                written to the anchors file.
        """
        check_fields(actor, action, subject)
        payload_json = canonical_json(dict(payload or {}))
        if time_us is not None and (type(time_us) is not int or time_us < 0):
            raise InputError(f"audit time_us must be a non-negative integer, not {time_us!r}")
        t = tables.audit.c
        with self._guard("append to the audit trail of"), self._writer.begin() as conn:
            self._lock_audit(conn)
            tail = conn.execute(build_select([t.seq, t.hash], order_by=[t.seq], last=1)).first()
            seq, prev_hash = (1, GENESIS_HASH) if tail is None else (int(tail[0]) + 1, str(tail[1]))
            when = now_us() if time_us is None else time_us
            digest = entry_hash(
                seq=seq,
                time_us=when,
                actor=actor,
                action=action,
                subject=subject,
                payload_json=payload_json,
                prev_hash=prev_hash,
            )
            entry = AuditEntry(seq, when, actor, action, subject, payload_json, prev_hash, digest)
            signer = self._audit_signer
            if signer is not None:
                entry = signer.sign(entry)
                if self._audit_signed_from is None:
                    first = conn.execute(
                        sa.select(sa.func.min(t.seq)).where(t.signature.is_not(None))
                    ).scalar()
                    self._audit_signed_from = seq if first is None else int(first)
            conn.execute(
                sa.insert(tables.audit).values(
                    seq=seq,
                    time_us=when,
                    actor=actor,
                    action=action,
                    subject=subject,
                    payload=payload_json,
                    prev_hash=prev_hash,
                    hash=digest,
                    signature=entry.signature,
                )
            )
        if signer is not None:
            signer.anchor(entry, signed_from=self._audit_signed_from, time_us=now_us())
        return entry

    def audit_entries(
        self,
        *,
        since_seq: int | None = None,
        since_us: int | None = None,
        subject: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Return audit entries in sequence order, as stored (tampering included: verify them).

        Read in one snapshot. Arguments as in :meth:`pumpops.store.AuditStore.audit_entries`.

        Raises:
            InputError: ``limit`` is negative.
            StoreError: the database failed.
        """
        if limit is not None and limit < 0:
            raise InputError(f"limit must be 0 or more, not {limit}")
        t = tables.audit.c
        rows = self._select(
            "read the audit trail of",
            [t.seq, t.time_us, t.actor, t.action, t.subject, t.payload, t.prev_hash, t.hash, t.signature],
            where=[at_least(t.seq, since_seq), at_least(t.time_us, since_us), eq(t.subject, subject)],
            order_by=[t.seq],
            last=limit,
            snapshot=True,
        )
        return [AuditEntry(*row) for row in rows]
