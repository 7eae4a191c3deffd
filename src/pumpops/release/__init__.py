"""Per-target packaging (opset, optimisation, quantisation), bundle format, signing, the TUF repository.

The package itself exports only the bundle format (edge-safe: pydantic and the
standard library). Packaging, which needs onnx and the registry, lives in
``pumpops.release._package`` and is loaded by the CLI on use.
May import: registry, validation, store, errors, onnx, onnxruntime, python-tuf.
"""

from pumpops.release._bundle import (
    BUNDLE_FORMAT,
    Bundle,
    BundleManifest,
    read_bundle,
    write_bundle,
)

__all__ = ["BUNDLE_FORMAT", "Bundle", "BundleManifest", "read_bundle", "write_bundle"]
