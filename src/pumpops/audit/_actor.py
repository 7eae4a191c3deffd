"""Who is acting, for the audit trail: a command's ``--actor`` flag, else the settings' actor."""

from __future__ import annotations

from typing import Protocol

from pumpops.errors import ConfigError

__all__ = ["resolve_actor"]


class _HasActor(Protocol):
    """What :func:`resolve_actor` reads of the settings (audit sits beside settings: no import)."""

    @property
    def actor(self) -> str: ...


def resolve_actor(settings: _HasActor, flag: str | None) -> str:
    """The actor of a writing command: the ``--actor`` flag, else the settings' actor.

    Raises:
        ConfigError: the flag is given but blank.

    >>> from pumpops.settings import Settings
    >>> resolve_actor(Settings(actor="ops@hq"), None), resolve_actor(Settings(actor="ops@hq"), "ann")
    ('ops@hq', 'ann')
    """
    if flag is None:
        return settings.actor
    if not flag.strip():
        raise ConfigError("--actor must not be empty")
    return flag
