"""The workspace's credentials registry: identities (hashes only), the broker CA, the hub services' passwords.

Layout under ``<workspace>/security/`` (folders 0700, files 0600)::

    identities.json        every identity: role, site/group, argon2 hash, Mosquitto $7$ hash
    ca/ca.pem, ca/ca.key   the broker CA (created on first use)
    hub/<name>.password    the hub services' own passwords (the hub must present them)

A device's password leaves the hub only in the folder ``pumpops devices
provision`` writes; the registry keeps its hashes.

May import: ``pumpops.errors``, ``pumpops.schema``, ``pumpops._atomic``, the stdlib.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal

from pumpops._atomic import write_atomic
from pumpops.errors import ConfigError, InputError, NotFoundError
from pumpops.schema import IDENT_PATTERN
from pumpops.security._acl import HUB_IDENTITIES, HUB_PREFIX
from pumpops.security._passwords import hash_password, mosquitto_hash, new_password, verify_password
from pumpops.security._pki import CertificateAuthority

__all__ = ["SECURITY_DIR", "CredentialRegistry", "Identity", "write_private"]

SECURITY_DIR: Final = "security"
_FILE: Final = "identities.json"
_IDENT = re.compile(IDENT_PATTERN)
Role = Literal["device", "hub"]


@dataclass(frozen=True, slots=True)
class Identity:
    """One MQTT identity the broker admits.

    Attributes:
        name: the MQTT user name (a device id, or ``hub-...``).
        role: ``device`` or ``hub``.
        site: the device's site ("" for the hub).
        group: the device's group ("" for the hub).
        created: when it was issued (ISO 8601, UTC).
        password_hash: argon2 hash (the hub's record).
        mosquitto_hash: the ``$7$`` hash for Mosquitto's password file.
    """

    name: str
    role: Role
    site: str
    group: str
    created: str
    password_hash: str
    mosquitto_hash: str


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only (0600; folder created 0700)."""
    make_private_dir(path.parent)
    write_atomic(path, data, mode=0o600)


def make_private_dir(folder: Path) -> None:
    """Create ``folder`` (and missing parents) with mode 0700; tighten it if it exists."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)


def check_device_id(device_id: str) -> None:
    """Refuse a device id that is not an identifier or that names a hub identity.

    Raises:
        InputError: with the reason.
    """
    if not _IDENT.match(device_id):
        raise InputError(
            f"device id {device_id!r} must be 1-64 letters, digits or ._:- starting with a letter or digit"
        )
    if device_id.startswith(HUB_PREFIX):
        raise InputError(f"device id {device_id!r}: names starting with {HUB_PREFIX!r} belong to the hub")


class CredentialRegistry:
    """The identities of one workspace (``<workspace>/security``).

    Args:
        folder: the registry folder (``<workspace>/security``).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def of_workspace(cls, workspace: Path) -> CredentialRegistry:
        """The registry of a workspace folder."""
        return cls(workspace / SECURITY_DIR)

    # -- records

    def _load(self) -> dict[str, Identity]:
        path = self.folder / _FILE
        if not path.exists():
            return {}
        try:
            raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return {name: Identity(**fields) for name, fields in raw["identities"].items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"cannot read the credentials registry {path}: {exc}") from exc

    def _save(self, identities: dict[str, Identity]) -> None:
        doc = {"version": 1, "identities": {n: asdict(i) for n, i in sorted(identities.items())}}
        write_private(self.folder / _FILE, (json.dumps(doc, indent=2) + "\n").encode())

    def identities(self) -> list[Identity]:
        """Every identity, sorted by name."""
        return sorted(self._load().values(), key=lambda i: i.name)

    def get(self, name: str) -> Identity:
        """One identity.

        Raises:
            NotFoundError: no such identity.
        """
        found = self._load().get(name)
        if found is None:
            raise NotFoundError(f"no broker identity {name!r} (pumpops devices list shows them)")
        return found

    def _issue(self, name: str, role: Role, site: str, group: str) -> tuple[Identity, str]:
        password = new_password()
        identity = Identity(
            name=name,
            role=role,
            site=site,
            group=group,
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            password_hash=hash_password(password),
            mosquitto_hash=mosquitto_hash(password),
        )
        return identity, password

    def add_device(self, device_id: str, *, site: str, group: str, force: bool = False) -> str:
        """Register a device with a new random password; return the password (shown once).

        Raises:
            InputError: a bad id, site or group, or the device exists and ``force`` is False.
        """
        check_device_id(device_id)
        for label, value in (("--site", site), ("--group", group)):
            if not _IDENT.match(value):
                raise InputError(f"{label} {value!r} must be an identifier (letters, digits, ._:-)")
        identities = self._load()
        if device_id in identities and not force:
            raise InputError(
                f"device {device_id!r} is already provisioned; pass --force to issue new credentials "
                "(the old ones stop working), or revoke it first"
            )
        identity, password = self._issue(device_id, "device", site, group)
        identities[device_id] = identity
        self._save(identities)
        return password

    def revoke(self, name: str) -> Identity:
        """Remove an identity; return what it was.

        Raises:
            NotFoundError: no such identity.
        """
        identities = self._load()
        gone = identities.pop(name, None)
        if gone is None:
            raise NotFoundError(f"no broker identity {name!r} (pumpops devices list shows them)")
        self._save(identities)
        return gone

    def hub_password_file(self, name: str) -> Path:
        """Where the hub keeps the password of its service identity ``name``."""
        return self.folder / "hub" / f"{name}.password"

    def ensure_hub_identities(self, *, renew: bool = False) -> dict[str, Path]:
        """Create the hub services' identities that are missing (all, with ``renew``).

        Returns:
            user name → its password file.
        """
        identities = self._load()
        changed = False
        for name in HUB_IDENTITIES:
            path = self.hub_password_file(name)
            if name in identities and path.exists() and not renew:
                continue
            identity, password = self._issue(name, "hub", "", "")
            identities[name] = identity
            write_private(path, (password + "\n").encode())
            changed = True
        if changed:
            self._save(identities)
        return {name: self.hub_password_file(name) for name in HUB_IDENTITIES}

    def verify(self, name: str, password: str) -> bool:
        """Whether ``name`` is registered and ``password`` is its password."""
        identity = self._load().get(name)
        return identity is not None and verify_password(identity.password_hash, password)

    def mosquitto_password_file(self) -> str:
        """Every identity as a line of Mosquitto's password file (``name:$7$...``)."""
        return "".join(f"{i.name}:{i.mosquitto_hash}\n" for i in self.identities())

    # -- the CA

    def ca(self) -> CertificateAuthority:
        """The workspace's broker CA; created (0600 files) on first use.

        Raises:
            ConfigError: the CA files exist but cannot be read.
        """
        cert, key = self.folder / "ca" / "ca.pem", self.folder / "ca" / "ca.key"
        if cert.exists() and key.exists():
            return CertificateAuthority.load(cert.read_bytes(), key.read_bytes())
        ca = CertificateAuthority.create()
        write_private(key, ca.key_pem)
        write_private(cert, ca.cert_pem)
        return ca

    @property
    def ca_file(self) -> Path:
        """The CA certificate file (exists once :meth:`ca` was called)."""
        return self.folder / "ca" / "ca.pem"
