"""An append-only, hash-chained log of every artifact and decision; verify and export.

This package is the chain itself, without I/O: :class:`AuditEntry`, the
canonical encoding and hash (documented in ``_chain.py`` so an auditor can
re-implement it), and :func:`verify_chain`, which names the first entry that
was modified, deleted, inserted or reordered. The store keeps the entries
(``TelemetryStore.append_audit`` / ``audit_entries``); ``_cli.py`` is the thin
shell (``pumpops audit verify|export|show``). See ADR 0006.
May import: errors, hashlib, json; ``_cli.py`` also store and the CLI support.
"""

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

__all__ = [
    "GENESIS_HASH",
    "AuditEntry",
    "TamperKind",
    "VerifyReport",
    "canonical_bytes",
    "canonical_json",
    "chain_entry",
    "check_fields",
    "entry_hash",
    "verify_chain",
]
