"""Per-target packaging (opset, optimisation, quantisation), bundle format, signing, the TUF repository.

The package itself re-exports only the bundle format, which lives in
``pumpops.schema`` (the contracts hub and device share). Packaging, which needs
onnx and the registry, lives in ``pumpops.release._package`` and is loaded on use.
May import: registry, validation, store, errors, onnx, onnxruntime, python-tuf.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pumpops.schema import (
        BUNDLE_FORMAT,
        Bundle,
        BundleManifest,
        read_bundle,
        write_bundle,
    )

__all__ = ["BUNDLE_FORMAT", "Bundle", "BundleManifest", "read_bundle", "write_bundle"]


def __getattr__(name: str) -> Any:
    # Loaded on first use (PEP 562): the command modules of this package must
    # not wait for pydantic before `--help` answers.
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("pumpops.schema"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
