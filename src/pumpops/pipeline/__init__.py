"""The reproducible training pipeline: dataset snapshot, features, detectors, thresholds, evaluation, ONNX export.

Arrives with the training-pipeline issue. May import: schema, fleet, store, errors, numpy, scikit-learn, skl2onnx, MLflow.
"""
