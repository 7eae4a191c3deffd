"""Atomic file writes: a reader, or a power cut, sees the old file or the new one, never a mix.

Standard library only, so the edge agent and the hub share it (STYLE.md #10,
after python-tuf's ``_persist_file``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

#: Prefix of the temporary file next to its target; a crash can leave one
#: behind, and owners of a folder (the edge slots) remove such leftovers.
TMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename inside it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a synced temporary file and ``os.replace``.

    Args:
        path: the file to create or replace; its folder is created if missing.
        data: the new contents.
        mode: permission bits of the new file (``mkstemp`` would leave 0600).

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "CURRENT"
    >>> write_atomic(target, b"2"); target.read_bytes()
    b'2'
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
