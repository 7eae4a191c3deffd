"""Pins the public API of ``pumpops.audit``: a change to this list is a change users see."""

from __future__ import annotations

import pumpops.audit

_PUBLIC = {
    "ANCHORS_FILE",
    "AUDIT_KEY_FILE",
    "EXPORT_FORMAT",
    "GENESIS_HASH",
    "Anchor",
    "AuditEntry",
    "AuditKey",
    "AuditSigner",
    "TamperKind",
    "VerifyReport",
    "canonical_bytes",
    "canonical_json",
    "chain_entry",
    "check_fields",
    "create_audit_key",
    "current_anchor",
    "entry_hash",
    "export_header",
    "head_anchor",
    "load_audit_key",
    "read_anchors",
    "resolve_actor",
    "sign_entry",
    "verify_chain",
    "verify_export",
    "verify_trail",
    "workspace_key",
    "workspace_signer",
    "write_export",
}


def test_audit_exported_members_are_pinned() -> None:
    assert set(pumpops.audit.__all__) == _PUBLIC
    for name in pumpops.audit.__all__:
        assert hasattr(pumpops.audit, name), name
