"""Pins the public API of ``pumpops.registry``: a change to this list is a change users see."""

from __future__ import annotations

import pumpops.registry

PUBLIC = {
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
}


def test_registry_exported_members_are_pinned() -> None:
    assert set(pumpops.registry.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(pumpops.registry, name), name
