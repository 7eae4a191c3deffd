"""ONNX graph transformations for packaging: opset down-conversion, float64 -> float32, optimisation, int8.

Every function takes and returns serialised model bytes and is deterministic:
the same bytes in give the same bytes out. Failures that mean "this model
cannot be built for this target" raise :class:`~pumpops.errors.ConfigError`
with the reason.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import onnx
from onnx import TensorProto, defs, numpy_helper, version_converter
from onnxruntime.quantization import QuantType, quantize_dynamic

from pumpops.errors import ConfigError
from pumpops.pipeline import open_session

__all__ = [
    "TYPE_ONLY_CHANGES",
    "convert_opset",
    "default_opset",
    "optimise_basic",
    "quantise_dynamic_int8",
    "set_ir_version",
    "to_float32",
]

#: (op, opset) pairs where the op's schema changed only by accepting more
#: element types (bfloat16 at opset 14/15) or by a new attribute whose default
#: keeps the old meaning (Reshape ``allowzero``). A node of such an op is
#: expressed at the older opset unchanged. onnx's version converter lacks
#: adapters for several of these (e.g. ``Sub`` 14 -> 13), so they are
#: relabelled here and the result is checked against the older schemas.
TYPE_ONLY_CHANGES = frozenset(
    {
        ("Add", 14),
        ("Sub", 14),
        ("Mul", 14),
        ("Div", 14),
        ("Relu", 14),
        ("Pow", 15),
        ("Shape", 15),
        ("Reshape", 14),
        ("Identity", 14),
        ("Identity", 16),
        ("Where", 16),
        ("LessOrEqual", 16),
        ("GreaterOrEqual", 16),
    }
)


def _load(data: bytes) -> onnx.ModelProto:
    return onnx.load_from_string(data)


def _dump(model: onnx.ModelProto) -> bytes:
    return bytes(model.SerializeToString(deterministic=True))


def default_opset(data: bytes) -> int:
    """The model's opset of the default (``ai.onnx``) domain."""
    for entry in _load(data).opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ConfigError("the model imports no ai.onnx opset")


def _changes(op: str, after: int, upto: int) -> list[int]:
    return sorted(
        s.since_version
        for s in defs.get_all_schemas_with_history()
        if s.name == op and s.domain == "" and after < s.since_version <= upto
    )


def _relabel(model: onnx.ModelProto, source: int, target: int) -> onnx.ModelProto:
    blocking: dict[str, str] = {}
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        if not defs.has(node.op_type, target, ""):
            blocking[node.op_type] = f"{node.op_type} does not exist at opset {target}"
            continue
        changed = [
            v for v in _changes(node.op_type, target, source) if (node.op_type, v) not in TYPE_ONLY_CHANGES
        ]
        if changed:
            blocking[node.op_type] = f"{node.op_type} changed at opset {', '.join(map(str, changed))}"
    if blocking:
        raise ConfigError(
            f"the model cannot be expressed at opset {target}: "
            + "; ".join(v for _, v in sorted(blocking.items()))
        )
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for node in out.graph.node:
        if node.op_type == "Reshape" and node.domain in ("", "ai.onnx"):
            # allowzero (opset 14) defaults to 0, the only meaning opset 13 has
            keep = [a for a in node.attribute if not (a.name == "allowzero" and a.i == 0)]
            if len(keep) != len(node.attribute):
                del node.attribute[:]
                node.attribute.extend(keep)
    for entry in out.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = target
    return out


def convert_opset(data: bytes, target: int) -> tuple[bytes, str]:
    """Express a model at opset ``target`` (default domain), if it is above it.

    onnx's version converter is tried first; where it has no adapter, ops
    whose schemas changed only by type (see :data:`TYPE_ONLY_CHANGES`) are
    relabelled. The result is checked against the target opset's schemas.

    Args:
        data: the serialised model.
        target: the highest opset the target's runtime loads.

    Returns:
        The converted bytes and a sentence saying what was done.

    Raises:
        ConfigError: the model uses an op that does not exist or means
            something else at ``target``.
    """
    model = _load(data)
    source = default_opset(data)
    if source <= target:
        return data, f"opset {source} kept (target allows up to {target})"
    how = "onnx version converter"
    try:
        converted = version_converter.convert_version(model, target)
    except Exception:  # the converter raises bare RuntimeErrors for missing adapters
        converted = _relabel(model, source, target)
        how = "relabelled: the ops used changed only by element types between these opsets"
    try:
        onnx.checker.check_model(converted, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ConfigError(f"the model cannot be expressed at opset {target}: {exc}") from exc
    return _dump(converted), f"opset {source} -> {target} ({how})"


def set_ir_version(data: bytes, max_ir: int) -> tuple[bytes, str]:
    """Lower the model's IR version to ``max_ir`` if above, and check it there.

    Raises:
        ConfigError: the model uses IR features ``max_ir`` lacks.
    """
    model = _load(data)
    if model.ir_version <= max_ir:
        return data, f"IR version {model.ir_version} kept (target allows up to {max_ir})"
    before = model.ir_version
    model.ir_version = max_ir
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ConfigError(f"the model cannot be expressed at IR version {max_ir}: {exc}") from exc
    return _dump(model), f"IR version {before} -> {max_ir}"


def _retype(value_type: onnx.TypeProto) -> None:
    if value_type.HasField("tensor_type") and value_type.tensor_type.elem_type == TensorProto.DOUBLE:
        value_type.tensor_type.elem_type = TensorProto.FLOAT


def _tensor32(tensor: TensorProto) -> TensorProto:
    if tensor.data_type != TensorProto.DOUBLE:
        return tensor
    return numpy_helper.from_array(numpy_helper.to_array(tensor).astype("float32"), tensor.name)


def _graph32(graph: onnx.GraphProto) -> None:
    for values in (graph.input, graph.output, graph.value_info):
        for value in values:
            _retype(value.type)
    for i, init in enumerate(graph.initializer):
        graph.initializer[i].CopyFrom(_tensor32(init))
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise ConfigError(f"float32 conversion does not handle {node.domain}.{node.op_type}")
        for attr in node.attribute:
            if attr.name == "to" and attr.i == TensorProto.DOUBLE:
                attr.i = TensorProto.FLOAT
            elif attr.type == onnx.AttributeProto.TENSOR:
                attr.t.CopyFrom(_tensor32(attr.t))
            elif attr.type == onnx.AttributeProto.GRAPH:
                _graph32(attr.g)


def to_float32(data: bytes) -> bytes:
    """The same graph with every float64 tensor, input, output and cast made float32.

    Raises:
        ConfigError: the graph holds ops outside the default domain (their
            typed attributes are not rewritten), or the result is invalid.
    """
    model = _load(data)
    _graph32(model.graph)
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ConfigError(f"float32 conversion gave an invalid model: {exc}") from exc
    return _dump(model)


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def optimise_basic(data: bytes) -> bytes:
    """Apply onnxruntime's basic (portable) graph optimisations, saved offline.

    Basic level only does constant folding and redundant-node removal with
    standard ONNX ops, so the result runs on any onnxruntime that loads the
    input; extended/layout levels emit runtime- and hardware-specific ops.
    The opset and IR version are restored to the input's.
    """
    with tempfile.TemporaryDirectory(prefix="pumpops-opt-") as tmp:
        out = Path(tmp) / "optimised.onnx"
        open_session(data, optimise_to=out)
        optimised = onnx.load(str(out))
    source = _load(data)
    optimised.ir_version = source.ir_version
    del optimised.opset_import[:]
    optimised.opset_import.extend(source.opset_import)
    optimised.producer_name = source.producer_name
    optimised.producer_version = source.producer_version
    onnx.checker.check_model(optimised, full_check=True)
    return _dump(optimised)


def quantise_dynamic_int8(data: bytes) -> bytes:
    """Dynamic int8 quantisation of MatMul/Gemm weights (onnxruntime.quantization).

    The input must be float32; float64 weights are not quantised by onnxruntime.
    """
    with tempfile.TemporaryDirectory(prefix="pumpops-q-") as tmp, _quiet("root"):
        src = Path(tmp) / "float.onnx"
        out = Path(tmp) / "int8.onnx"
        src.write_bytes(data)
        quantize_dynamic(src, out, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
        model = onnx.load(str(out))
    return _dump(model)
