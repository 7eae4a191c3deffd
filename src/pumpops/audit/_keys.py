"""The hub's online audit key: Ed25519, one PEM file in the workspace (outside the database), mode 0600.

Layout: ``<workspace>/keys/audit/audit-key.pem`` (the private key, PKCS#8 PEM,
no passphrase, mode 0600 in a 0700 folder) and ``<workspace>/audit/anchors.jsonl``
(the signed heads, see :mod:`pumpops.audit._anchors`). Every hub process that
appends audit entries loads the key through :func:`workspace_signer` (the
first one creates it); ``pumpops audit verify`` loads it with
``create=False`` and derives the public key. A key file readable by the group
or others is refused, as ssh refuses such a private key.
May import: errors, cryptography, the stdlib.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pumpops.errors import ConfigError, NotFoundError

__all__ = ["ANCHORS_FILE", "AUDIT_KEY_FILE", "AuditKey", "create_audit_key", "load_audit_key"]

#: The audit key file, relative to the workspace.
AUDIT_KEY_FILE = Path("keys") / "audit" / "audit-key.pem"
#: The workspace's anchors file (signed heads, one JSON object a line), relative to the workspace.
ANCHORS_FILE = Path("audit") / "anchors.jsonl"


@dataclass(frozen=True)
class AuditKey:
    """An Ed25519 key that signs (private part present) or only checks audit entries and heads.

    Attributes:
        public: the public key.
        private: the private key, None for a verify-only key.
        key_id: the first 16 hex digits of the SHA-256 of the raw public key.
    """

    public: Ed25519PublicKey
    private: Ed25519PrivateKey | None = None

    @property
    def key_id(self) -> str:
        """The key's short id (what a signature names)."""
        return hashlib.sha256(self.public_bytes).hexdigest()[:16]

    @property
    def public_bytes(self) -> bytes:
        """The raw 32-byte public key."""
        return self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def public_hex(self) -> str:
        """The raw public key in hex (what an offline auditor is given)."""
        return self.public_bytes.hex()

    @classmethod
    def generate(cls) -> AuditKey:
        """A new key pair.

        >>> key = AuditKey.generate()
        >>> key.verify(b"m", key.sign(b"m")), key.verify(b"n", key.sign(b"m"))
        (True, False)
        """
        private = Ed25519PrivateKey.generate()
        return cls(private.public_key(), private)

    @classmethod
    def from_public_hex(cls, text: str) -> AuditKey:
        """A verify-only key from a raw public key in hex.

        Raises:
            ConfigError: ``text`` is not 64 hex digits of an Ed25519 public key.
        """
        try:
            raw = bytes.fromhex(text.strip())
            return cls(Ed25519PublicKey.from_public_bytes(raw))
        except ValueError as exc:
            raise ConfigError(f"not an Ed25519 public key (64 hex digits): {text[:80]!r}") from exc

    def sign(self, message: bytes) -> str:
        """The Ed25519 signature of ``message``, in hex.

        Raises:
            ConfigError: this is a verify-only key.
        """
        if self.private is None:
            raise ConfigError("this audit key has no private part: it can only verify")
        return self.private.sign(message).hex()

    def verify(self, message: bytes, signature_hex: str) -> bool:
        """Whether ``signature_hex`` is this key's signature of ``message``."""
        try:
            self.public.verify(bytes.fromhex(signature_hex), message)
        except (InvalidSignature, ValueError):
            return False
        return True


def load_audit_key(path: Path) -> AuditKey:
    """Read the audit key file.

    Raises:
        NotFoundError: there is no such file.
        ConfigError: the file is readable by the group or others, or is not an Ed25519 private key.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise NotFoundError(f"no audit key {path}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the audit key {path}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the audit key {path} is accessible by others (mode {stat.S_IMODE(mode):04o}): "
            f"run `chmod 600 {path}` and check who may have copied it"
        )
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a PEM private key: {exc}") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 key ({type(private).__name__})")
    return AuditKey(private.public_key(), private)


def create_audit_key(path: Path) -> AuditKey:
    """Load the audit key at ``path``, creating it (mode 0600, folder 0700) if there is none.

    Two processes creating it at once end with the same key: the file is
    written under a temporary name and linked into place only if no key is
    there yet (the loser loads the winner's).

    Raises:
        ConfigError: the existing file is unusable (see :func:`load_audit_key`) or cannot be written.
    """
    try:
        return load_audit_key(path)
    except NotFoundError:
        pass
    key = AuditKey.generate()
    assert key.private is not None
    pem = key.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        _private_folders(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(tmp, path)  # fails if a key appeared meanwhile: never replace a key
            except FileExistsError:
                return load_audit_key(path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the audit key {path}: {exc}") from exc
    return key


def _private_folders(folder: Path) -> None:
    """Create ``folder`` and its missing parents, each 0700 (``mkdir(parents=True)`` uses the umask)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for item in reversed(missing):
        item.mkdir(mode=0o700, exist_ok=True)
