"""What the two installs hold: the base (the edge agent) and the ``hub`` extra on top of it.

``pip install "pumpops[edge]"`` (the base) runs ``pumpops agent`` and the
edge-safe parts; ``pip install "pumpops[hub]"`` adds the hub's libraries. The
command line uses this to say which install a command needs instead of
showing a traceback; ``tests/foundation/test_edge_install.py`` checks that
:data:`HUB_LIBRARIES` agrees with ``pyproject.toml``, and ``.ci/run`` that a
fresh edge install holds none of them.

May import: the standard library only (the edge agent imports it).
"""

from __future__ import annotations

import importlib.util
from typing import Final

__all__ = ["HUB_INSTALL", "HUB_LIBRARIES", "hub_library", "missing_hub_libraries"]

#: The command that adds the hub's libraries to an edge install.
HUB_INSTALL: Final = "pip install 'pumpops[hub]'"

#: Top-level import names of the libraries only the ``hub`` extra installs: its
#: own requirements and the large ones they bring (starlette, pandas).
HUB_LIBRARIES: Final = frozenset(
    {
        "aiomqtt",
        "alembic",
        "amqtt",
        "dask",  # per-group training as tasks on a Dask cluster (issue 18)
        "distributed",  # dask's scheduler and workers
        "fastapi",
        "fastapi_offline",  # Swagger UI's files for /api/docs (issue 17)
        "httpx",
        "jinja2",  # the dashboard's templates (issue 17)
        "mlflow",
        "onnx",  # the model format library; onnxruntime is an edge dependency
        "optuna",  # the settings search of `pumpops tune` (issue 14)
        "pandas",
        "prometheus_client",  # /metrics (issue 17)
        "psycopg",
        "pwdlib",  # the hub's password records (issue 13)
        "skl2onnx",
        "sklearn",
        "sqlalchemy",
        "starlette",
        "uvicorn",
    }
)


def hub_library(exc: ModuleNotFoundError) -> str | None:
    """The hub library whose absence raised ``exc``, or None if it is another module.

    Args:
        exc: an import failure.

    Returns:
        The top-level import name, when it is one of :data:`HUB_LIBRARIES`.

    >>> hub_library(ModuleNotFoundError("No module named 'sqlalchemy'", name="sqlalchemy.orm"))
    'sqlalchemy'
    >>> hub_library(ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime")) is None
    True
    """
    top = (exc.name or "").partition(".")[0]
    return top if top in HUB_LIBRARIES else None


def missing_hub_libraries() -> list[str]:
    """The hub libraries this environment cannot import (all of them on an edge install).

    Looks for them without importing any (a few directory look-ups).
    """
    return sorted(name for name in HUB_LIBRARIES if not _importable(name))


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # an import hook that refuses the name
        return False
