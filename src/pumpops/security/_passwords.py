"""Passwords: new random ones, the hub's own argon2 records and Mosquitto's ``$7$`` password-file hashes.

The hub keeps only hashes. Each identity has two: an argon2 hash (pwdlib, the
hub's record, checked by the embedded broker) and a PBKDF2-SHA512 hash in the
format ``mosquitto_passwd`` writes (``$7$<iterations>$<salt b64>$<hash b64>``),
from which the Mosquitto password file is rendered.

May import: ``pumpops.errors``, pwdlib, the stdlib.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import cache
from typing import TYPE_CHECKING, Final

from pumpops.errors import InputError

if TYPE_CHECKING:
    from pwdlib import PasswordHash

__all__ = [
    "MOSQUITTO_ITERATIONS",
    "hash_password",
    "mosquitto_hash",
    "new_password",
    "verify_mosquitto_hash",
    "verify_password",
]

#: PBKDF2 rounds of the Mosquitto hashes (``mosquitto_passwd`` writes 101; Mosquitto
#: reads the count from each line, so a stronger one costs only a connect-time hash).
MOSQUITTO_ITERATIONS: Final = 20_000
_SALT_BYTES: Final = 12  # as mosquitto_passwd
_PASSWORD_BYTES: Final = 32  # 256 bits of randomness


def new_password() -> str:
    """A random password (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(_PASSWORD_BYTES)


def mosquitto_hash(
    password: str, *, iterations: int = MOSQUITTO_ITERATIONS, salt: bytes | None = None
) -> str:
    """The password's hash as a Mosquitto 2 password file holds it (``$7$``, PBKDF2-SHA512).

    >>> mosquitto_hash("secret", iterations=101, salt=bytes(12))[:24]
    '$7$101$AAAAAAAAAAAAAAAA$'
    """
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_mosquitto_hash(encoded: str, password: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash (constant-time compare).

    Raises:
        InputError: ``encoded`` is not a ``$7$`` hash.
    """
    parts = encoded.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        raise InputError("not a Mosquitto $7$ password hash")
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except ValueError as exc:
        raise InputError(f"not a Mosquitto $7$ password hash: {exc}") from exc
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, int(parts[2]))
    return hmac.compare_digest(digest, expected)


@cache
def _hasher() -> PasswordHash:
    from pwdlib import PasswordHash  # noqa: PLC0415 - argon2 loads only where passwords are hashed
    from pwdlib.hashers.argon2 import Argon2Hasher  # noqa: PLC0415

    return PasswordHash((Argon2Hasher(),))


def hash_password(password: str) -> str:
    """The hub's own record of a password: an argon2id hash (pwdlib)."""
    return _hasher().hash(password)


def verify_password(encoded: str, password: str) -> bool:
    """Whether ``password`` matches the hub's argon2 record (False for a malformed record)."""
    from pwdlib.exceptions import UnknownHashError  # noqa: PLC0415

    try:
        return bool(_hasher().verify(password, encoded))
    except (UnknownHashError, ValueError):
        return False
