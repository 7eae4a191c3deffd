"""An append-only, hash-chained, signed and anchored log of every artifact and decision; verify and export.

This package is the chain itself, without I/O: :class:`AuditEntry`, the
canonical encoding and hash (documented in ``_chain.py`` so an auditor can
re-implement it), and :func:`verify_chain`, which names the first entry that
was modified, deleted, inserted or reordered. ``_sign.py`` adds the hub's
Ed25519 signatures on entries and signed heads (:class:`Anchor`) and
:func:`verify_trail`, which also names an entry appended without the key
(``unsigned``), a bad or foreign signature (``forged``), a cut tail
(``truncated``) and a rewritten one (``rehashed``). ``_keys.py`` keeps the key
(``<workspace>/keys/audit/audit-key.pem``, 0600); ``_anchors.py`` is the
:class:`AuditSigner` a store is opened with and the anchors file. The store
keeps the entries (``TelemetryStore.append_audit`` / ``audit_entries``).
``_export.py`` writes and checks exports (JSON Lines: a header with a signed
head, then the entries); ``_actor.py`` says who acts (:func:`resolve_actor`).
The commands are ``pumpops.cli.audit`` (``pumpops audit verify|export|show``).
See ADR 0006 and ADR 0013. The key and signing names load on first use
(cryptography is not loaded by ``pumpops --help``).
May import: errors, settings (types only), cryptography, the stdlib.
"""

from typing import TYPE_CHECKING

from pumpops._lazy import lazy_exports
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

if TYPE_CHECKING:
    from pumpops.audit._anchors import AuditSigner, read_anchors, workspace_key, workspace_signer
    from pumpops.audit._keys import ANCHORS_FILE, AUDIT_KEY_FILE, AuditKey, create_audit_key, load_audit_key
    from pumpops.audit._sign import Anchor, current_anchor, head_anchor, sign_entry, verify_trail

_LAZY: dict[str, str] = {
    "ANCHORS_FILE": "pumpops.audit._keys",
    "AUDIT_KEY_FILE": "pumpops.audit._keys",
    "AuditKey": "pumpops.audit._keys",
    "create_audit_key": "pumpops.audit._keys",
    "load_audit_key": "pumpops.audit._keys",
    "Anchor": "pumpops.audit._sign",
    "current_anchor": "pumpops.audit._sign",
    "head_anchor": "pumpops.audit._sign",
    "sign_entry": "pumpops.audit._sign",
    "verify_trail": "pumpops.audit._sign",
    "AuditSigner": "pumpops.audit._anchors",
    "read_anchors": "pumpops.audit._anchors",
    "workspace_key": "pumpops.audit._anchors",
    "workspace_signer": "pumpops.audit._anchors",
}

__getattr__, __dir__ = lazy_exports(globals(), _LAZY)

__all__ = [
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
]
