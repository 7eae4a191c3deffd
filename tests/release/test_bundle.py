"""Bundle format: deterministic bytes, hashes verified, tampering rejected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pumpops.errors import IntegrityError, NotFoundError
from pumpops.schema import (
    MANIFEST_FILE,
    MODEL_FILE,
    BundleAlarm,
    BundleBuild,
    BundleCalibration,
    BundleInputs,
    BundleLineage,
    BundleManifest,
    BundleSensor,
    BundleTarget,
    read_bundle,
    write_bundle,
)


def _manifest() -> BundleManifest:
    return BundleManifest(
        model_name="pumpops-g1",
        model_version=3,
        group="g1",
        target=BundleTarget(
            id="x86_64-ipc",
            arch="x86_64",
            opset=17,
            ir_version=8,
            onnxruntime=">=1.16",
            execution_providers=("CPUExecutionProvider",),
            profile_sha256="0" * 64,
        ),
        min_agent_version="0.1.0",
        inputs=BundleInputs(
            sensors=(BundleSensor(name="temperature", unit="K"),), window_rows=8, dtype="float64"
        ),
        alarm=BundleAlarm(compare="score > threshold", threshold="calibration.threshold", smoothing={"k": 2}),
        calibrations={"p1": BundleCalibration(center=(1.0,), scale=(2.0,), threshold=0.5)},
        detector={"kind": "pca"},
        build=BundleBuild(
            precision="float64", source_opset=17, optimisation="none", decisions=("kept",), budgets={}
        ),
        lineage=BundleLineage(
            run_id="r", dataset_digest="d", validation_report_sha256=None, source_model_sha256="1" * 64
        ),
        files={},
    )


def test_write_bundle_same_inputs_same_bytes(tmp_path: Path) -> None:
    a = write_bundle(tmp_path / "a", _manifest(), {MODEL_FILE: b"onnx"})
    b = write_bundle(tmp_path / "b", _manifest(), {MODEL_FILE: b"onnx"})
    assert a.folder.relative_to(tmp_path / "a") == Path("g1/x86_64-ipc/3")
    for name in (MANIFEST_FILE, MODEL_FILE):
        assert (a.folder / name).read_bytes() == (b.folder / name).read_bytes()
    assert a.manifest_sha256 == b.manifest_sha256
    assert read_bundle(a.folder).manifest.files[MODEL_FILE].length == 4


def test_read_bundle_tampered_model_rejected(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, _manifest(), {MODEL_FILE: b"onnx"})
    (bundle.folder / MODEL_FILE).write_bytes(b"evil")
    with pytest.raises(IntegrityError, match="does not match"):
        read_bundle(bundle.folder)


def test_read_bundle_tampered_manifest_rejected(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, _manifest(), {MODEL_FILE: b"onnx"})
    path = bundle.folder / MANIFEST_FILE
    doc = json.loads(path.read_bytes())
    doc["calibrations"]["p1"]["threshold"] = 99.0
    path.write_text(json.dumps(doc, indent=1))
    with pytest.raises(IntegrityError, match="canonical"):
        read_bundle(bundle.folder)
    doc["surprise"] = 1
    path.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match="not valid"):
        read_bundle(bundle.folder)


def test_read_bundle_extra_file_rejected(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, _manifest(), {MODEL_FILE: b"onnx"})
    (bundle.folder / "payload.sh").write_bytes(b"x")
    with pytest.raises(IntegrityError, match="not in the manifest"):
        read_bundle(bundle.folder)


def test_read_bundle_missing_folder_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        read_bundle(tmp_path)
