"""Signing keys of the TUF repository: ed25519, one JSON file per key, root kept apart.

Layout under ``<workspace>/keys/``: ``OFFLINE-root-key.json`` (the root key;
move it off the hub to offline storage after ``pumpops keys init`` and bring
it back only to rotate keys) and ``online/<role>.json`` for the targets,
snapshot and timestamp keys the hub signs with at every publish. Files are
written with mode 0600 and atomically (temp file + ``os.replace``); the
folders the key store creates are mode 0700 (only the hub's user may list them).
May import: errors, securesystemslib, the stdlib.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, SSlibKey

from pumpops.errors import ConfigError, NotFoundError

__all__ = [
    "ONLINE_ROLES",
    "ROOT_KEY_FILE",
    "KeyStore",
    "generate_signer",
    "load_signer",
    "save_signer",
]

#: The roles whose keys the hub keeps online to sign every publish.
ONLINE_ROLES: tuple[str, ...] = ("targets", "snapshot", "timestamp")
#: File name of the offline root key(s); the name says what to do with it.
ROOT_KEY_FILE = "OFFLINE-root-key.json"


def generate_signer() -> CryptoSigner:
    """A new ed25519 signer (private and public key)."""
    return CryptoSigner.generate_ed25519()


def save_signer(path: Path, signers: list[CryptoSigner], *, role: str) -> None:
    """Write signers' private keys (PEM) and public keys to ``path``, mode 0600, atomically."""
    body = {
        "role": role,
        "keys": [
            {"keyid": s.public_key.keyid, "public": s.public_key.to_dict(), "private_pem": _pem(s)}
            for s in signers
        ],
    }
    _private_folder(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(body, out, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _private_folder(folder: Path) -> None:
    """Create ``folder`` and any missing parent with mode 0700; make ``folder`` itself 0700."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for created in reversed(missing):
        created.mkdir(mode=0o700)
        os.chmod(created, 0o700)  # mkdir's mode is masked by the umask
    os.chmod(folder, 0o700)


def load_signer(path: Path) -> list[CryptoSigner]:
    """Read the signers stored in a key file.

    Raises:
        NotFoundError: the file does not exist.
        ConfigError: the file is not a pumpops key file.
    """
    if not path.exists():
        raise NotFoundError(f"no key file {path}: run 'pumpops keys init' (or bring the offline root key)")
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        signers = []
        for entry in body["keys"]:
            public = SSlibKey.from_dict(entry["keyid"], dict(entry["public"]))
            private = load_pem_private_key(entry["private_pem"].encode(), password=None)
            signers.append(CryptoSigner(private, public))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a pumpops key file: {exc}") from exc
    return signers


def _pem(signer: CryptoSigner) -> str:
    return signer.private_bytes.decode()


@dataclass(frozen=True)
class KeyStore:
    """Where a workspace keeps its keys.

    Attributes:
        folder: ``<workspace>/keys``.
    """

    folder: Path

    @property
    def root_file(self) -> Path:
        """The offline root key file."""
        return self.folder / ROOT_KEY_FILE

    def online_file(self, role: str) -> Path:
        """The key file of an online role.

        Raises:
            ConfigError: ``role`` is not targets, snapshot or timestamp.
        """
        if role not in ONLINE_ROLES:
            raise ConfigError(f"{role!r} is not an online role; choose one of {', '.join(ONLINE_ROLES)}")
        return self.folder / "online" / f"{role}.json"

    def root_signers(self) -> list[CryptoSigner]:
        """The root signers (needs the offline key file present)."""
        return load_signer(self.root_file)

    def online_signers(self, role: str) -> list[CryptoSigner]:
        """The signers of an online role."""
        return load_signer(self.online_file(role))
