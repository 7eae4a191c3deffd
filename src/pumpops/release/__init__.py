"""Per-target packaging (opset, optimisation, quantisation), bundle format, signing, the TUF repository.

Arrives with the packaging issue.
May import: registry, validation, store, errors, onnx, onnxruntime, python-tuf.
"""
