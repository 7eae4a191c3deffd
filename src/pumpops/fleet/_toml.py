"""One loader for the fleet's TOML profiles: a file validated into a model, shipped ones plus a workspace's.

Manufacturer profiles (``profiles/``) and target profiles (``targets/``) are
both folders of TOML files, one pydantic model each, keyed by ``id``; files
in the workspace's folders win over shipped ones on equal ids. Standard
library and pydantic only (edge-safe).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from pumpops.errors import ConfigError, NotFoundError

__all__ = ["load_toml_model", "pick_profile", "profiles_by_id", "shipped_files"]


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


_M = TypeVar("_M", bound=BaseModel)
_P = TypeVar("_P", bound=_HasId)


def load_toml_model(path: Path, model: type[_M], what: str) -> _M:
    """Read one TOML file and validate it as ``model``.

    Args:
        path: the file.
        model: the pydantic model of its content.
        what: how error messages name it (``profile``, ``target profile``).

    Raises:
        ConfigError: the file is not valid TOML or not a valid ``model``.
    """
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        return model.model_validate(data)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from exc
    except ValidationError as exc:
        raise ConfigError(f"invalid {what} {path}:\n{exc}") from exc


@cache
def _shipped(folder: str, load: Callable[[Path], _HasId]) -> tuple[_HasId, ...]:
    root = resources.files("pumpops.fleet") / folder
    found = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            with resources.as_file(entry) as path:
                found.append(load(path))
    return tuple(found)


def shipped_files(folder: str, load: Callable[[Path], _P]) -> tuple[_P, ...]:
    """The profiles shipped in ``pumpops/fleet/<folder>/``, in file-name order, read once per process."""
    return _shipped(folder, load)  # type: ignore[return-value]


def profiles_by_id(
    shipped: Iterable[_P], extra_dirs: Iterable[Path], load: Callable[[Path], _P]
) -> dict[str, _P]:
    """``shipped`` plus every ``*.toml`` in ``extra_dirs`` (name order); later ones win on equal ids."""
    found = {p.id: p for p in shipped}
    for folder in extra_dirs:
        for path in sorted(Path(folder).glob("*.toml")):
            profile = load(path)
            found[profile.id] = profile
    return found


def pick_profile(found: dict[str, _P], profile_id: str, what: str) -> _P:
    """``found[profile_id]``.

    Raises:
        NotFoundError: no such id; the message lists the known ones.
    """
    try:
        return found[profile_id]
    except KeyError:
        raise NotFoundError(f"unknown {what} {profile_id!r}; known: {', '.join(sorted(found))}") from None
