"""Model versions, lineage, aliases (champion, challenger) per device group, and events (MLflow).

MLflow's Model Registry is the system of record for model versions and their
lineage tags (:class:`Registry`); the pumpops store keeps what MLflow does not:
the history of every alias change, the audit trail and the lifecycle events,
which :class:`EventSink` stores first and then publishes on MQTT under
``<prefix>/events/<kind>`` (best effort). ``pumpops.cli.registry`` is the thin shell
(``pumpops models ...``, ``pumpops validate``). See ``docs/registry.md`` and ADR 0007.

May import: pipeline, store, telemetry (broker address and publisher, lazily),
audit, settings, errors, MLflow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pumpops._lazy import lazy_exports

if TYPE_CHECKING:
    from pumpops.registry._events import (
        EVENT_KINDS,
        EVENT_SCHEMA,
        EventPublisher,
        EventSink,
        MqttEventPublisher,
        event_json,
        event_topic,
    )
    from pumpops.registry._info import ModelVersionInfo
    from pumpops.registry._refs import alias_name, default_model_name, parse_model_ref, parse_ref
    from pumpops.registry._registry import Registry
    from pumpops.store import AliasRecord, EventRecord

__all__ = [
    "EVENT_KINDS",
    "EVENT_SCHEMA",
    "AliasRecord",
    "EventPublisher",
    "EventRecord",
    "EventSink",
    "ModelVersionInfo",
    "MqttEventPublisher",
    "Registry",
    "alias_name",
    "default_model_name",
    "event_json",
    "event_topic",
    "parse_model_ref",
    "parse_ref",
]

# Loaded on first use (PEP 562): the events and the store load SQLAlchemy and
# numpy, which a command checking its arguments must not wait for.
_LAZY = {
    **dict.fromkeys(
        (
            "EVENT_KINDS",
            "EVENT_SCHEMA",
            "EventPublisher",
            "EventSink",
            "MqttEventPublisher",
            "event_json",
            "event_topic",
        ),
        "pumpops.registry._events",
    ),
    "ModelVersionInfo": "pumpops.registry._info",
    **dict.fromkeys(
        ("alias_name", "default_model_name", "parse_model_ref", "parse_ref"), "pumpops.registry._refs"
    ),
    "Registry": "pumpops.registry._registry",
    "AliasRecord": "pumpops.store",
    "EventRecord": "pumpops.store",
}


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
