"""Model versions, lineage, aliases (champion, challenger) per device group, and events (MLflow).

Arrives with the registry issue. May import: pipeline, store, errors, MLflow.
"""
