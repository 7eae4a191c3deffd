"""API tokens and roles: make a token, hash it, and decide who may do what (pure, no I/O).

A token is ``pumpops_<token_id>_<secret>``: the id is public (``pumpops tokens
list`` shows it, ``tokens revoke`` takes it), the secret is 256 random bits
(:func:`secrets.token_urlsafe`). The store keeps only the SHA-256 of the whole
token: a random 256-bit secret cannot be guessed from its hash, so a slow
password hash would buy nothing (ADR 0014). Roles are ordered: ``viewer`` reads,
``operator`` also acknowledges alarms, gives feedback and pauses or resumes
rollouts, ``admin`` also starts and aborts rollouts, promotes and approves.
May import: the standard library, errors.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ROLES",
    "Principal",
    "hash_token",
    "new_token",
    "parse_bearer",
    "role_allows",
]

#: The roles, least to most powerful; each may do what the ones before it may.
ROLES: Final = ("viewer", "operator", "admin")

_PREFIX: Final = "pumpops_"
_TOKEN = re.compile(r"pumpops_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a valid token's owner.

    Attributes:
        name: the token's owner; the actor of every audit entry the request writes.
        role: ``viewer``, ``operator`` or ``admin``.
        token_id: the token's public id.
    """

    name: str
    role: str
    token_id: str


def new_token() -> tuple[str, str]:
    """A fresh token: ``(token_id, token)``; the token is shown once and never stored.

    >>> token_id, token = new_token()
    >>> token.startswith(f"pumpops_{token_id}_") and len(token) == 8 + 12 + 1 + 43
    True
    """
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    token_id = "".join(secrets.choice(alphabet) for _ in range(12))
    return token_id, f"{_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    """The SHA-256 (hex) the store keeps for ``token``.

    >>> hash_token("x") == hashlib.sha256(b"x").hexdigest()
    True
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None if it is not one of ours.

    >>> parse_bearer("Bearer pumpops_abcdefabcdef_" + "A" * 43) is not None
    True
    >>> parse_bearer("Basic dXNlcjpwYXNz"), parse_bearer("Bearer nonsense"), parse_bearer(None)
    (None, None, None)
    """
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not _TOKEN.fullmatch(value):
        return None
    return value


def token_id_of(token: str) -> str:
    """The public id inside a well-formed token.

    >>> token_id_of("pumpops_abcdefabcdef_" + "A" * 43)
    'abcdefabcdef'
    """
    return token[len(_PREFIX) : len(_PREFIX) + 12]


def role_allows(role: str, needed: str) -> bool:
    """Whether ``role`` may do what needs ``needed`` (an unknown role may do nothing).

    >>> role_allows("admin", "operator"), role_allows("viewer", "operator"), role_allows("root", "viewer")
    (True, False, False)
    """
    if role not in ROLES or needed not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(needed)
