"""The step cache: a step's outputs, kept under ``<workspace>/cache/<step>/<key>/``.

The key is the SHA-256 of the step's inputs: the config sections it reads,
the digests of the upstream artifacts it consumes, and the code version
(:func:`code_version`). Same inputs, same key: the step is not run again.
An entry is built in a temporary folder and renamed into place when
complete, so an interrupted run never leaves a half entry that a later run
would trust.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pumpops.errors import ConfigError
from pumpops.pipeline._config import canonical_hash, canonical_json

_DONE = "_key.json"


@cache
def code_version() -> str:
    """Return the SHA-256 of the pipeline package's source files (including the detectors).

    Any edit to the code that computes a step changes every step's key.
    """
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def file_digest(path: Path | None) -> str | None:
    """Return the SHA-256 of a file's bytes, or None for no file.

    Raises:
        ConfigError: the file cannot be read (it is named in the config).
    """
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


@dataclass
class StepCache:
    """Content-addressed step outputs.

    Attributes:
        root: the cache folder (``<workspace>/cache``).
        enabled: when False every step is recomputed (and its entry replaced).
        events: ``(step, "computed" | "cached")`` in the order steps asked.
    """

    root: Path
    enabled: bool = True
    events: list[tuple[str, str]] = field(default_factory=list)

    @staticmethod
    def key(step: str, inputs: dict[str, Any]) -> str:
        """Return the key of a step for its inputs (and the code version)."""
        return canonical_hash({"step": step, "inputs": inputs, "code": code_version()})

    def run(self, step: str, inputs: dict[str, Any], compute: Callable[[Path], None]) -> tuple[Path, str]:
        """Return the folder holding ``step``'s outputs for ``inputs``, computing them if needed.

        Args:
            step: the step's name.
            inputs: everything the step's output depends on (JSON-able).
            compute: fills the folder it is given with the step's outputs.

        Returns:
            ``(folder, key)``.
        """
        key = self.key(step, inputs)
        final = self.root / step / key
        if self.enabled and (final / _DONE).is_file():
            self.events.append((step, "cached"))
            return final, key
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=final.parent))
        try:
            compute(tmp)
            (tmp / _DONE).write_bytes(
                canonical_json({"step": step, "inputs": inputs, "code": code_version()})
            )
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        self.events.append((step, "computed"))
        return final, key
