"""The bundle format: one model version built for one target, as a manifest and an ONNX file.

A bundle is a folder::

    <out>/<group>/<target>/<version>/
        manifest.json   canonical JSON (sorted keys, compact, UTF-8, trailing newline)
        model.onnx      the model as built for the target (opset, optimisation, precision)

``manifest.json`` names every other file of the bundle with its SHA-256 and
length (``files``), so the manifest's own hash (which TUF signs as a target)
covers the whole bundle. The bytes are deterministic: the same model, target
profile and settings give the same ``manifest.json`` and ``model.onnx``; no
clock, host name or path goes in.

This module is edge-safe: it imports only the standard library, msgspec,
``pumpops._atomic`` and ``pumpops.errors``, so the device agent can read and
verify bundles with it; release writes them. The ``detector`` section's typed
form is :class:`pumpops.schema.DetectorManifest` (``_manifest.py``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self

import msgspec
from msgspec import Meta

from pumpops._atomic import write_atomic
from pumpops.errors import ConfigError, IntegrityError, NotFoundError
from pumpops.schema._manifest import DetectorManifest

__all__ = [
    "BUNDLE_FORMAT",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "Bundle",
    "BundleAlarm",
    "BundleBuild",
    "BundleCalibration",
    "BundleFile",
    "BundleInputs",
    "BundleLineage",
    "BundleManifest",
    "BundleSensor",
    "BundleTarget",
    "bundle_dir",
    "manifest_bytes",
    "parse_manifest",
    "read_bundle",
    "write_bundle",
]

BUNDLE_FORMAT: Final = "pumpops.bundle/1"
MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"

_IDENT = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
_Ident = Annotated[str, Meta(pattern=_IDENT)]
_Sha256 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
_Version = Annotated[str, Meta(pattern=r"^[0-9]+(\.[0-9]+){0,2}$")]
_FileName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
_Name = Annotated[str, Meta(min_length=1, max_length=64)]


def _plain(value: Any) -> Any:
    """Numpy scalars and arrays (``.tolist()``) as builtins; anything else is refused."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} cannot go into a bundle manifest")


class _Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A part of the manifest: msgspec checks types and bounds when it is read, not when it is built.

    (msgspec, not pydantic: the device agent reads bundles, and pydantic costs it ~10 MiB.)
    The ``model_*`` methods keep the names the hub's code and tests use.
    """

    def model_dump(self, mode: str = "json") -> dict[str, Any]:
        """The part as JSON-ready builtins (tuples become lists, numpy numbers plain numbers)."""
        out: dict[str, Any] = msgspec.to_builtins(self, enc_hook=_plain)
        return out

    @classmethod
    def model_validate(cls, doc: Any) -> Self:
        """Check ``doc`` (JSON-ready builtins) and build the part.

        Raises:
            msgspec.ValidationError: a field is missing, unknown, of the wrong type or out of
                bounds; the message names it (``- at `$.inputs.window_rows```).
        """
        return msgspec.convert(doc, cls)

    def model_copy(self, *, update: dict[str, Any]) -> Self:
        """A copy with ``update``'s fields replaced (not checked until validated)."""
        return msgspec.structs.replace(self, **update)


class BundleFile(_Strict, frozen=True, kw_only=True):
    """One file of the bundle besides the manifest.

    Attributes:
        sha256: hex SHA-256 of the file's bytes.
        length: size in bytes.
    """

    sha256: _Sha256
    length: Annotated[int, Meta(ge=0)]


class BundleSensor(_Strict, frozen=True, kw_only=True, omit_defaults=True):
    """One model input: a canonical sensor and its canonical (SI) unit.

    Attributes:
        name: the canonical sensor.
        unit: the unit the model takes it in.
        from_units: ``{unit: [scale, offset]}``: ``value_in_unit = scale * reading + offset``
            for a reading in ``unit``, computed by the hub with pint for every unit a known
            manufacturer profile reports this sensor in (and ``unit`` itself). The device applies
            them and never loads a units library. Absent in bundles built before it existed.
    """

    name: _Name
    unit: _Name
    from_units: dict[_Name, tuple[float, float]] = msgspec.field(default_factory=dict)


class BundleInputs(_Strict, frozen=True, kw_only=True):
    """What the agent feeds the model.

    Attributes:
        sensors: the sensors, in the column order of the window.
        window_rows: rows per window.
        dtype: element type of the ONNX inputs in this bundle (``float64`` or ``float32``).
    """

    sensors: Annotated[tuple[BundleSensor, ...], Meta(min_length=1)]
    window_rows: Annotated[int, Meta(ge=1, le=100_000)]
    dtype: Literal["float64", "float32"]


class BundleAlarm(_Strict, frozen=True, kw_only=True):
    """How scores become alarms: threshold comparison and k-of-n smoothing.

    Attributes:
        compare: the comparison, ``score > threshold``.
        threshold: where the threshold comes from (``calibration.threshold``: per device).
        smoothing: the detector's smoothing rule as the detector manifest states it.
    """

    compare: str
    threshold: str
    smoothing: dict[str, Any]


class BundleCalibration(_Strict, frozen=True, kw_only=True):
    """Per-device calibration: the reference statistics and the alarm threshold.

    ``center`` and ``scale`` are the device's healthy reference (median and
    spread per sensor); ``quantiles`` (per sensor, the deciles of its normal
    period) are the reference bins for drift statistics.
    """

    center: tuple[float, ...]
    scale: tuple[float, ...]
    threshold: float
    quantiles: tuple[tuple[float, ...], ...] = ()
    n_rows: Annotated[int, Meta(ge=0)] = 0
    extra: dict[str, Any] = msgspec.field(default_factory=dict)


class BundleTarget(_Strict, frozen=True, kw_only=True):
    """The target profile the bundle was built for (a summary, plus its digest)."""

    id: _Ident
    arch: str
    opset: Annotated[int, Meta(ge=1)]
    ir_version: Annotated[int, Meta(ge=1)]
    onnxruntime: str
    execution_providers: tuple[str, ...]
    security_features: tuple[str, ...] = ()
    profile_sha256: _Sha256


class BundleBuild(_Strict, frozen=True, kw_only=True):
    """What packaging did and why.

    Attributes:
        precision: ``float64``, ``float32`` or ``int8``.
        source_opset: opset of the registered model.
        optimisation: the optimisation applied (``none`` or a named level).
        decisions: one sentence per step saying what was done and why.
        budgets: measured figures against the target's budgets (measured on
            the build machine, one thread, when stated so in ``decisions``).
    """

    precision: Literal["float64", "float32", "int8"]
    source_opset: int
    optimisation: str
    decisions: tuple[str, ...]
    budgets: dict[str, Any]


class BundleLineage(_Strict, frozen=True, kw_only=True):
    """Where the model came from."""

    run_id: str | None
    dataset_digest: str | None
    validation_report_sha256: str | None
    source_model_sha256: _Sha256
    config_hash: str | None = None


class BundleManifest(_Strict, frozen=True, kw_only=True):
    """The signed description of a bundle; ``files`` hashes everything else in it."""

    format: Literal["pumpops.bundle/1"] = BUNDLE_FORMAT
    model_name: Annotated[str, Meta(min_length=1, max_length=200)]
    model_version: Annotated[int, Meta(ge=1)]
    group: _Ident
    target: BundleTarget
    min_agent_version: _Version
    inputs: BundleInputs
    alarm: BundleAlarm
    calibrations: dict[str, BundleCalibration]
    detector: dict[str, Any]
    build: BundleBuild
    lineage: BundleLineage
    files: dict[_FileName, BundleFile]

    def detector_manifest(self) -> DetectorManifest:
        """The ``detector`` section, typed and checked (the dict itself stays as it is, for the bytes).

        Raises:
            IncompatibleBundleError: a key the agent reads has the wrong type (the message names it).
        """
        return DetectorManifest.from_dict(self.detector)


@dataclass(frozen=True)
class Bundle:
    """A bundle read from disk and verified against its manifest.

    Attributes:
        folder: where it lies.
        manifest: the parsed manifest.
        manifest_sha256: hex SHA-256 of ``manifest.json``'s bytes.
    """

    folder: Path
    manifest: BundleManifest
    manifest_sha256: str

    @property
    def model_path(self) -> Path:
        """Path of the ONNX model file."""
        return self.folder / MODEL_FILE


def manifest_bytes(manifest: BundleManifest) -> bytes:
    """Canonical bytes of a manifest: sorted keys, compact separators, a trailing newline.

    >>> m = {"b": 1, "a": [1.5, "x"]}
    >>> json.dumps(m, sort_keys=True, separators=(",", ":"))
    '{"a":[1.5,"x"],"b":1}'
    """
    doc = manifest.model_dump(mode="json")
    return (
        json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        + b"\n"
    )


def bundle_dir(out: Path, group: str, target: str, version: int) -> Path:
    """The folder of a bundle under an output root: ``<out>/<group>/<target>/<version>``."""
    for label, value in (("group", group), ("target", target)):
        if not re.match(_IDENT, value):
            raise ConfigError(f"{label} {value!r} is not a valid identifier ({_IDENT})")
    return out / group / target / str(int(version))


def write_bundle(out: Path, manifest: BundleManifest, files: dict[str, bytes]) -> Bundle:
    """Write a bundle, filling in the ``files`` hashes of the manifest.

    Args:
        out: the output root; the bundle goes to ``<out>/<group>/<target>/<version>``.
        manifest: the manifest; its ``files`` field is replaced by the hashes of ``files``.
        files: file name -> bytes; must contain ``model.onnx``.

    Returns:
        The written bundle, read back and verified.

    Raises:
        ConfigError: ``files`` lacks the model or names the manifest.
    """
    if MODEL_FILE not in files:
        raise ConfigError(f"a bundle needs {MODEL_FILE}")
    if MANIFEST_FILE in files:
        raise ConfigError(f"{MANIFEST_FILE} is written from the manifest, not passed as a file")
    hashes = {
        name: BundleFile(sha256=hashlib.sha256(data).hexdigest(), length=len(data))
        for name, data in sorted(files.items())
    }
    final = manifest.model_copy(update={"files": hashes})
    # Round-trip through validation so a bad field fails here, not on the device.
    final = BundleManifest.model_validate(final.model_dump(mode="json"))
    folder = bundle_dir(out, final.group, final.target.id, final.model_version)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in sorted(files.items()):
        write_atomic(folder / name, data)
    write_atomic(folder / MANIFEST_FILE, manifest_bytes(final))
    return read_bundle(folder)


def parse_manifest(data: bytes) -> BundleManifest:
    """Parse manifest bytes.

    Raises:
        IntegrityError: the bytes are not a valid bundle manifest.
    """
    try:
        doc = json.loads(data)
        return BundleManifest.model_validate(doc)
    except (ValueError, msgspec.ValidationError) as exc:
        raise IntegrityError(f"bundle manifest is not valid: {exc}") from exc


def read_bundle(folder: Path) -> Bundle:
    """Read a bundle and verify every file against the manifest's hashes.

    Args:
        folder: the bundle folder (holding ``manifest.json``).

    Returns:
        The verified bundle.

    Raises:
        NotFoundError: there is no manifest in ``folder``.
        IntegrityError: the manifest is invalid, a listed file is missing or
            its bytes do not match, or the folder holds unlisted files.
    """
    folder = Path(folder)
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise NotFoundError(f"no bundle at {folder}: {MANIFEST_FILE} is missing")
    raw = manifest_path.read_bytes()
    manifest = parse_manifest(raw)
    if manifest_bytes(manifest) != raw:
        raise IntegrityError(f"{manifest_path}: manifest is not in canonical form (edited by hand?)")
    if MODEL_FILE not in manifest.files:
        raise IntegrityError(f"{manifest_path}: manifest lists no {MODEL_FILE}")
    for name, expected in manifest.files.items():
        path = folder / name
        if not path.is_file():
            raise IntegrityError(f"bundle {folder}: {name} is missing")
        data = path.read_bytes()
        if len(data) != expected.length or hashlib.sha256(data).hexdigest() != expected.sha256:
            raise IntegrityError(
                f"bundle {folder}: {name} does not match the manifest "
                f"(expected sha256 {expected.sha256[:12]}…, {expected.length} bytes)"
            )
    extra = sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file() and p.name != MANIFEST_FILE and p.name not in manifest.files
    )
    if extra:
        raise IntegrityError(f"bundle {folder}: files not in the manifest: {', '.join(extra)}")
    return Bundle(folder=folder, manifest=manifest, manifest_sha256=hashlib.sha256(raw).hexdigest())
