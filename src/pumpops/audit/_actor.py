"""Who is acting, for the audit trail: a command's ``--actor`` flag, else the settings' actor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pumpops.errors import ConfigError

if TYPE_CHECKING:
    from pumpops.settings import Settings


def resolve_actor(settings: Settings, flag: str | None) -> str:
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
