"""Audit exports: a header line, then one entry per line; verified offline.

Export format (``pumpops audit export``): JSON Lines, UTF-8. The first line is a
header object describing the export (``{"pumpops_audit_export": 1, ...}``, see
:func:`export_header`); every further line is one entry, all fields and both
hashes (and its signature, if signed), keys sorted (:meth:`AuditEntry.to_json`).
The header carries ``signed_head``: the chain's head at export time signed
with the hub's audit key (:class:`~pumpops.audit.Anchor`), so a cut or
re-hashed export, or an edited header, fails. :func:`verify_export` checks a
full export as a chain from entry 1, and an export ``--since`` as a segment (its
first entry's link to the entries before it cannot be checked offline). An
export filtered by subject is not a chain (the entries between are left out, so
a deletion could not be told from the filter): it is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pumpops.audit._chain import GENESIS_HASH, AuditEntry, VerifyReport
from pumpops.errors import InputError, IntegrityError

if TYPE_CHECKING:
    from pumpops.audit._keys import AuditKey
    from pumpops.audit._sign import Anchor

EXPORT_FORMAT = 1
_HEADER_KEY = "pumpops_audit_export"


def export_header(
    entries: list[AuditEntry],
    *,
    since_us: int | None,
    subject: str | None,
    chain_head: AuditEntry | None,
    signed_head: Anchor | None = None,
) -> dict[str, Any]:
    """The first line of an export: what it holds and the chain's head when it was written.

    Keys: ``pumpops_audit_export`` (format version, 1), ``since_us`` and
    ``subject`` (the filters, null if none), ``count``, ``first_seq`` and
    ``last_hash`` (of the entries exported), ``chain_head_seq`` and
    ``chain_head_hash`` (of the whole chain at export time: record them
    elsewhere to detect a later rewrite), ``signed_head`` (the chain's head
    signed with the hub's audit key, see :class:`~pumpops.audit.Anchor`; null
    without a key).
    """
    return {
        _HEADER_KEY: EXPORT_FORMAT,
        "since_us": since_us,
        "subject": subject,
        "count": len(entries),
        "first_seq": entries[0].seq if entries else None,
        "last_hash": entries[-1].hash if entries else None,
        "chain_head_seq": chain_head.seq if chain_head else 0,
        "chain_head_hash": chain_head.hash if chain_head else GENESIS_HASH,
        "signed_head": None if signed_head is None else signed_head.to_dict(),
    }


def write_export(out: TextIO, header: dict[str, Any], entries: list[AuditEntry]) -> None:
    """Write an export: the header line, then one entry per line."""
    out.write(json.dumps(header, sort_keys=True, separators=(",", ":")) + "\n")
    for entry in entries:
        out.write(entry.to_json() + "\n")


def verify_export(
    path: Path,
    *,
    expected_head: str | None = None,
    key: AuditKey | None = None,
    anchors: list[Anchor] | None = None,
) -> VerifyReport:
    """Check an export file offline (see the module docstring for what is checked).

    Args:
        path: the export.
        expected_head: a head hash recorded elsewhere; it must be in the export.
        key: the hub's audit key (public part): signatures and the signed head
            are checked with it. None: signed entries and a signed head fail as
            ``unverified`` (nothing vouches for them).
        anchors: further signed heads to check the export against (their
            ``seq`` must be in the export's range to be checked).

    Raises:
        InputError: the file is not an audit export, or is filtered by subject.
        IntegrityError: a line is not an audit entry any more (edited by hand).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    try:
        header = json.loads(lines[0]) if lines else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get(_HEADER_KEY) != EXPORT_FORMAT:
        raise InputError(f"{path} is not a pumpops audit export (no header line); use `pumpops audit export`")
    if header.get("subject") is not None:
        raise InputError(
            f"{path} is filtered by subject {header['subject']!r}: it is not a chain, so deletions "
            "cannot be told from the filter; verify a full export (without --subject)"
        )
    entries = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            entries.append(AuditEntry.from_json(line))
        except InputError as exc:
            raise IntegrityError(
                f"{path}, line {number}: not an audit entry any more ({exc}): modified"
            ) from exc
    first_seq = header.get("first_seq")
    segment = isinstance(first_seq, int) and first_seq > 1  # an export --since: a tail of the chain
    last_hash = header.get("last_hash")
    count = header.get("count")

    from pumpops.audit._sign import Anchor, verify_trail  # noqa: PLC0415 - cryptography on first use

    found = list(anchors or [])
    if header.get("signed_head") is not None:
        try:
            found.append(Anchor.from_dict(header["signed_head"], f"the header of {path}"))
        except InputError as exc:
            raise IntegrityError(
                f"{path}, line 1: the signed head is not one any more ({exc}): modified"
            ) from exc

    def walk(head: str | None) -> VerifyReport:
        return verify_trail(
            entries,
            key,
            found,
            first_seq=first_seq if segment else 1,
            first_prev_hash=None if segment else GENESIS_HASH,
            expected_head=head,
        )

    if key is not None and header.get("signed_head") is None and any(e.signature for e in entries):
        last = entries[-1]
        detail = (
            "its entries are signed but the header has no signed head (removed?): the end is not vouched for"
        )
        return VerifyReport(len(entries), last.seq, last.hash, last.seq, len(entries) - 1, "unsigned", detail)
    report = walk(last_hash)
    if report.ok and expected_head is not None:
        report = walk(expected_head)
    if report.ok and isinstance(count, int) and len(entries) > count:
        # Entries appended to the file after the one the header names as the last.
        return VerifyReport(
            report.count,
            report.head_seq,
            report.head_hash,
            bad_seq=entries[count].seq,
            bad_index=count,
            kind="inserted",
            detail=f"the export held {count} entries; the ones from here on were added",
        )
    return report
