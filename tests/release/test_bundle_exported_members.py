"""Pins ``pumpops.release``'s public API, and that importing it stays edge-safe (bundle format only)."""

from __future__ import annotations

import subprocess
import sys

import pumpops.release

_PUBLIC = {
    "BUNDLE_FORMAT",
    "INTENT_FIELD",
    "ONLINE_ROLES",
    "RECALIBRATE_FIELD",
    "ROOT_KEY_FILE",
    "BuiltTarget",
    "Bundle",
    "BundleManifest",
    "ExpiryDays",
    "KeyStore",
    "PackageSettings",
    "PublishedFile",
    "PublishedTarget",
    "RecalibrationOrder",
    "SignedIntentWriter",
    "SourceModel",
    "TufRepository",
    "UpdateIntent",
    "bundles_of",
    "bundles_under",
    "create_release",
    "expiry_from",
    "export_repository",
    "generate_signer",
    "keystore",
    "load_signer",
    "load_source",
    "online_signers",
    "open_repository",
    "package_model",
    "publish_bundles",
    "read_bundle",
    "recalibration_orders",
    "release_summary",
    "repository_folder",
    "resolve_model_ref",
    "sign_intent",
    "sign_recalibration",
    "set_recalibration",
    "save_signer",
    "target_path",
    "write_bundle",
}


def test_release_exported_members_pinned() -> None:
    assert set(pumpops.release.__all__) == _PUBLIC
    for name in _PUBLIC:
        assert hasattr(pumpops.release, name), name


def test_release_import_loads_no_onnx_or_registry() -> None:
    code = (
        "import sys, pumpops.release; "
        "print(','.join(m for m in ('onnx', 'mlflow', 'sqlalchemy', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
