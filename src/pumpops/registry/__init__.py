"""Model versions, lineage, aliases (champion, challenger) per device group, and events (MLflow Model Registry).

Arrives with the registry issue. May import: pipeline, store, errors, MLflow.
"""
