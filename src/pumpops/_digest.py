"""SHA-256 hex digests of files and bytes, written once for the hub and the edge.

Standard library only, so every part (the edge agent included) may import it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["sha256_bytes", "sha256_file"]

#: Bytes read at a time, so a large model file never sits in memory whole.
_BLOCK = 1 << 20  # bytes


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``.

    Args:
        data: the bytes to digest.

    Returns:
        64 lowercase hex digits.

    >>> sha256_bytes(b"")
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    >>> sha256_bytes(b"abc")[:16]
    'ba7816bf8f01cfea'
    """
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path | str) -> str:
    """Hex SHA-256 of a file's content, read in 1 MiB blocks.

    Args:
        path: the file to digest.

    Returns:
        64 lowercase hex digits, equal to ``sha256_bytes`` of the file's bytes.

    Raises:
        OSError: the file cannot be read.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     file = Path(tmp) / "f.bin"
    ...     _ = file.write_bytes(b"abc")
    ...     sha256_file(file) == sha256_bytes(b"abc")
    True
    """
    digest = hashlib.sha256()
    with Path(path).open("rb") as src:
        for block in iter(lambda: src.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
