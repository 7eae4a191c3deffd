"""The hub's HTTP application: the TUF repository, read-only, under ``/tuf/``, and ``/healthz``.

Only files below ``metadata/`` and ``targets/`` are served; no listing, no
hidden (temporary) files, nothing outside the repository folder: anything else
is a 404, which python-tuf's root discovery relies on.
May import: fastapi, starlette, the stdlib.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse

__all__ = ["create_app"]

_SERVED = ("metadata", "targets")


def create_app(repository: Path) -> FastAPI:
    """The hub application serving ``repository`` (a TUF repository folder).

    Args:
        repository: the folder with ``metadata/`` and ``targets/``.
    """
    folder = repository.resolve()
    app = FastAPI(title="pumpops hub", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        ok = (folder / "metadata" / "timestamp.json").is_file()
        return {"status": "ok" if ok else "no repository"}

    @app.get("/tuf/{path:path}")
    def tuf_file(path: str) -> FileResponse:
        parts = Path(path).parts
        if not parts or parts[0] not in _SERVED or any(p.startswith(".") for p in parts):
            raise HTTPException(status_code=404)
        file = (folder / path).resolve()
        if not file.is_relative_to(folder) or not file.is_file():
            raise HTTPException(status_code=404)
        media = "application/json" if file.suffix == ".json" else "application/octet-stream"
        return FileResponse(file, media_type=media, headers={"Cache-Control": "no-cache"})

    return app
