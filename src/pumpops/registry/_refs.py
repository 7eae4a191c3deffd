"""How models are named: ``<name>/<version>`` and ``<name>@<alias>`` references, group model and alias names.

Pure string rules (no MLflow, no store), so a command can check a reference
before anything heavy is loaded.
"""

from __future__ import annotations

import re
from typing import Final

from pumpops.errors import ConfigError

__all__ = ["REF_FORMS", "alias_name", "default_model_name", "parse_model_ref", "parse_ref"]

_REF = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,199})/(?P<version>[1-9][0-9]{0,9})$")
_ALIAS_REF = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,199})@(?P<alias>[A-Za-z0-9][A-Za-z0-9_-]{0,255})$"
)
REF_FORMS: Final = "<name>/<version> (pumpops-skab-testbed/3) or <name>@<alias> (pumpops-acme-ansi@champion)"


def parse_ref(text: str) -> tuple[str, int]:
    """Split ``<name>/<version>``.

    Raises:
        ConfigError: not of that shape.

    >>> parse_ref("pumpops-skab/3")
    ('pumpops-skab', 3)
    """
    match = _REF.match(text.strip())
    if match is None:
        raise ConfigError(f"model version must be <name>/<version> (pumpops-skab/3), not {text!r}")
    return match["name"], int(match["version"])


def parse_model_ref(text: str) -> tuple[str, int | str]:
    """Split ``<name>/<version>`` or ``<name>@<alias>``: the name and the version number or alias.

    :meth:`Registry.resolve` turns either into a version; check the shape with
    this before anything heavy is loaded.

    Raises:
        ConfigError: neither shape.

    >>> parse_model_ref("pumpops-skab/3"), parse_model_ref("pumpops-acme-ansi@champion")
    (('pumpops-skab', 3), ('pumpops-acme-ansi', 'champion'))
    """
    text = text.strip()
    if (match := _REF.match(text)) is not None:
        return match["name"], int(match["version"])
    if (match := _ALIAS_REF.match(text)) is not None:
        return match["name"], match["alias"]
    raise ConfigError(f"a model is named {REF_FORMS}, not {text!r}")


def default_model_name(group: str) -> str:
    """The registered model of a device group.

    >>> default_model_name("acme-ansi")
    'pumpops-acme-ansi'
    """
    return f"pumpops-{group}"


def alias_name(group: str, role: str) -> str:
    """The MLflow alias of a role in a group.

    >>> alias_name("acme-ansi", "champion")
    'acme-ansi-champion'
    """
    if role not in ("champion", "challenger"):
        raise ConfigError(f"alias role must be champion or challenger, not {role!r}")
    return f"{group}-{role}"
