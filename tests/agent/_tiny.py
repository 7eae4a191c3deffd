"""A small real device: SKAB rows as a CSV, a tiny ONNX model installed in the slots, an ``agent.toml``.

The model is hand-made (mean ``|window - center| / scale`` per window) for the
``skab-testbed`` profile's eight sensors in SI units, with the unit pairs the hub
computes (``pumpops.release``'s ``unit_pairs``) and a calibration for the device
taken from the rows themselves, so the agent detects at once without commissioning
or a hub. The TUF repository is an empty folder repository (update checks find
no bundle for the group, which the agent reports and carries on).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from pumpops.edge import HealthDecision, Slots
from pumpops.edge._device import read_profile
from pumpops.release import TufRepository, generate_signer
from pumpops.release._package import unit_pairs
from pumpops.schema import (
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

DEVICE = "tiny-pump-1"
SITE = "bench"
GROUP = "tiny"


def write_rows(skab_dir: Path, path: Path, rows: range | list[int]) -> Path:
    """These rows of SKAB's anomaly-free recording, as a CSV file.

    The values are SKAB's; the times are made exactly one second apart (the recording
    skips and repeats seconds), so that one row is one grid row and scores can be counted.
    """
    lines = (skab_dir / "anomaly-free" / "anomaly-free.csv").read_text().splitlines()
    out = []
    for i, row in enumerate(rows):
        line = lines[1 + row]
        stamp = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=i)
        out.append(stamp.strftime("%Y-%m-%d %H:%M:%S") + line[line.index(";") :])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([lines[0], *out]) + "\n")
    return path


def _onnx(window_rows: int, n_sensors: int) -> bytes:
    win = helper.make_tensor_value_info("window", TensorProto.DOUBLE, ["n", window_rows, n_sensors])
    center = helper.make_tensor_value_info("center", TensorProto.DOUBLE, [n_sensors])
    scale = helper.make_tensor_value_info("scale", TensorProto.DOUBLE, [n_sensors])
    score = helper.make_tensor_value_info("score", TensorProto.DOUBLE, ["n"])
    nodes = [
        helper.make_node("Sub", ["window", "center"], ["d"]),
        helper.make_node("Div", ["d", "scale"], ["z"]),
        helper.make_node("Abs", ["z"], ["a"]),
        helper.make_node("ReduceMean", ["a"], ["score"], axes=[1, 2], keepdims=0),
    ]
    graph = helper.make_graph(nodes, "tiny", [win, center, scale], [score])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def install_model(
    folder: Path,
    csv: Path,
    *,
    window_rows: int,
    smoothing: dict[str, Any] | None = None,
    threshold: float = 50.0,
) -> None:
    """Install a tiny model for :data:`DEVICE` into ``folder / "state" / "slots"``."""
    profile = read_profile("skab-testbed")
    sensors = [(s.canonical, s.unit) for s in profile.sensors]
    from pumpops.schema import CANONICAL_SENSORS

    si = [(name, CANONICAL_SENSORS[name].unit) for name, _ in sensors]
    pairs = [unit_pairs(name, unit) for name, unit in si]
    raw = np.array(
        [[float(x) for x in line.split(";")[1:9]] for line in csv.read_text().splitlines()[1:]],
        dtype=np.float64,
    )
    rows = np.column_stack([raw[:, j] * pairs[j][u][0] + pairs[j][u][1] for j, (_, u) in enumerate(sensors)])
    center = np.median(rows, axis=0)
    spread = np.percentile(rows, 75, axis=0) - np.percentile(rows, 25, axis=0)
    scale = np.maximum(spread, 0.01 * np.abs(center) + 1e-6)
    manifest = BundleManifest(
        model_name="tiny",
        model_version=1,
        group=GROUP,
        target=BundleTarget(
            id="x86_64-ipc",
            arch="x86_64",
            opset=13,
            ir_version=8,
            onnxruntime=">=1.16",
            execution_providers=("CPUExecutionProvider",),
            profile_sha256="0" * 64,
        ),
        min_agent_version="0.1.0",
        inputs=BundleInputs(
            sensors=tuple(
                BundleSensor(name=n, unit=u, from_units=p) for (n, u), p in zip(si, pairs, strict=True)
            ),
            window_rows=window_rows,
            dtype="float64",
        ),
        alarm=BundleAlarm(
            compare="score > threshold", threshold="calibration.threshold", smoothing=smoothing or {}
        ),
        calibrations={
            DEVICE: BundleCalibration(
                center=tuple(center), scale=tuple(scale), threshold=threshold, n_rows=len(rows)
            )
        },
        detector={},
        build=BundleBuild(
            precision="float64", source_opset=13, optimisation="none", decisions=(), budgets={}
        ),
        lineage=BundleLineage(
            run_id=None, dataset_digest=None, validation_report_sha256=None, source_model_sha256="0" * 64
        ),
        files={},
    )
    bundle = write_bundle(folder / "bundles", manifest, {"model.onnx": _onnx(window_rows, len(si))})
    Slots(folder / "state" / "slots").install(bundle.folder, lambda _b: HealthDecision(True, ()))


def make_repository(folder: Path) -> Path:
    """An empty TUF folder repository under ``folder / "repo"``; returns its trusted root file."""
    repo = TufRepository.create(
        folder / "repo",
        root_signers=[generate_signer()],
        online_signers={r: [generate_signer()] for r in ("targets", "snapshot", "timestamp")},
    )
    root = folder / "root.json"
    root.write_bytes(repo.root_bytes(1))
    return root


def settings(folder: Path, csv: Path, *, repository: dict[str, Any], **agent: Any) -> dict[str, Any]:
    """A device's settings: SKAB rows from ``csv``, no broker, the given repository."""
    return {
        "agent": {
            "device_id": DEVICE,
            "site": SITE,
            "group": GROUP,
            "profile": "skab-testbed",
            "target": "x86_64-ipc",
            "state_dir": str(folder / "state"),
            **agent,
        },
        "broker": {"url": "none"},
        "repository": repository,
        "source": {"kind": "skab", "path": str(csv), "speed": 0, "chunk_s": 1},
    }


def write_settings(path: Path, doc: dict[str, Any]) -> Path:
    """``agent.toml`` from nested dicts."""
    lines = [f"{k} = {json.dumps(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for section, values in doc.items():
        if isinstance(values, dict):
            lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path
