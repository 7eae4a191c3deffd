"""Pins the public API of ``pumpops.audit``: a change to this list is a change users see."""

from __future__ import annotations

import pumpops.audit

_PUBLIC = {
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
}


def test_audit_exported_members_are_pinned() -> None:
    assert set(pumpops.audit.__all__) == _PUBLIC
    for name in pumpops.audit.__all__:
        assert hasattr(pumpops.audit, name), name
