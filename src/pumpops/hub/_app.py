"""The hub's HTTP application: the TUF repository, read-only, under ``/tuf/``, and ``/healthz``.

Only files below ``metadata/`` and ``targets/`` are served; no listing, no
hidden (temporary) files, nothing outside the repository folder: anything else
is a 404, which python-tuf's root discovery relies on. A path no file can have
(a NUL or another control character, a backslash) is a 400; an over-long one a
404. Neither reaches the file system, so odd requests never cost a traceback.
HEAD is answered like GET, without the body.
May import: fastapi, starlette, the stdlib.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse

__all__ = ["create_app"]

_SERVED = ("metadata", "targets")
_NO_CACHE = {"Cache-Control": "no-cache"}
# Longer names than any TUF file pumpops writes, and below every file system's limits,
# so that the operating system is never asked about a name it would refuse.
_MAX_PATH_CHARS = 1024
_MAX_PART_BYTES = 255


def create_app(repository: Path, *, api: Callable[[FastAPI], object] | None = None) -> FastAPI:
    """The hub application serving ``repository`` (a TUF repository folder).

    Args:
        repository: the folder with ``metadata/`` and ``targets/``.
        api: mounts the HTTP API on the app (``pumpops.web.mount_api`` bound to its context).
    """
    folder = repository.resolve()
    app = FastAPI(title="pumpops hub", docs_url=None, redoc_url=None, openapi_url=None)

    @app.api_route("/healthz", methods=["GET", "HEAD"])
    def healthz() -> dict[str, str]:
        ok = (folder / "metadata" / "timestamp.json").is_file()
        return {"status": "ok" if ok else "no repository"}

    # HEAD answers like GET without the body (starlette's FileResponse sends the headers only).
    @app.api_route("/tuf/{path:path}", methods=["GET", "HEAD"])
    def tuf_file(path: str) -> FileResponse:
        return FileResponse(_served_file(folder, path), media_type=_media(path), headers=_NO_CACHE)

    if api is not None:
        api(app)
    return app


def _served_file(folder: Path, path: str) -> Path:
    """The repository file ``path`` names, or the HTTP error to answer instead (never an exception else)."""
    if any(ord(c) < 32 or ord(c) == 127 or c == "\\" for c in path):
        raise HTTPException(status_code=400, detail="the path holds a character no served file has")
    parts = path.split("/")
    if (
        len(path) > _MAX_PATH_CHARS
        or any(len(p.encode("utf-8", "surrogatepass")) > _MAX_PART_BYTES for p in parts)
        or parts[0] not in _SERVED
        or any(p.startswith(".") or not p for p in parts)  # hidden, "..", empty ("a//b", "a/")
    ):
        raise HTTPException(status_code=404)
    try:
        file = (folder / path).resolve()
        found = file.is_relative_to(folder) and file.is_file()
    except (OSError, ValueError):  # a name this file system cannot hold: not a file we serve
        found = False
    if not found:
        raise HTTPException(status_code=404)
    return file


def _media(path: str) -> str:
    return "application/json" if path.endswith(".json") else "application/octet-stream"
