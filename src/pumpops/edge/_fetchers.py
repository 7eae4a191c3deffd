"""Fetchers for python-tuf: a repository in a folder (site mirror, removable media).

python-tuf has no ``file://`` support; :class:`FolderFetcher` answers the
updater's URLs under :data:`FOLDER_BASE_URL` from a folder, and raises
``DownloadHTTPError(..., 404)`` for a missing file, which is what root
discovery (probing ``N+1.root.json``) needs to stop. Length limits stay in
python-tuf's ``FetcherInterface`` base class.
May import: python-tuf and the stdlib.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from tuf.api.exceptions import DownloadError, DownloadHTTPError
from tuf.ngclient import FetcherInterface

__all__ = ["FOLDER_BASE_URL", "FolderFetcher"]

#: The base URL the updater is given when the repository is a folder (never resolved on a network).
FOLDER_BASE_URL = "http://pumpops-folder.invalid/"


class FolderFetcher(FetcherInterface):
    """Serves ``<folder>/metadata/...`` and ``<folder>/targets/...`` to a ``tuf.ngclient.Updater``.

    Args:
        folder: the exported repository (``metadata/`` and ``targets/`` inside).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()

    def _path(self, url: str) -> Path:
        if not url.startswith(FOLDER_BASE_URL):
            raise DownloadError(f"{url} is not inside the folder repository")
        relative = url[len(FOLDER_BASE_URL) :]
        path = (self.folder / relative).resolve()
        if not path.is_relative_to(self.folder) or ".." in Path(relative).parts:
            raise DownloadHTTPError(f"{relative} is outside the repository folder", 404)
        return path

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = self._path(url)
        if not path.is_file():
            raise DownloadHTTPError(f"{path} does not exist", 404)
        try:
            src = path.open("rb")
        except OSError as exc:
            raise DownloadError(f"cannot read {path}: {exc}") from exc
        return _chunks(src)


def _chunks(src: BinaryIO) -> Iterator[bytes]:
    with src:
        while chunk := src.read(1 << 16):
            yield chunk
