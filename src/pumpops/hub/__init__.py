"""The control-plane process: HTTP API, dashboard and background services (FastAPI, uvicorn).

It serves the TUF repository read-only under ``/tuf/`` (:func:`create_app`),
``/healthz``, and the HTTP API, ``/api/...`` and ``/metrics`` (``pumpops.web``,
mounted with the context :func:`api_context` builds); ``pumpops hub serve`` runs it with uvicorn beside the
background services (:class:`HubServices`: ingest, rollout, monitoring,
retraining), each child process watched by a :class:`Supervisor`; ``_wiring`` is the one place the
commands, the services and the demo build the store, registry, event sink and services. Every name
loads on first use: FastAPI only when serving, not when ``pumpops`` starts.
May import every hub-side part.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pumpops._lazy import lazy_exports

if TYPE_CHECKING:
    from pumpops.hub._app import create_app
    from pumpops.hub._services import (
        BrokerProcess,
        HubServices,
        api_context,
        broker_process,
        port_taken_message,
    )
    from pumpops.hub._supervise import Child, Supervisor, stop_processes, tail
    from pumpops.hub._wiring import (
        event_publisher,
        event_sink,
        ingest_client_id,
        ingest_service,
        intent_signer,
        monitoring_service,
        open_registry,
        open_workspace_store,
        read_password_file,
        registry_for,
        rollout_publishers,
        rollout_service,
        service_address,
    )

__all__ = [
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
]

_LAZY = {
    "create_app": "pumpops.hub._app",
    **dict.fromkeys(
        ("BrokerProcess", "HubServices", "api_context", "broker_process", "port_taken_message"),
        "pumpops.hub._services",
    ),
    **dict.fromkeys(("Child", "Supervisor", "stop_processes", "tail"), "pumpops.hub._supervise"),
    **dict.fromkeys(
        (
            "event_publisher",
            "event_sink",
            "ingest_client_id",
            "ingest_service",
            "intent_signer",
            "monitoring_service",
            "open_registry",
            "open_workspace_store",
            "read_password_file",
            "registry_for",
            "rollout_publishers",
            "rollout_service",
            "service_address",
        ),
        "pumpops.hub._wiring",
    ),
}


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
