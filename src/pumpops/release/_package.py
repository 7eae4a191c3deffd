"""Per-target packaging: from a registered model's folder to one verified bundle per target.

For each target profile: express the model at the target's opset and IR
version, apply onnxruntime's basic (portable) optimisations, try float32 and
int8 where the profile allows and keep them only if the scores on held-out
data stay within the configured tolerance of the float64 model, check the
target's budgets, and write a deterministic bundle (:func:`pumpops.schema.write_bundle`).
Held-out scores, latency and memory are measured in ``_scores.py``.

The decisions (:func:`choose_precision`, :func:`check_target_budgets`) are pure
functions of measurements; :func:`build_target` and :func:`package_model` do
the I/O. Latency and peak memory are measured on the build machine with one
onnxruntime thread; the bundle says so, since the device is not at hand.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pumpops.errors import ConfigError, NotFoundError, UnitError
from pumpops.fleet import TargetProfile, load_profiles, version_tuple
from pumpops.release._convert import (
    convert_opset,
    default_opset,
    optimise_basic,
    quantise_dynamic_int8,
    set_ir_version,
    to_float32,
)
from pumpops.release._scores import HeldOutScores, deviation, held_out, measure, score_all
from pumpops.schema import (
    CANONICAL_SENSORS,
    MODEL_FILE,
    Bundle,
    BundleAlarm,
    BundleBuild,
    BundleCalibration,
    BundleInputs,
    BundleLineage,
    BundleManifest,
    BundleSensor,
    BundleTarget,
    affine_to,
    write_bundle,
)

__all__ = [
    "BuiltTarget",
    "Candidate",
    "HeldOutScores",
    "PackageSettings",
    "SourceModel",
    "build_target",
    "check_target_budgets",
    "choose_precision",
    "load_source",
    "package_model",
    "write_target",
]

Precision = Literal["float64", "float32", "int8"]


@dataclass(frozen=True)
class PackageSettings:
    """How packaging decides.

    Attributes:
        int8_tolerance: largest allowed ``max |score_int8 - score_float| / threshold``
            over held-out rows (a fraction of each device's alarm threshold).
        float32_tolerance: the same bound for float32 against float64.
        latency_runs: timed single-window runs per measurement (median reported).
        max_holdout_windows: windows scored per held-out device (caps the time).
        min_agent_version: the oldest agent the bundle is for (the target's, if higher).
    """

    int8_tolerance: float = 0.05
    float32_tolerance: float = 1e-3
    latency_runs: int = 100
    max_holdout_windows: int = 2000
    min_agent_version: str = "0.1.0"


@dataclass(frozen=True)
class SourceModel:
    """A registered model version's folder, read once.

    Attributes:
        name: registered model name.
        version: model version.
        folder: the pipeline's model folder.
        onnx_bytes: the float64 model as trained.
        detector_manifest: ``manifest.json`` of the folder (the detector's contract).
        calibrations: ``calibrations.json``'s devices (device id -> calibration dict).
        lineage: run, dataset digest, validation report digest, config hash.
    """

    name: str
    version: int
    folder: Path
    onnx_bytes: bytes
    detector_manifest: dict[str, Any]
    calibrations: dict[str, dict[str, Any]]
    lineage: dict[str, Any]

    @property
    def group(self) -> str:
        """The device group the model was trained for."""
        return str(self.detector_manifest.get("group", ""))


def load_source(
    folder: Path,
    *,
    name: str,
    version: int,
    run_id: str | None = None,
    validation_sha256: str | None = None,
) -> SourceModel:
    """Read a pipeline model folder for packaging.

    Raises:
        NotFoundError: the folder is not a model folder.
    """
    try:
        onnx_bytes = (folder / MODEL_FILE).read_bytes()
        manifest = json.loads((folder / "manifest.json").read_bytes())
        cals = json.loads((folder / "calibrations.json").read_bytes())
        lineage = json.loads((folder / "lineage.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise NotFoundError(f"{folder} is not a pumpops model folder: {exc}") from exc
    return SourceModel(
        name=name,
        version=version,
        folder=folder,
        onnx_bytes=onnx_bytes,
        detector_manifest=manifest,
        calibrations=dict(cals.get("devices", {})),
        lineage={
            "run_id": run_id,
            "dataset_digest": lineage.get("dataset_digest"),
            "config_hash": lineage.get("config_hash"),
            "validation_report_sha256": validation_sha256,
        },
    )


# ------------------------------------------------------------------------------ pure decisions


@dataclass(frozen=True)
class Candidate:
    """One precision tried for a target: its bytes (or why there are none) and its deviation."""

    precision: Precision
    onnx_bytes: bytes | None
    deviation: float | None = None
    error: str | None = None


def choose_precision(
    candidates: Sequence[Candidate], target: TargetProfile, settings: PackageSettings
) -> tuple[Candidate, list[str]]:
    """Pick the precision to ship and say why the others were not.

    Prefers int8, then float32, then float64, each only where the profile
    allows it, it was built, its deviation is within tolerance and it is not
    larger than the float model it came from.

    Args:
        candidates: float64 first (always built), then float32 and int8 if tried.
        target: the target profile.
        settings: the tolerances.

    Returns:
        The chosen candidate and one sentence per precision considered.
    """
    by = {c.precision: c for c in candidates}
    base = by["float64"]
    assert base.onnx_bytes is not None
    reasons: list[str] = []
    chosen = base
    f32 = by.get("float32")
    if not target.float32_preferred and not target.int8_allowed:
        reasons.append("float32 not tried: the target neither prefers float32 nor allows int8")
    elif f32 is None or f32.onnx_bytes is None:
        reasons.append(f"float32 not applicable: {f32.error if f32 else 'not built'}")
    elif f32.deviation is None or f32.deviation > settings.float32_tolerance:
        reasons.append(
            f"float32 refused: score deviation {f32.deviation:.3g} of the threshold exceeds the "
            f"tolerance {settings.float32_tolerance:g}"
        )
    elif target.float32_preferred:
        chosen = f32
        reasons.append(
            f"float32 kept: score deviation {f32.deviation:.3g} of the threshold "
            f"(tolerance {settings.float32_tolerance:g}); the target prefers float32"
        )
    else:
        reasons.append("float32 checked (only as the base for int8): the target does not prefer it")
    q = by.get("int8")
    if not target.int8_allowed:
        reasons.append("int8 not tried: the target profile does not allow int8")
    elif q is None or q.onnx_bytes is None:
        reasons.append(f"int8 not applicable: {q.error if q else 'needs a float32 model within tolerance'}")
    elif q.deviation is None or q.deviation > settings.int8_tolerance:
        reasons.append(
            f"int8 refused: score deviation {q.deviation:.3g} of the threshold exceeds the "
            f"tolerance {settings.int8_tolerance:g}; kept {chosen.precision}"
        )
    elif len(q.onnx_bytes) >= len(chosen.onnx_bytes or b""):
        reasons.append(
            f"int8 refused: within tolerance (deviation {q.deviation:.3g}) but not smaller "
            f"({len(q.onnx_bytes)} vs {len(chosen.onnx_bytes or b'')} bytes: quantisation nodes outweigh "
            f"the weights of a model this small); kept {chosen.precision}"
        )
    else:
        chosen = q
        reasons.append(
            f"int8 kept: score deviation {q.deviation:.3g} of the threshold "
            f"(tolerance {settings.int8_tolerance:g})"
        )
    return chosen, reasons


def check_target_budgets(
    model_bytes: int, latency_ms: float, peak_memory_mb: float, target: TargetProfile
) -> list[str]:
    """The target's budgets that a build exceeds, as sentences (empty: all within).

    >>> from pumpops.fleet import get_target
    >>> check_target_budgets(10, 1.0, 1.0, get_target("x86_64-ipc"))
    []
    """
    b = target.budgets
    out = []
    if model_bytes > b.max_model_bytes:
        out.append(f"model size {model_bytes} bytes exceeds the budget of {b.max_model_bytes} bytes")
    if latency_ms > b.max_latency_ms:
        out.append(
            f"latency {latency_ms:.3f} ms per window (build machine, one thread) "
            f"exceeds {b.max_latency_ms} ms"
        )
    if peak_memory_mb > b.max_peak_memory_mb:
        out.append(f"peak memory {peak_memory_mb:.1f} MB (build machine) exceeds {b.max_peak_memory_mb} MB")
    return out


# ------------------------------------------------------------------------------ building


@dataclass(frozen=True)
class BuiltTarget:
    """What packaging built for one target (in memory, not yet written).

    Attributes:
        target: the profile.
        ok: whether it may be bundled (False: ``problems`` says why).
        onnx_bytes: the model as built.
        precision: its precision.
        optimisation: the optimisation applied.
        source_opset: the registered model's opset.
        decisions: one sentence per step.
        budgets: measured figures and budgets.
        problems: why it cannot be shipped (budgets exceeded, opset impossible).
        deviations: score deviation of each precision tried from float64.
    """

    target: TargetProfile
    ok: bool
    onnx_bytes: bytes
    precision: Precision
    optimisation: str
    source_opset: int
    decisions: tuple[str, ...]
    budgets: dict[str, Any]
    problems: tuple[str, ...] = ()
    deviations: dict[str, float | None] = field(default_factory=dict)


def _try(precision: Precision, make: Any, base: dict[str, np.ndarray], held: HeldOutScores) -> Candidate:
    try:
        data = make()
        return Candidate(precision, data, deviation(base, score_all(data, held), held.threshold))
    except Exception as exc:  # any failure to build or load means "not applicable", recorded
        return Candidate(precision, None, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")


def build_target(
    source: SourceModel, target: TargetProfile, held: HeldOutScores, settings: PackageSettings
) -> BuiltTarget:
    """Build the model for one target: opset, IR version, optimisation, precision, budgets.

    Never raises for a model that cannot be built for the target: the
    returned :class:`BuiltTarget` has ``ok=False`` and says why.
    """
    source_opset = default_opset(source.onnx_bytes)
    decisions: list[str] = []
    try:
        data, why = convert_opset(source.onnx_bytes, target.max_opset)
        decisions.append(why)
        data, why = set_ir_version(data, target.max_ir_version)
        decisions.append(why)
    except ConfigError as exc:
        return BuiltTarget(
            target, False, b"", "float64", "none", source_opset, tuple(decisions), {}, problems=(str(exc),)
        )
    base = score_all(source.onnx_bytes, held)
    optimisation = "none"
    try:
        optimised = optimise_basic(data)
        dev = deviation(base, score_all(optimised, held), held.threshold)
        if dev <= settings.float32_tolerance / 10:
            data, optimisation = optimised, "onnxruntime-basic"
            decisions.append("optimised offline with onnxruntime's basic (portable) level")
        else:
            decisions.append(f"optimisation dropped: it changed scores by {dev:.3g} of the threshold")
    except Exception as exc:  # optimisation is optional; record and ship unoptimised
        decisions.append(f"optimisation skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
    float64 = Candidate("float64", data, deviation(base, score_all(data, held), held.threshold))
    candidates = [float64]
    if target.float32_preferred or target.int8_allowed:
        f32 = _try("float32", lambda: to_float32(data), base, held)
        candidates.append(f32)
        if target.int8_allowed:
            if f32.onnx_bytes is not None:
                f32_bytes = f32.onnx_bytes
                candidates.append(_try("int8", lambda: quantise_dynamic_int8(f32_bytes), base, held))
            else:
                candidates.append(
                    Candidate(
                        "int8",
                        None,
                        error=f"onnxruntime quantises float32 weights only and the float32 model "
                        f"could not be built ({f32.error})",
                    )
                )
    chosen, reasons = choose_precision(candidates, target, settings)
    decisions.extend(reasons)
    assert chosen.onnx_bytes is not None
    figures = measure(chosen.onnx_bytes, held, settings.latency_runs)
    problems = check_target_budgets(
        figures["model_bytes"], figures["latency_ms"], figures["peak_memory_mb"], target
    )
    budgets = {**figures, **target.budgets.model_dump()}
    decisions.append(
        "budgets: "
        + ("within all" if not problems else "; ".join(problems))
        + " (latency and memory measured on the build machine with one thread)"
    )
    return BuiltTarget(
        target,
        not problems,
        chosen.onnx_bytes,
        chosen.precision,
        optimisation,
        source_opset,
        tuple(decisions),
        budgets,
        problems=tuple(problems),
        deviations={c.precision: c.deviation for c in candidates},
    )


def _max_version(a: str, b: str) -> str:
    return a if version_tuple(a) >= version_tuple(b) else b


def unit_pairs(sensor: str, unit: str) -> dict[str, tuple[float, float]]:
    """``{unit: (scale, offset)}`` into ``unit`` from every unit a shipped profile reports ``sensor`` in.

    Computed here with pint (``pumpops.schema.affine_to``) so that the device converts with
    a multiply-add and never loads a units library. ``unit`` itself and the sensor's
    canonical SI unit are always there; a unit that does not convert is left out (the
    device then reports the model incompatible, naming the sensor and the unit).

    >>> unit_pairs("discharge_pressure", "Pa")["bar"]
    (100000.0, 0.0)
    """
    units = {unit}
    if sensor in CANONICAL_SENSORS:
        units.add(CANONICAL_SENSORS[sensor].unit)
    for profile in load_profiles().values():
        units.update(s.unit for s in profile.sensors if s.canonical == sensor)
    pairs: dict[str, tuple[float, float]] = {}
    for u in sorted(units):
        try:
            pairs[u] = affine_to(u, unit)
        except UnitError:
            continue
    return pairs


def manifest_for(
    source: SourceModel, built: BuiltTarget, group: str, settings: PackageSettings
) -> BundleManifest:
    """The bundle manifest of one built target (``files`` is filled in by :func:`write_bundle`)."""
    det = source.detector_manifest
    inputs = det.get("inputs", {})
    alarm = det.get("alarm", {})
    t = built.target
    dtype: Literal["float64", "float32"] = "float64" if built.precision == "float64" else "float32"
    return BundleManifest(
        model_name=source.name,
        model_version=source.version,
        group=group,
        target=BundleTarget(
            id=t.id,
            arch=t.arch,
            opset=min(t.max_opset, built.source_opset),
            ir_version=t.max_ir_version,
            onnxruntime=f">={t.onnxruntime_min},<={t.onnxruntime_max}",
            execution_providers=t.execution_providers,
            security_features=t.security_features,
            profile_sha256=t.digest(),
        ),
        min_agent_version=_max_version(settings.min_agent_version, t.min_agent_version),
        inputs=BundleInputs(
            sensors=tuple(
                BundleSensor(name=s["name"], unit=s["unit"], from_units=unit_pairs(s["name"], s["unit"]))
                for s in inputs.get("sensors", [])
            ),
            window_rows=int(inputs.get("window_rows", 1)),
            dtype=dtype,
        ),
        alarm=BundleAlarm(
            compare=str(alarm.get("compare", "score > threshold")),
            threshold=str(alarm.get("threshold", "calibration.threshold")),
            smoothing=dict(alarm.get("smoothing", {})),
        ),
        calibrations={
            dev: BundleCalibration(
                center=tuple(cal["center"]),
                scale=tuple(cal["scale"]),
                threshold=float(cal["threshold"]),
                quantiles=tuple(tuple(row) for row in cal.get("quantiles", [])),
                n_rows=int(cal.get("n_rows", 0)),
                extra=dict(cal.get("extra", {})),
            )
            for dev, cal in sorted(source.calibrations.items())
        },
        detector=det,
        build=BundleBuild(
            precision=built.precision,
            source_opset=built.source_opset,
            optimisation=built.optimisation,
            decisions=built.decisions,
            budgets={k: v for k, v in built.budgets.items() if k not in {"latency_ms", "peak_memory_mb"}},
        ),
        lineage=BundleLineage(
            run_id=source.lineage.get("run_id"),
            dataset_digest=source.lineage.get("dataset_digest"),
            validation_report_sha256=source.lineage.get("validation_report_sha256"),
            source_model_sha256=hashlib.sha256(source.onnx_bytes).hexdigest(),
            config_hash=source.lineage.get("config_hash"),
        ),
        files={},
    )


def write_target(
    out: Path, source: SourceModel, built: BuiltTarget, group: str, settings: PackageSettings
) -> Bundle:
    """Write one built target as a bundle under ``out``."""
    return write_bundle(out, manifest_for(source, built, group, settings), {MODEL_FILE: built.onnx_bytes})


def package_model(
    source: SourceModel,
    targets: Sequence[TargetProfile],
    *,
    out: Path,
    data: Path | int | None,
    group: str | None = None,
    settings: PackageSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[BuiltTarget], list[Bundle]]:
    """Build every target and, only if all can be shipped, write their bundles.

    Args:
        source: the registered model's folder.
        targets: the target profiles.
        out: the bundle root (``<out>/<group>/<target>/<version>``).
        data: held-out data: a SKAB-format folder or a simulation seed.
        group: the device group (default: the model's).
        settings: tolerances and measurement settings.
        progress: told each step as it starts (one line for people).

    Returns:
        What was built per target, and the written bundles.

    Raises:
        ConfigError: a target cannot be built or exceeds its budgets (nothing is written).
    """
    settings = settings or PackageSettings()
    group = group or source.group
    if not group:
        raise ConfigError("the model names no device group; pass --group")
    say = progress or (lambda _: None)
    say("preparing the held-out windows")
    held = held_out(source.folder, data, max_windows=settings.max_holdout_windows)
    built = []
    for number, target in enumerate(targets, start=1):
        say(f"building and measuring target {target.id} ({number} of {len(targets)})")
        built.append(build_target(source, target, held, settings))
    failed = [b for b in built if not b.ok]
    if failed:
        raise ConfigError(
            "cannot release for "
            + "; ".join(f"target {b.target.id}: {', '.join(b.problems)}" for b in failed)
            + " (nothing written)"
        )
    bundles = [write_target(out, source, b, group, settings) for b in built]
    return built, bundles
