"""The device agent: sources, model, alarms, updater, outbox, drift, state reports.

Arrives with the edge-agent issue. May import only edge-safe parts (schema, errors, sources) and
numpy, onnxruntime, paho-mqtt, python-tuf: never scikit-learn, MLflow, SQLAlchemy or FastAPI.
"""
