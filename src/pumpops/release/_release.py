"""Creating a release: a validated model version packaged for targets, recorded and audited.

:func:`create_release` gets the version from the registry (only one whose
validation passed), packages it for every target (``_package.py``), and then
records the release in the store (revision 0004), appends ``release.created``
to the audit trail and emits the ``release.created`` event. Nothing is
recorded if any target cannot be built.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pumpops.errors import ConfigError
from pumpops.fleet import TargetProfile
from pumpops.registry import EventSink, Registry
from pumpops.release._package import BuiltTarget, PackageSettings, load_source, package_model
from pumpops.store import ReleaseRecord

__all__ = ["create_release", "release_summary"]


def _target_record(built: BuiltTarget, bundle_folder: Path, manifest_sha256: str) -> dict[str, Any]:
    return {
        "precision": built.precision,
        "opset": min(built.target.max_opset, built.source_opset),
        "ir_version_max": built.target.max_ir_version,
        "optimisation": built.optimisation,
        "decisions": list(built.decisions),
        "budgets": built.budgets,
        "score_deviation_of_threshold": built.deviations,
        "model_bytes": len(built.onnx_bytes),
        "bundle": str(bundle_folder),
        "manifest_sha256": manifest_sha256,
        "profile_sha256": built.target.digest(),
    }


def create_release(
    registry: Registry,
    events: EventSink,
    *,
    name: str,
    version: int,
    targets: Sequence[TargetProfile],
    out: Path,
    data: Path | int | None,
    actor: str,
    group: str | None = None,
    settings: PackageSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> ReleaseRecord:
    """Package a validated model version for ``targets`` and record the release.

    Args:
        registry: the model registry.
        events: where the event goes (its store also keeps the release and the audit entry).
        name: the registered model.
        version: the model version.
        targets: the target profiles.
        out: the bundle root.
        data: held-out data for the float-vs-int8 check: SKAB-format folder or simulation seed.
        actor: who is releasing (audit trail).
        group: the device group (default: the version's).
        settings: packaging tolerances.
        progress: told each step as it starts (one line for people).

    Returns:
        The stored release record.

    Raises:
        ConfigError: the version's validation has not passed, no target was
            given, or a target cannot be built or exceeds its budgets.
        NotFoundError: no such model version.
    """
    if not targets:
        raise ConfigError("name at least one target (--targets)")
    info = registry.get(name, version)
    if info.validation != "passed":
        raise ConfigError(
            f"{info.ref} cannot be released: its validation is {info.validation!r}, not 'passed' "
            f"(run `pumpops validate {info.ref}` first)"
        )
    settings = settings or PackageSettings()
    if progress is not None:
        progress(f"downloading {info.ref} from the registry")
    with tempfile.TemporaryDirectory(prefix="pumpops-release-") as tmp:
        folder = registry.download_model(info, Path(tmp))
        source = load_source(
            folder,
            name=info.name,
            version=info.version,
            run_id=info.run_id,
            validation_sha256=info.tags.get("pumpops.validation_sha256") or None,
        )
        chosen_group = group or info.group or source.group
        built, bundles = package_model(
            source, targets, out=out, data=data, group=chosen_group, settings=settings, progress=progress
        )
    target_records = {
        b.target.id: _target_record(b, bundle.folder, bundle.manifest_sha256)
        for b, bundle in zip(built, bundles, strict=True)
    }
    record = {
        "model": info.ref,
        "group": chosen_group,
        "held_out": "skab files" if isinstance(data, (str, Path)) else f"simulated suite, seed {data or 0}",
        "settings": asdict(settings),
        "targets": target_records,
    }
    store = events.store
    release = store.add_release(
        info.name,
        info.version,
        chosen_group,
        [t.id for t in targets],
        created_by=actor,
        bundle_root=str(out),
        record=record,
    )
    subject = f"release/{release.release_id}"
    payload = {
        "release": release.release_id,
        "model": info.ref,
        "group": chosen_group,
        "targets": {
            t: {"precision": r["precision"], "manifest_sha256": r["manifest_sha256"]}
            for t, r in target_records.items()
        },
    }
    store.append_audit(actor, "release.created", subject, payload)
    events.emit("release.created", subject, payload)
    return release


def release_summary(release: ReleaseRecord) -> dict[str, Any]:
    """A release as JSON-able data, for ``release show``."""
    return {
        "release": release.release_id,
        "model": f"{release.model_name}/{release.version}",
        "group": release.group,
        "targets": list(release.targets),
        "created_us": release.created_us,
        "created_by": release.created_by,
        "bundle_root": release.bundle_root,
        "record": json.loads(release.record_json),
    }
