"""Per-target packaging (opset, optimisation, quantisation), bundle format, signing, the TUF repository.

The bundle format lives in ``pumpops.schema`` (the contracts hub and device
share) and is re-exported here. Packaging (:func:`package_model`,
:func:`create_release`), keys (:func:`generate_signer`) and the TUF repository
(:class:`TufRepository`, :func:`publish_bundles`) need onnx, python-tuf and
the registry: every name loads its module on first use, so importing this
package stays light.
May import: registry, validation, pipeline, store, fleet, schema, errors, onnx, onnxruntime, python-tuf.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pumpops._lazy import lazy_exports

if TYPE_CHECKING:
    from pumpops.release._intent import INTENT_FIELD, UpdateIntent
    from pumpops.release._keys import (
        ONLINE_ROLES,
        ROOT_KEY_FILE,
        KeyStore,
        generate_signer,
        load_signer,
        save_signer,
    )
    from pumpops.release._package import (
        BuiltTarget,
        PackageSettings,
        SourceModel,
        load_source,
        package_model,
    )
    from pumpops.release._publish import (
        SignedIntentWriter,
        bundles_of,
        bundles_under,
        expiry_from,
        export_repository,
        keystore,
        online_signers,
        open_repository,
        publish_bundles,
        repository_folder,
        sign_intent,
    )
    from pumpops.release._recalibrate import (
        RECALIBRATE_FIELD,
        RecalibrationOrder,
        recalibration_orders,
        set_recalibration,
        sign_recalibration,
    )
    from pumpops.release._refs import resolve_model_ref
    from pumpops.release._release import create_release, release_summary
    from pumpops.release._tuf import ExpiryDays, PublishedFile, PublishedTarget, TufRepository, target_path
    from pumpops.schema import (
        BUNDLE_FORMAT,
        Bundle,
        BundleManifest,
        read_bundle,
        write_bundle,
    )

# Loaded on first use (PEP 562): the command modules must not wait for
# pydantic, onnx or python-tuf before `--help` answers.
_LAZY = {
    **dict.fromkeys(
        ("BUNDLE_FORMAT", "Bundle", "BundleManifest", "read_bundle", "write_bundle"), "pumpops.schema"
    ),
    **dict.fromkeys(("INTENT_FIELD", "UpdateIntent"), "pumpops.release._intent"),
    **dict.fromkeys(
        ("ONLINE_ROLES", "ROOT_KEY_FILE", "KeyStore", "generate_signer", "load_signer", "save_signer"),
        "pumpops.release._keys",
    ),
    **dict.fromkeys(
        ("BuiltTarget", "PackageSettings", "SourceModel", "load_source", "package_model"),
        "pumpops.release._package",
    ),
    **dict.fromkeys(
        (
            "SignedIntentWriter",
            "bundles_of",
            "bundles_under",
            "expiry_from",
            "export_repository",
            "keystore",
            "online_signers",
            "open_repository",
            "publish_bundles",
            "repository_folder",
            "sign_intent",
        ),
        "pumpops.release._publish",
    ),
    **dict.fromkeys(
        (
            "RECALIBRATE_FIELD",
            "RecalibrationOrder",
            "recalibration_orders",
            "set_recalibration",
            "sign_recalibration",
        ),
        "pumpops.release._recalibrate",
    ),
    "resolve_model_ref": "pumpops.release._refs",
    "create_release": "pumpops.release._release",
    "release_summary": "pumpops.release._release",
    **dict.fromkeys(
        ("ExpiryDays", "PublishedFile", "PublishedTarget", "TufRepository", "target_path"),
        "pumpops.release._tuf",
    ),
}

__all__ = [
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
    "save_signer",
    "set_recalibration",
    "sign_intent",
    "sign_recalibration",
    "target_path",
    "write_bundle",
]


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
