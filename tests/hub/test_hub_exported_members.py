"""Pins the public API of ``pumpops.hub``: a change to this list is a change users see."""

from __future__ import annotations

import pumpops.hub

_PUBLIC = {
    "BrokerProcess",
    "Child",
    "HubServices",
    "Supervisor",
    "api_context",
    "broker_process",
    "create_app",
    "event_publisher",
    "event_sink",
    "ingest_client_id",
    "ingest_service",
    "intent_signer",
    "monitoring_service",
    "open_registry",
    "open_workspace_store",
    "port_taken_message",
    "read_password_file",
    "registry_for",
    "rollout_publishers",
    "rollout_service",
    "service_address",
    "stop_processes",
    "tail",
}


def test_hub_exported_members_are_pinned() -> None:
    assert set(pumpops.hub.__all__) == _PUBLIC
    for name in _PUBLIC:
        assert hasattr(pumpops.hub, name), name
