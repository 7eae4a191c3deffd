"""The I/O around the audit key: the workspace's signer and its append-only anchors file.

:class:`AuditSigner` is what a store is opened with (``open_store(url,
audit_signer=...)``): it signs every entry the store appends and, after each
append commits, writes the new signed head as one line of
``<workspace>/audit/anchors.jsonl`` (created 0600, opened ``O_APPEND``, one
``write`` per line, so concurrent hub processes do not interleave lines).
:func:`workspace_signer` loads the workspace's key (creating it the first
time); :func:`read_anchors` reads the anchors file for ``pumpops audit verify``.
An attacker who can write the database cannot write these files, so the
heads in them survive a rewritten or cut chain.
May import: errors, this package, the stdlib.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from pumpops.audit._chain import AuditEntry
from pumpops.audit._keys import ANCHORS_FILE, AUDIT_KEY_FILE, AuditKey, create_audit_key, load_audit_key
from pumpops.audit._sign import Anchor, sign_entry
from pumpops.errors import ConfigError, InputError, IntegrityError, NotFoundError

__all__ = ["AuditSigner", "read_anchors", "workspace_key", "workspace_signer"]


@dataclass(frozen=True)
class AuditSigner:
    """Signs audit entries as a store appends them, and anchors each new head in a file.

    Attributes:
        key: the hub's audit key (with its private part).
        anchors_file: where signed heads are appended (None: nowhere, e.g. in unit tests).
    """

    key: AuditKey
    anchors_file: Path | None = None

    def sign(self, entry: AuditEntry) -> AuditEntry:
        """The entry with its signature (see :func:`~pumpops.audit.sign_entry`)."""
        return sign_entry(self.key, entry)

    def anchor(self, entry: AuditEntry, *, signed_from: int | None, time_us: int) -> Anchor:
        """Sign ``entry`` as the chain's head and append it to the anchors file, if any.

        Raises:
            ConfigError: the anchors file cannot be written.
        """
        anchor = Anchor(entry.seq, entry.hash, signed_from, time_us, self.key.key_id, "")
        return self.record(replace(anchor, signature=self.key.sign(anchor.message())))

    def record(self, anchor: Anchor) -> Anchor:
        """Append a signed head to the anchors file, if any; return it.

        Raises:
            ConfigError: the anchors file cannot be written.
        """
        if self.anchors_file is not None:
            append_anchor(self.anchors_file, anchor)
        return anchor


def append_anchor(path: Path, anchor: Anchor) -> None:
    """Append one signed head to an anchors file (created 0600), in one ``write``.

    Raises:
        ConfigError: the file cannot be written.
    """
    line = (json.dumps(anchor.to_dict(), sort_keys=True, separators=(",", ":")) + "\n").encode()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ConfigError(f"cannot append to the audit anchors file {path}: {exc}") from exc


def read_anchors(path: Path) -> list[Anchor]:
    """The signed heads in an anchors file (none if it does not exist).

    Raises:
        IntegrityError: a line is not a signed head (the file was edited).
        ConfigError: the file cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the audit anchors file {path}: {exc}") from exc
    anchors = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            anchors.append(Anchor.from_dict(json.loads(line), f"{path}, line {number}"))
        except (ValueError, InputError) as exc:
            raise IntegrityError(
                f"{path}, line {number} is not a signed audit head (edited?): {exc}"
            ) from exc
    return anchors


def workspace_key(workspace: Path) -> AuditKey | None:
    """The workspace's audit key, or None if it has none yet (for verifying: never creates one).

    Raises:
        ConfigError: the key file is unusable (readable by others, not an Ed25519 key).
    """
    try:
        return load_audit_key(workspace / AUDIT_KEY_FILE)
    except NotFoundError:
        return None


def workspace_signer(workspace: Path) -> AuditSigner:
    """The signer every hub process appends audit entries with: the workspace's key, created if missing.

    Raises:
        ConfigError: the key file is unusable or cannot be created.
    """
    return AuditSigner(create_audit_key(workspace / AUDIT_KEY_FILE), workspace / ANCHORS_FILE)
