# ruff: noqa: N806 - W, S, P follow the notation of the detectors' docstrings
"""A detector's whole scoring path as one ONNX graph, and the manifest the edge agent runs it by.

The graph wraps the detector's model-specific core (:class:`OnnxCore`) in
the shared pre-processing (scaling, fast and slow window means, detrending,
weights) and post-processing (the mean over ``score_window`` positions); see
:mod:`pumpops.pipeline.detectors._base` for the contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pumpops.pipeline.detectors._numerics import (
    _CORE_SCORE,
    _FEATURES,
    _FORMAT,
    INPUT_CENTER,
    INPUT_SCALE,
    INPUT_WINDOW,
    ONNX_OPSET,
    OUTPUT_SCORE,
    scale_floor_vector,
)
from pumpops.schema import CANONICAL_SENSORS

if TYPE_CHECKING:
    from pumpops.pipeline.detectors._base import Detector

__all__ = ["detector_manifest", "feature_matrices", "scoring_graph"]


def feature_matrices(det: Detector) -> tuple[np.ndarray, np.ndarray]:
    """``(W, P)`` averaging matrices: fast mean and slow baseline at the last ``P`` positions.

    With per-sensor windows (``window_by_kind`` changing some sensor's window)
    the fast one is ``(S, W, P)``, one matrix per sensor.
    """
    W, P = det.input_length, det.score_window
    wins = det._windows()
    per_sensor = bool((wins != det.window).any())
    fast = np.zeros((len(wins), W, P)) if per_sensor else np.zeros((1, W, P))
    slow = np.zeros((W, P))
    for p in range(P):
        end = W - P + p + 1  # exclusive end row of position p
        for j, w in enumerate(wins if per_sensor else [det.window]):
            fast[j, end - w : end, p] = 1.0 / w
        if det.baseline_window:
            slow[end - det.baseline_window : end, p] = 1.0 / det.baseline_window
    return (fast if per_sensor else fast[0]), slow


def scoring_graph(det: Detector) -> bytes:
    """The scoring graph of a fitted detector as deterministic ONNX bytes (same fit, same bytes)."""
    S, W, P = det.n_sensors, det.input_length, det.score_window
    fast, slow = feature_matrices(det)
    inits = [
        numpy_helper.from_array(fast, "pre_fast"),
        numpy_helper.from_array(np.array([-1, det.n_features], dtype=np.int64), "pre_rows_shape"),
        numpy_helper.from_array(np.array([-1, P], dtype=np.int64), "pre_scores_shape"),
    ]
    scale_t = INPUT_SCALE
    nodes = []
    floor_rel = scale_floor_vector(det.sensors, det.scale_floor, det.scale_floors)
    if floor_rel.any():
        # variance floor: max(scale, floor * |center|) per sensor, as Detector._floored
        inits.append(numpy_helper.from_array(floor_rel, "pre_floor_rel"))
        nodes += [
            helper.make_node("Abs", [INPUT_CENTER], ["pre_abs_center"], name="pre_abs_center"),
            helper.make_node("Mul", ["pre_abs_center", "pre_floor_rel"], ["pre_floor"], name="pre_floor"),
            helper.make_node("Max", [INPUT_SCALE, "pre_floor"], ["pre_scale"], name="pre_scale_floor"),
        ]
        scale_t = "pre_scale"
    nodes += [
        helper.make_node("Sub", [INPUT_WINDOW, INPUT_CENTER], ["pre_centered"], name="pre_sub"),
        helper.make_node("Div", ["pre_centered", scale_t], ["pre_z"], name="pre_div"),
        helper.make_node("Transpose", ["pre_z"], ["pre_zt"], name="pre_transpose", perm=[0, 2, 1]),
    ]
    if fast.ndim == 2:
        nodes.append(
            helper.make_node("MatMul", ["pre_zt", "pre_fast"], ["pre_fast_mean"], name="pre_fast_mm")
        )
    else:  # one window per sensor: (B, S, 1, W) @ (S, W, P) -> (B, S, 1, P) -> (B, S, P)
        inits.append(numpy_helper.from_array(np.array([2], dtype=np.int64), "pre_axis2"))
        nodes += [
            helper.make_node("Unsqueeze", ["pre_zt", "pre_axis2"], ["pre_zt4"], name="pre_zt4"),
            helper.make_node("MatMul", ["pre_zt4", "pre_fast"], ["pre_fast4"], name="pre_fast_mm"),
            helper.make_node("Squeeze", ["pre_fast4", "pre_axis2"], ["pre_fast_mean"], name="pre_fast_sq"),
        ]
    feature_t = "pre_fast_mean"
    if det.baseline_window:
        mask = det._detrend_mask().reshape(S, 1)
        inits += [
            numpy_helper.from_array(slow, "pre_slow"),
            numpy_helper.from_array(mask, "pre_detrend_mask"),
        ]
        nodes += [
            helper.make_node("MatMul", ["pre_zt", "pre_slow"], ["pre_slow_mean"], name="pre_slow_mm"),
            helper.make_node(
                "Mul", ["pre_slow_mean", "pre_detrend_mask"], ["pre_slow_masked"], name="pre_mask"
            ),
            helper.make_node(
                "Sub", ["pre_fast_mean", "pre_slow_masked"], ["pre_detrended"], name="pre_detrend"
            ),
        ]
        feature_t = "pre_detrended"
    if det.detrend_weight != 1.0 and det.detrend:
        inits.append(numpy_helper.from_array(det._feature_weights().reshape(S, 1), "pre_weights"))
        nodes.append(helper.make_node("Mul", [feature_t, "pre_weights"], ["pre_weighted"], name="pre_weight"))
        feature_t = "pre_weighted"
    if det.change_weight > 0:
        # multi-scale: change features (fast - slow) * change_weight after the S level features
        inits.append(numpy_helper.from_array(np.array([det.change_weight]), "pre_change_weight"))
        nodes += [
            helper.make_node("Sub", ["pre_fast_mean", "pre_slow_mean"], ["pre_change"], name="pre_change"),
            helper.make_node(
                "Mul", ["pre_change", "pre_change_weight"], ["pre_change_w"], name="pre_change_w"
            ),
            helper.make_node("Concat", [feature_t, "pre_change_w"], ["pre_multi"], name="pre_multi", axis=1),
        ]
        feature_t = "pre_multi"
    nodes += [
        # (B, S, P) -> (B, P, S) -> (B*P, S)
        helper.make_node("Transpose", [feature_t], ["pre_bps"], name="pre_to_bps", perm=[0, 2, 1]),
        helper.make_node("Reshape", ["pre_bps", "pre_rows_shape"], [_FEATURES], name="pre_rows"),
    ]
    core = det._core_onnx()
    nodes += core.nodes
    inits += core.initializers
    nodes += [
        helper.make_node("Reshape", [_CORE_SCORE, "pre_scores_shape"], ["post_bp"], name="post_bp"),
    ]
    if det.score_offset:
        inits.append(numpy_helper.from_array(np.array([det.score_offset]), "post_offset"))
        nodes += [
            helper.make_node("ReduceMean", ["post_bp"], ["post_avg"], name="post_mean", axes=[1], keepdims=0),
            helper.make_node("Add", ["post_avg", "post_offset"], [OUTPUT_SCORE], name="post_offset"),
        ]
    else:
        nodes.append(
            helper.make_node(
                "ReduceMean", ["post_bp"], [OUTPUT_SCORE], name="post_mean", axes=[1], keepdims=0
            )
        )
    graph = helper.make_graph(
        nodes,
        f"pumpops_{det.kind}",
        inputs=[
            helper.make_tensor_value_info(INPUT_WINDOW, TensorProto.DOUBLE, ["batch", W, S]),
            helper.make_tensor_value_info(INPUT_CENTER, TensorProto.DOUBLE, [S]),
            helper.make_tensor_value_info(INPUT_SCALE, TensorProto.DOUBLE, [S]),
        ],
        outputs=[helper.make_tensor_value_info(OUTPUT_SCORE, TensorProto.DOUBLE, ["batch"])],
        initializer=inits,
    )
    opsets = [helper.make_opsetid("", ONNX_OPSET)]
    opsets += [helper.make_opsetid(domain, v) for domain, v in sorted(core.opsets.items()) if domain]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="pumpops", producer_version="1")
    model.ir_version = 8
    model.doc_string = f"pumpops detector {det.kind}"
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString(deterministic=True)
    return data


def detector_manifest(det: Detector) -> dict[str, Any]:
    """What the edge agent needs to run the model without model-specific code."""
    floor_rel = scale_floor_vector(det.sensors, det.scale_floor, det.scale_floors)
    return {
        "format": _FORMAT,
        "kind": det.kind,
        "onnx_opset": ONNX_OPSET,
        "inputs": {
            "sensors": [{"name": s, "unit": CANONICAL_SENSORS[s].unit} for s in det.sensors],
            "window_rows": det.input_length,
            "padding": "repeat_first",
            "onnx": [
                {
                    "name": INPUT_WINDOW,
                    "dtype": "float64",
                    "shape": ["batch", det.input_length, det.n_sensors],
                },
                {
                    "name": INPUT_CENTER,
                    "dtype": "float64",
                    "shape": [det.n_sensors],
                    "from": "calibration.center",
                },
                {
                    "name": INPUT_SCALE,
                    "dtype": "float64",
                    "shape": [det.n_sensors],
                    "from": "calibration.scale",
                },
            ],
        },
        "outputs": [{"name": OUTPUT_SCORE, "dtype": "float64", "shape": ["batch"]}],
        "alarm": {
            "threshold": "calibration.threshold",
            "compare": "score > threshold",
            "smoothing": {
                "rule": "k_of_n_hysteresis",
                "k": det.alarm_k,
                "n": det.alarm_n,
                "release": det.alarm_release,
                "hold_rows": det.alarm_hold,
                "meaning": "on when k of the last n scores exceed threshold; "
                "a raised alarm stays on while score > release * threshold; "
                "an ending alarm stays on hold_rows more rows",
            },
        },
        "calibration": {
            "center": "median of the normal period",
            "scale": "IQR / 1.349 of the normal period (floored)",
            "model_scale_floor": f"the model divides by max(scale, {floor_rel.tolist()} * |center|)",
            "threshold": f"{det.threshold_factor} * quantile({det.threshold_quantile}) of normal score",
        },
        "params": det.params(),
    }
