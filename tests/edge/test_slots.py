"""A/B slots: install into the inactive slot, health-check, switch atomically, roll back, survive kill -9.

Bundles are made pipeline-free: a hand-made ONNX graph (``|window - center| /
scale`` averaged per window) whose inputs match the manifest, written with
:func:`pumpops.schema.write_bundle`. The kill tests run an install in
a subprocess that SIGKILLs itself at a named step, then reopen the slots as a
restarted agent would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from pumpops.edge import POINTER_FILE, HealthDecision, Slots, decide_health, measure_health
from pumpops.errors import IncompatibleBundleError, IntegrityError, NotFoundError
from pumpops.schema import (
    Bundle,
    BundleAlarm,
    BundleBuild,
    BundleCalibration,
    BundleInputs,
    BundleLineage,
    BundleManifest,
    BundleSensor,
    BundleTarget,
    write_bundle,
)

DEVICE = "pump-001"
ROWS, SENSORS = 4, 2


def onnx_model(kind: str = "good") -> bytes:
    """A tiny scorer: mean |window - center| / scale per window; ``nan`` adds NaN to every score."""
    win = helper.make_tensor_value_info("window", TensorProto.DOUBLE, ["n", ROWS, SENSORS])
    center = helper.make_tensor_value_info("center", TensorProto.DOUBLE, [SENSORS])
    scale = helper.make_tensor_value_info("scale", TensorProto.DOUBLE, [SENSORS])
    score = helper.make_tensor_value_info("score", TensorProto.DOUBLE, ["n"])
    nodes = [
        helper.make_node("Sub", ["window", "center"], ["d"]),
        helper.make_node("Div", ["d", "scale"], ["z"]),
        helper.make_node("Abs", ["z"], ["a"]),
        helper.make_node("ReduceMean", ["a"], ["m" if kind == "nan" else "score"], axes=[1, 2], keepdims=0),
    ]
    inits = []
    if kind == "nan":
        inits.append(helper.make_tensor("bad", TensorProto.DOUBLE, [], [float("nan")]))
        nodes.append(helper.make_node("Add", ["m", "bad"], ["score"]))
    graph = helper.make_graph(nodes, "scorer", [win, center, scale], [score], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def make_bundle(
    out: Path, version: int, model: bytes | None = None, *, max_latency_ms: float = 1000.0
) -> Bundle:
    """Write a bundle for group ``north-sea``, target ``x86-64-ipc``, calibrated for :data:`DEVICE`."""
    manifest = BundleManifest(
        model_name="scorer",
        model_version=version,
        group="north-sea",
        target=BundleTarget(
            id="x86-64-ipc",
            arch="x86_64",
            opset=13,
            ir_version=8,
            onnxruntime=">=1.16",
            execution_providers=("CPUExecutionProvider",),
            profile_sha256="0" * 64,
        ),
        min_agent_version="1.0.0",
        inputs=BundleInputs(
            sensors=(BundleSensor(name="pressure", unit="Pa"), BundleSensor(name="temperature", unit="K")),
            window_rows=ROWS,
            dtype="float64",
        ),
        alarm=BundleAlarm(compare="score > threshold", threshold="calibration.threshold", smoothing={}),
        calibrations={DEVICE: BundleCalibration(center=(2e5, 300.0), scale=(1e4, 2.0), threshold=3.0)},
        detector={},
        build=BundleBuild(
            precision="float64",
            source_opset=13,
            optimisation="none",
            decisions=(),
            budgets={"max_latency_ms": max_latency_ms},
        ),
        lineage=BundleLineage(
            run_id=None, dataset_digest=None, validation_report_sha256=None, source_model_sha256="0" * 64
        ),
        files={},
    )
    return write_bundle(out, manifest, {"model.onnx": onnx_model() if model is None else model})


def health(bundle: Bundle) -> HealthDecision:
    """The agent's health check for :data:`DEVICE` with the bundle's own latency budget."""
    return decide_health(measure_health(bundle, DEVICE), bundle.manifest.build.budgets.get("max_latency_ms"))


@pytest.fixture
def bundles(tmp_path: Path) -> dict[str, Path]:
    out = tmp_path / "bundles"
    return {
        "v1": make_bundle(out, 1).folder,
        "v2": make_bundle(out, 2).folder,
        "v3": make_bundle(out, 3).folder,
        "nan": make_bundle(out, 4, onnx_model("nan")).folder,
        "truncated": make_bundle(out, 5, onnx_model()[:40]).folder,
    }


def test_slots_empty_has_no_current(tmp_path: Path) -> None:
    assert Slots(tmp_path / "slots").current() is None


def test_slots_first_install_becomes_current(tmp_path: Path, bundles: dict[str, Path]) -> None:
    slots = Slots(tmp_path / "slots")
    state = slots.install(bundles["v1"], health)
    assert (state.slot, state.model_name, state.model_version, state.previous) == ("A", "scorer", 1, None)
    assert slots.current() == state
    assert state.path == tmp_path / "slots" / "A"


def test_slots_update_goes_to_inactive_slot_and_records_previous(
    tmp_path: Path, bundles: dict[str, Path]
) -> None:
    slots = Slots(tmp_path / "slots")
    slots.install(bundles["v1"], health)
    state = slots.install(bundles["v2"], health)
    assert (state.slot, state.model_version, state.previous) == ("B", 2, "A")
    state = slots.install(bundles["v3"], health)
    assert (state.slot, state.model_version, state.previous) == ("A", 3, "B")


def test_slots_rollback_returns_to_previous(tmp_path: Path, bundles: dict[str, Path]) -> None:
    slots = Slots(tmp_path / "slots")
    slots.install(bundles["v1"], health)
    slots.install(bundles["v2"], health)
    back = slots.rollback()
    assert (back.slot, back.model_version, back.previous) == ("A", 1, "B")
    assert Slots(tmp_path / "slots").current() == back


def test_slots_rollback_without_previous_raises(tmp_path: Path, bundles: dict[str, Path]) -> None:
    slots = Slots(tmp_path / "slots")
    with pytest.raises(NotFoundError):
        slots.rollback()
    slots.install(bundles["v1"], health)
    with pytest.raises(NotFoundError, match="no previous good model"):
        slots.rollback()


@pytest.mark.parametrize(
    ("broken", "reason"), [("nan", "not finite"), ("truncated", "does not load")], ids=["nan", "truncated"]
)
def test_slots_broken_model_refused_and_current_kept(
    tmp_path: Path, bundles: dict[str, Path], broken: str, reason: str
) -> None:
    slots = Slots(tmp_path / "slots")
    slots.install(bundles["v1"], health)
    with pytest.raises(IncompatibleBundleError, match=reason):
        slots.install(bundles[broken], health)
    state = Slots(tmp_path / "slots").current()
    assert state is not None
    assert (state.slot, state.model_version) == ("A", 1)
    assert reason in slots.failed()["B"]
    # The next good install into the same slot clears the mark.
    assert slots.install(bundles["v2"], health).slot == "B"
    assert slots.failed() == {}


def test_slots_crashing_health_check_refuses(tmp_path: Path, bundles: dict[str, Path]) -> None:
    def crash(bundle: Bundle) -> HealthDecision:
        raise RuntimeError("boom")

    slots = Slots(tmp_path / "slots")
    slots.install(bundles["v1"], health)
    with pytest.raises(IncompatibleBundleError, match="crashed: RuntimeError: boom"):
        slots.install(bundles["v2"], crash)
    assert slots.current().model_version == 1  # type: ignore[union-attr]


def test_slots_latency_over_budget_refused(tmp_path: Path, bundles: dict[str, Path]) -> None:
    slow = make_bundle(tmp_path / "other", 6, max_latency_ms=1e-6).folder
    slots = Slots(tmp_path / "slots")
    slots.install(bundles["v1"], health)
    with pytest.raises(IncompatibleBundleError, match="exceeds the target's"):
        slots.install(slow, health)
    assert slots.current() is not None
    assert slots.current().model_version == 1


def test_slots_failed_install_over_previous_disables_rollback(
    tmp_path: Path, bundles: dict[str, Path]
) -> None:
    slots = Slots(tmp_path / "slots")
    slots.install(bundles["v1"], health)
    slots.install(bundles["v2"], health)  # B current, A previous
    with pytest.raises(IncompatibleBundleError):
        slots.install(bundles["nan"], health)  # overwrites A
    state = slots.current()
    assert state is not None
    assert (state.slot, state.model_version, state.previous) == ("B", 2, None)
    with pytest.raises(NotFoundError):
        slots.rollback()


def test_slots_tampered_bundle_refused_before_copy(tmp_path: Path, bundles: dict[str, Path]) -> None:
    slots = Slots(tmp_path / "slots")
    slots.install(bundles["v1"], health)
    model = bundles["v2"] / "model.onnx"
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match the manifest"):
        slots.install(bundles["v2"], health)
    assert not (tmp_path / "slots" / "B").exists()
    assert slots.current().model_version == 1  # type: ignore[union-attr]


def test_slots_current_reverifies_the_running_slot(tmp_path: Path, bundles: dict[str, Path]) -> None:
    slots = Slots(tmp_path / "slots")
    slots.install(bundles["v1"], health)
    (tmp_path / "slots" / "A" / "model.onnx").write_bytes(b"rotten")
    with pytest.raises(IntegrityError):
        slots.current()


def test_slots_reopen_removes_leftovers(tmp_path: Path, bundles: dict[str, Path]) -> None:
    slots = Slots(tmp_path / "slots")
    slots.install(bundles["v1"], health)
    (tmp_path / "slots" / ".tmp-B.x").mkdir()
    (tmp_path / "slots" / ".old-B").mkdir()
    Slots(tmp_path / "slots")
    assert sorted(p.name for p in (tmp_path / "slots").iterdir()) == ["A", POINTER_FILE]


_KILLER = """
import os, signal, sys
from pathlib import Path
from pumpops.edge import Slots, decide_health, measure_health

root, bundle, point = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]

def health(b):
    return decide_health(measure_health(b, "pump-001"), None)

def hook(name):
    if name == point:
        os.kill(os.getpid(), signal.SIGKILL)

Slots(root).install(bundle, health, hook=hook)
print("finished")
"""

# (kill point, version current after restart when v1 was current and v2 was being installed)
KILL_POINTS = [
    ("copied", 1),
    ("placed", 1),
    ("checked", 1),
    ("before_switch", 1),
    ("switched", 2),
    ("done", 2),
]


def _install_and_die(root: Path, bundle: Path, point: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, str(root), str(bundle), point],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "finished" not in proc.stdout


@pytest.mark.parametrize(("point", "expected"), KILL_POINTS, ids=[p for p, _ in KILL_POINTS])
def test_slots_kill_during_install_leaves_a_complete_model(
    tmp_path: Path, bundles: dict[str, Path], point: str, expected: int
) -> None:
    root = tmp_path / "slots"
    Slots(root).install(bundles["v1"], health)
    _install_and_die(root, bundles["v2"], point)
    restarted = Slots(root)
    state = restarted.current()  # re-verifies every hash of the current slot
    assert state is not None
    assert state.model_version == expected
    assert health(restarted.bundle()).ok  # type: ignore[arg-type]
    assert not [p for p in root.iterdir() if p.name.startswith((".tmp-", ".old-"))]
    # And the agent can carry on: the next install works.
    assert restarted.install(bundles["v3"], health).model_version == 3


@pytest.mark.parametrize("point", ["copied", "before_switch"])
def test_slots_kill_during_first_install_leaves_no_current(
    tmp_path: Path, bundles: dict[str, Path], point: str
) -> None:
    root = tmp_path / "slots"
    _install_and_die(root, bundles["v1"], point)
    assert Slots(root).current() is None


def test_slots_pointer_is_one_small_json_file(tmp_path: Path, bundles: dict[str, Path]) -> None:
    slots = Slots(tmp_path / "slots")
    slots.install(bundles["v1"], health)
    slots.install(bundles["v2"], health)
    assert json.loads((tmp_path / "slots" / POINTER_FILE).read_text()) == {"current": "B", "previous": "A"}
    assert sorted(os.listdir(tmp_path / "slots" / "B")) == ["manifest.json", "model.onnx"]
