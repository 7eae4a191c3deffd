"""Gates a candidate model must pass: ONNX parity, champion vs challenger, behavioural fault tests, budgets.

Arrives with the registry issue. Decisions are pure functions; may import: schema, errors, numpy, onnxruntime.
"""
