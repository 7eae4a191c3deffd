"""An append-only, hash-chained log of every artifact and decision; verify and export.

This package is the chain itself, without I/O: :class:`AuditEntry`, the
canonical encoding and hash (documented in ``_chain.py`` so an auditor can
re-implement it), and :func:`verify_chain`, which names the first entry that
was modified, deleted, inserted or reordered. The store keeps the entries
(``TelemetryStore.append_audit`` / ``audit_entries``). ``_export.py`` writes
and checks exports (JSON Lines: a header, then the entries); ``_actor.py`` says
who acts (:func:`resolve_actor`). The commands are ``pumpops.cli.audit``
(``pumpops audit verify|export|show``). See ADR 0006.
May import: errors, settings (types only), hashlib, json.
"""

from pumpops.audit._actor import resolve_actor
from pumpops.audit._chain import (
    GENESIS_HASH,
    AuditEntry,
    TamperKind,
    VerifyReport,
    canonical_bytes,
    canonical_json,
    chain_entry,
    check_fields,
    entry_hash,
    verify_chain,
)
from pumpops.audit._export import EXPORT_FORMAT, export_header, verify_export, write_export

__all__ = [
    "EXPORT_FORMAT",
    "GENESIS_HASH",
    "AuditEntry",
    "TamperKind",
    "VerifyReport",
    "canonical_bytes",
    "canonical_json",
    "chain_entry",
    "check_fields",
    "entry_hash",
    "export_header",
    "resolve_actor",
    "verify_chain",
    "verify_export",
    "write_export",
]
