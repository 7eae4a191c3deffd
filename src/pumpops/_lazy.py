"""Lazy public names for package ``__init__`` modules: a name's module loads on first use.

Several parts export many names whose modules pull in heavy libraries (numpy,
pint, SQLAlchemy, MLflow, onnxruntime, python-tuf). ``pumpops --help`` and the
edge agent import those packages but use few of the names, so each package
maps its public names to the module that defines them and loads that module
on first access (PEP 562). The mapping sits in the package's ``__init__``;
the loading is written once, here.

May import: the standard library only (the edge agent imports it).

>>> table = {"sqrt": "math"}
>>> getattr_, dir_ = lazy_exports({"__name__": "demo", "__all__": ["sqrt"]}, table)
>>> getattr_("sqrt")(9.0)
3.0
>>> dir_()
['__all__', '__name__', 'sqrt']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    namespace: MutableMapping[str, Any], table: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Build a package's module-level ``__getattr__`` and ``__dir__``.

    Args:
        namespace: the package's ``globals()``; a loaded name is cached there,
            so later lookups do not come back here.
        table: public name → the module that defines it.

    Returns:
        ``(__getattr__, __dir__)`` to assign at module level.
    """

    def __getattr__(name: str) -> Any:  # noqa: N807 - the PEP 562 hook
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {namespace.get('__name__')!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:  # noqa: N807 - the PEP 562 hook
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__
