r"""Signed audit entries and signed heads (anchors), and the verification that checks both. No I/O.

What is signed (an auditor re-implements this with any Ed25519 library)
-----------------------------------------------------------------------
- **An entry**: Ed25519 over ``b"pumpops-audit-entry-v1\n"`` followed by the
  entry's canonical bytes (:func:`~pumpops.audit.canonical_bytes`, which hold
  ``seq`` and ``prev_hash``: the signature covers the link). Stored with the
  entry as ``<key id>:<signature hex>``; the key id is the first 16 hex digits
  of the SHA-256 of the raw 32-byte public key.
- **A head** (an anchor): Ed25519 over ``b"pumpops-audit-head-v1\n"`` followed
  by the canonical JSON of ``{"hash", "key_id", "seq", "signed_from",
  "time_us"}``: the chain had entry ``seq`` with ``hash`` at ``time_us``, and
  every entry from ``signed_from`` on was signed (null: none yet). Written as
  that object plus ``"signature"``.

Verification (:func:`verify_trail`) first walks the chain (:func:`~pumpops.audit.verify_chain`),
then names the first entry, by sequence number, that is

- ``unsigned``: no signature after a signed entry, or at or after an anchor's
  ``signed_from`` (someone without the key appended it, or stripped signatures);
- ``forged``: a signature by another key, or one that does not match the entry;
- ``unverified``: signed, but no key is at hand to check it;
- ``truncated``: the chain ends before an anchor's ``seq`` (the tail was cut);
- ``rehashed``: the entry at an anchor's ``seq`` has another hash (rewritten).

Unsigned entries before the first signed one are *legacy* (written before the
key existed): counted in the report, not failed. An anchor whose own signature
is bad or by another key fails verification as ``forged`` at its ``seq``.
May import: errors, this package's chain and keys, json, datetime.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from pumpops.audit._chain import (
    GENESIS_HASH,
    AuditEntry,
    TamperKind,
    VerifyReport,
    canonical_bytes,
    canonical_json,
    verify_chain,
)
from pumpops.audit._keys import AuditKey
from pumpops.errors import InputError

__all__ = [
    "Anchor",
    "current_anchor",
    "entry_message",
    "head_anchor",
    "sign_entry",
    "verify_trail",
]

ENTRY_CONTEXT = b"pumpops-audit-entry-v1\n"
HEAD_CONTEXT = b"pumpops-audit-head-v1\n"
_HEAD_FIELDS = ("hash", "key_id", "seq", "signed_from", "time_us")


def entry_message(entry: AuditEntry) -> bytes:
    """The bytes an entry's signature covers: the context, then its canonical bytes."""
    return ENTRY_CONTEXT + canonical_bytes(
        seq=entry.seq,
        time_us=entry.time_us,
        actor=entry.actor,
        action=entry.action,
        subject=entry.subject,
        payload_json=entry.payload_json,
        prev_hash=entry.prev_hash,
    )


def sign_entry(key: AuditKey, entry: AuditEntry) -> AuditEntry:
    """The entry with its signature (``<key id>:<hex>``) by ``key``.

    >>> from pumpops.audit import chain_entry
    >>> key = AuditKey.generate()
    >>> signed = sign_entry(key, chain_entry(1, 5, "ann", "m.promoted", "m/1", {}, GENESIS_HASH))
    >>> signed.signature.startswith(key.key_id + ":"), verify_trail([signed], key).ok
    (True, True)
    """
    return replace(entry, signature=f"{key.key_id}:{key.sign(entry_message(entry))}")


@dataclass(frozen=True)
class Anchor:
    """A signed head: the chain had entry ``seq`` with ``hash`` at ``time_us``.

    Attributes:
        seq: the head's sequence number (0: the chain was empty).
        hash: the head's hash (:data:`~pumpops.audit.GENESIS_HASH` if empty).
        signed_from: every entry from this seq on was signed (None: none was yet).
        time_us: when the head was signed, microseconds since the Unix epoch (UTC).
        key_id: the audit key that signed it.
        signature: Ed25519 over :meth:`message`, hex.
        where: where it was found, for messages (not signed).
    """

    seq: int
    hash: str
    signed_from: int | None
    time_us: int
    key_id: str
    signature: str
    where: str = ""

    def message(self) -> bytes:
        """The bytes the signature covers."""
        body = {"hash": self.hash, "key_id": self.key_id, "seq": self.seq}
        body |= {"signed_from": self.signed_from, "time_us": self.time_us}
        return HEAD_CONTEXT + canonical_json(body).encode("utf-8")

    def to_dict(self) -> dict[str, Any]:
        """The anchor as written (a JSON object: the signed fields and ``signature``)."""
        return {name: getattr(self, name) for name in (*_HEAD_FIELDS, "signature")}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Anchor:
        """Read an anchor written by :meth:`to_dict`; ``where`` names its place in messages.

        Raises:
            InputError: ``data`` is not an anchor (missing or mistyped fields).
        """
        if not isinstance(data, Mapping) or set(data) != {*_HEAD_FIELDS, "signature"}:
            fields = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise InputError(f"{where}: not a signed audit head (fields {fields})")
        ints = [data["seq"], data["time_us"], *([] if data["signed_from"] is None else [data["signed_from"]])]
        strings = [data["hash"], data["key_id"], data["signature"]]
        if any(type(n) is not int or n < 0 for n in ints) or not all(isinstance(s, str) for s in strings):
            raise InputError(f"{where}: a signed audit head with mistyped fields: {json.dumps(data)[:200]}")
        return cls(
            data["seq"],
            data["hash"],
            data["signed_from"],
            data["time_us"],
            data["key_id"],
            data["signature"],
            where,
        )

    def problem(self, key: AuditKey) -> str | None:
        """Why ``key`` does not vouch for this anchor, or None if it does."""
        if self.key_id != key.key_id:
            return f"the head in {self.where} is signed by another key ({self.key_id}, not {key.key_id})"
        if not key.verify(self.message(), self.signature):
            return f"the head in {self.where} does not match its signature (edited)"
        return None


def head_anchor(entries: Sequence[AuditEntry], key: AuditKey, *, time_us: int, where: str = "") -> Anchor:
    """Sign the head of ``entries`` (the whole chain): the last entry that verifies with ``key``.

    An entry that does not verify (unsigned after signed, forged, ...) and
    everything after it is left out: an anchor never vouches for it.
    """
    report = verify_trail(entries, key)
    good = list(entries if report.ok else entries[: report.bad_index or 0])
    signed = [e.seq for e in good if e.signature is not None]
    head = good[-1] if good else None
    anchor = Anchor(
        seq=head.seq if head else 0,
        hash=head.hash if head else GENESIS_HASH,
        signed_from=signed[0] if signed else None,
        time_us=time_us,
        key_id=key.key_id,
        signature="",
        where=where,
    )
    return replace(anchor, signature=key.sign(anchor.message()))


class _AuditReader(Protocol):
    """What :func:`current_anchor` reads of a store (audit sits below the store: no import)."""

    def audit_entries(self) -> list[AuditEntry]: ...


def current_anchor(store: _AuditReader, key: AuditKey, *, time_us: int | None = None) -> dict[str, Any]:
    """The store's current head signed with ``key``, as a JSON object (e.g. for TUF custom metadata).

    Keys: ``seq``, ``hash``, ``signed_from``, ``time_us`` (default: now),
    ``key_id``, ``signature`` (see the module docstring). ``pumpops audit
    verify`` checks every such head it finds against the chain.
    """
    when = time.time_ns() // 1000 if time_us is None else time_us
    return head_anchor(store.audit_entries(), key, time_us=when).to_dict()


_Finding = tuple[int, int, TamperKind, str]  # (seq, index, kind, detail)


def verify_trail(
    entries: Sequence[AuditEntry],
    key: AuditKey | None,
    anchors: Sequence[Anchor] = (),
    *,
    first_seq: int | None = 1,
    first_prev_hash: str | None = GENESIS_HASH,
    expected_head: str | None = None,
) -> VerifyReport:
    """Walk the chain, then check its signatures with ``key`` and every anchor (see the module docstring).

    Args:
        entries: the chain (or a segment: see :func:`~pumpops.audit.verify_chain`).
        key: the hub's audit key (its public part suffices); None: signatures
            cannot be checked, so a signed entry or an anchor fails as ``unverified``.
        anchors: signed heads found outside the database.
        first_seq: as in :func:`~pumpops.audit.verify_chain`.
        first_prev_hash: as in :func:`~pumpops.audit.verify_chain`.
        expected_head: as in :func:`~pumpops.audit.verify_chain`.

    Returns:
        The report: the first bad entry by sequence number, or OK with the
        counts of signed and legacy entries and of anchors matched.
    """
    report = verify_chain(
        entries, first_seq=first_seq, first_prev_hash=first_prev_hash, expected_head=expected_head
    )
    if not report.ok:
        return report
    findings: list[_Finding] = []
    vouched = [a for a in anchors if key is not None and a.problem(key) is None]
    for anchor in anchors:
        if key is None:
            findings.append((anchor.seq, _index(entries, anchor.seq), "unverified", _NO_KEY))
        elif (why := anchor.problem(key)) is not None:
            findings.append((anchor.seq, _index(entries, anchor.seq), "forged", why))
    findings.extend(_signature_findings(entries, key, vouched))
    findings.extend(_anchor_findings(entries, vouched))
    signed = sum(1 for e in entries if e.signature is not None)
    legacy = next((i for i, e in enumerate(entries) if e.signature is not None), len(entries))
    key_id = None if key is None else key.key_id
    if findings:
        seq, index, kind, detail = min(findings, key=lambda f: (f[0], f[1]))
        return replace(report, bad_seq=seq, bad_index=index, kind=kind, detail=detail, key_id=key_id)
    return replace(report, signed=signed, legacy=legacy, anchors=len(vouched), key_id=key_id)


_NO_KEY = (
    "it is signed, but no audit key is at hand to check it "
    "(<workspace>/keys/audit/audit-key.pem, or --public-key for an export)"
)


def _index(entries: Sequence[AuditEntry], seq: int) -> int:
    """The position of entry ``seq``, else where it would be (past the end for a cut tail)."""
    return next((i for i, e in enumerate(entries) if e.seq >= seq), len(entries))


def _signature_findings(
    entries: Sequence[AuditEntry], key: AuditKey | None, anchors: Sequence[Anchor]
) -> list[_Finding]:
    """The first entry whose signature is missing, bad, by another key, or cannot be checked."""
    promised = [a for a in anchors if a.signed_from is not None]
    required = min(promised, key=lambda a: a.signed_from or 0) if promised else None
    first_signed: AuditEntry | None = None
    for i, entry in enumerate(entries):
        if entry.signature is None:
            if first_signed is not None:
                return [
                    (
                        entry.seq,
                        i,
                        "unsigned",
                        f"it has no signature, but entry {first_signed.seq} before it is signed: "
                        "it was written without the hub's audit key (appended by someone else)",
                    )
                ]
            if required is not None and entry.seq >= (required.signed_from or 0):
                return [
                    (
                        entry.seq,
                        i,
                        "unsigned",
                        f"it has no signature, but the head in {required.where} says every entry from "
                        f"seq {required.signed_from} on was signed (signatures removed)",
                    )
                ]
            continue
        first_signed = first_signed or entry
        if key is None:
            return [(entry.seq, i, "unverified", _NO_KEY)]
        key_id, _, signature = entry.signature.partition(":")
        if key_id != key.key_id:
            detail = f"it is signed by another key ({key_id!r}, the hub's audit key is {key.key_id})"
            return [(entry.seq, i, "forged", detail)]
        if not key.verify(entry_message(entry), signature):
            return [(entry.seq, i, "forged", "its signature does not match its content (edited or forged)")]
    return []


def _anchor_findings(entries: Sequence[AuditEntry], anchors: Sequence[Anchor]) -> list[_Finding]:
    """Anchors the chain contradicts: cut before an anchored seq, or another hash there."""
    by_seq = {e.seq: (i, e) for i, e in enumerate(entries)}
    head_seq = entries[-1].seq if entries else 0
    first = entries[0].seq if entries else 1
    found: list[_Finding] = []
    beyond = max((a for a in anchors if a.seq > head_seq), key=lambda a: a.seq, default=None)
    for anchor in anchors:
        if anchor.seq == 0 or anchor.seq < first:
            continue  # an empty chain, or before a segment's first entry
        at = by_seq.get(anchor.seq)
        if anchor is beyond:  # the longest chain an anchor remembers: name all that was cut
            signed_at = datetime.fromtimestamp(anchor.time_us / 1e6, UTC).isoformat(timespec="seconds")
            detail = (
                f"the chain ends at seq {head_seq}, but the head in {anchor.where} (signed {signed_at}) "
                f"has seq {anchor.seq}: entries {head_seq + 1}..{anchor.seq} were cut off"
            )
            found.append((head_seq + 1, len(entries), "truncated", detail))
        elif at is not None and at[1].hash != anchor.hash:
            detail = (
                f"its hash {at[1].hash[:16]}... differs from {anchor.hash[:16]}... in the head in "
                f"{anchor.where}: the chain was rewritten at or before this entry and re-hashed"
            )
            found.append((anchor.seq, at[0], "rehashed", detail))
    return found
