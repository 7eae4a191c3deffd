"""One way to open an onnxruntime session on the hub side: CPU, a fixed thread count, quiet.

Validation, packaging and the SKAB benchmark all score models with the same
settings, so their numbers compare; the edge agent keeps its own
memory-tuned session (it may not import hub parts). onnxruntime loads on the
first call, not when the pipeline is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnxruntime as ort

__all__ = ["open_session"]


def open_session(
    model: Path | str | bytes,
    *,
    threads: int = 1,
    log_severity: int = 3,
    optimise_to: Path | None = None,
) -> ort.InferenceSession:
    """An onnxruntime CPU session with ``threads`` intra-op threads, run sequentially.

    Args:
        model: the ONNX model, as a file path or its bytes.
        threads: intra-op threads (inter-op is always 1: the graph runs sequentially).
        log_severity: onnxruntime's log level (3: errors only).
        optimise_to: when set, apply onnxruntime's basic (portable) graph
            optimisations and save the optimised model to this path.

    Returns:
        The session, on the CPU execution provider.
    """
    import onnxruntime as ort  # noqa: PLC0415 - heavy import only when scoring

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = log_severity
    if optimise_to is not None:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(optimise_to)
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
