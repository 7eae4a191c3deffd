"""Packaging: opset conversion, precision decisions, budgets, deterministic bundles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pumpops.errors import ConfigError
from pumpops.fleet import TargetProfile, get_target
from pumpops.release import read_bundle
from pumpops.release._convert import convert_opset, default_opset, quantise_dynamic_int8, to_float32
from pumpops.release._package import (
    Candidate,
    HeldOutScores,
    PackageSettings,
    SourceModel,
    build_target,
    check_target_budgets,
    choose_precision,
    held_out,
    load_source,
    package_model,
    score_all,
)

FAST = PackageSettings(latency_runs=5, max_holdout_windows=300)


@pytest.fixture(scope="module")
def source(model_dir: Path) -> SourceModel:
    return load_source(model_dir, name="pumpops-test", version=1, run_id="run-1", validation_sha256="a" * 64)


@pytest.fixture(scope="module")
def held(model_dir: Path, skab_small: Path) -> HeldOutScores:
    return held_out(model_dir, skab_small, max_windows=300)


def _target(base: str = "x86_64-ipc", **changes: object) -> TargetProfile:
    profile = get_target(base)
    doc = profile.model_dump()
    budgets = changes.pop("budgets", None)
    doc.update(changes)
    if budgets:
        doc["budgets"] = {**doc["budgets"], **budgets}  # type: ignore[dict-item]
    return TargetProfile.model_validate(doc)


def test_convert_opset_controller_same_scores(source: SourceModel, held: HeldOutScores) -> None:
    converted, why = convert_opset(source.onnx_bytes, get_target("armv7-controller").max_opset)
    assert default_opset(converted) == 13
    assert "17 -> 13" in why
    before, after = score_all(source.onnx_bytes, held), score_all(converted, held)
    for dev, scores in before.items():
        np.testing.assert_array_equal(scores, after[dev])


def test_convert_opset_impossible_fails_clearly(source: SourceModel) -> None:
    with pytest.raises(ConfigError, match=r"cannot be expressed at opset 5: .*MatMul changed at opset 9"):
        convert_opset(source.onnx_bytes, 5)


def test_build_target_impossible_opset_not_ok(source: SourceModel, held: HeldOutScores) -> None:
    built = build_target(source, _target(max_opset=5, id="ancient"), held, FAST)
    assert not built.ok
    assert "cannot be expressed at opset 5" in built.problems[0]


def test_quantise_float64_graph_needs_float32_first(source: SourceModel) -> None:
    # onnxruntime quantises float32 weights only: a float64 graph comes out without integer ops
    unchanged_ops = quantise_dynamic_int8(source.onnx_bytes)
    assert b"MatMulInteger" not in unchanged_ops
    assert b"MatMulInteger" in quantise_dynamic_int8(to_float32(source.onnx_bytes))


def test_build_target_int8_refused_beyond_tolerance(source: SourceModel, held: HeldOutScores) -> None:
    strict = PackageSettings(int8_tolerance=0.0, latency_runs=5, max_holdout_windows=300)
    built = build_target(source, get_target("x86_64-ipc"), held, strict)
    assert built.ok
    assert built.precision == "float64"
    assert any(d.startswith("int8 refused: score deviation") for d in built.decisions)
    assert built.deviations["int8"] is not None
    assert built.deviations["int8"] > 0


def test_build_target_float32_kept_where_preferred(source: SourceModel, held: HeldOutScores) -> None:
    built = build_target(source, get_target("armv7-controller"), held, FAST)
    assert built.ok
    assert built.precision in ("float32", "int8")
    assert default_opset(built.onnx_bytes) == 13
    assert any(d.startswith("float32 kept") for d in built.decisions)


def test_build_target_int8_not_allowed_recorded(source: SourceModel, held: HeldOutScores) -> None:
    built = build_target(source, _target(int8_allowed=False, float32_preferred=False), held, FAST)
    assert built.precision == "float64"
    assert "int8 not tried: the target profile does not allow int8" in built.decisions


@pytest.mark.parametrize(
    ("deviation", "size", "kept", "reason"),
    [
        (0.01, 10, "int8", "int8 kept"),
        (0.2, 10, "float32", "int8 refused: score deviation 0.2"),
        (0.01, 1000, "float32", "not smaller"),
    ],
)
def test_choose_precision_by_tolerance_and_size(deviation: float, size: int, kept: str, reason: str) -> None:
    candidates = [
        Candidate("float64", b"x" * 200, 0.0),
        Candidate("float32", b"x" * 100, 1e-5),
        Candidate("int8", b"x" * size, deviation),
    ]
    chosen, reasons = choose_precision(candidates, get_target("armv7-controller"), PackageSettings())
    assert chosen.precision == kept
    assert any(reason in r for r in reasons)


def test_check_target_budgets_each_reason() -> None:
    target = _target(budgets={"max_model_bytes": 10, "max_latency_ms": 1.0, "max_peak_memory_mb": 1.0})
    problems = check_target_budgets(11, 2.0, 3.0, target)
    assert len(problems) == 3
    assert "model size 11 bytes exceeds the budget of 10 bytes" in problems[0]
    assert "one thread" in problems[1]


def test_package_model_budget_violated_writes_nothing(
    source: SourceModel, tmp_path: Path, skab_small: Path
) -> None:
    tiny = _target(id="tiny-box", budgets={"max_model_bytes": 100})
    with pytest.raises(ConfigError, match=r"target tiny-box: model size \d+ bytes exceeds the budget of 100"):
        package_model(source, [tiny], out=tmp_path, data=skab_small, settings=FAST)
    assert not any(tmp_path.iterdir())


def test_package_model_same_inputs_same_bytes(source: SourceModel, tmp_path: Path, skab_small: Path) -> None:
    targets = [get_target("armv7-controller"), get_target("x86_64-ipc")]
    _, first = package_model(source, targets, out=tmp_path / "a", data=skab_small, group="g1", settings=FAST)
    _, second = package_model(source, targets, out=tmp_path / "b", data=skab_small, group="g1", settings=FAST)
    for a, b in zip(first, second, strict=True):
        assert a.folder.relative_to(tmp_path / "a") == b.folder.relative_to(tmp_path / "b")
        assert (a.folder / "manifest.json").read_bytes() == (b.folder / "manifest.json").read_bytes()
        assert (a.folder / "model.onnx").read_bytes() == (b.folder / "model.onnx").read_bytes()
    bundle = read_bundle(tmp_path / "a" / "g1" / "armv7-controller" / "1")
    m = bundle.manifest
    assert (m.model_name, m.model_version, m.group, m.target.opset) == ("pumpops-test", 1, "g1", 13)
    assert m.lineage.run_id == "run-1"
    assert m.lineage.validation_report_sha256 == "a" * 64
    assert m.inputs.sensors
    assert m.calibrations
    assert m.alarm.smoothing
