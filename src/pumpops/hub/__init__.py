"""The control-plane process: HTTP API, dashboard and background services (FastAPI, uvicorn).

Today it serves the TUF repository read-only under ``/tuf/`` (:func:`create_app`)
and ``/healthz``; ``pumpops hub serve`` runs it with uvicorn. FastAPI loads on
first use of :func:`create_app`, not when the ``pumpops`` command starts.
May import every hub-side part.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from pumpops.hub._app import create_app  # noqa: PLC0415 - FastAPI only when serving

        return create_app
    raise AttributeError(f"module 'pumpops.hub' has no attribute {name!r}")
