"""What the API's routes run on (:class:`ApiContext`), and the request dependencies that hand it out.

The hub builds the context (``pumpops.hub``: the workspace's store, the event
sink, a rollout service and a registry per acting token) and mounts the API
with it; this part never builds a store or a broker client itself, so it sits
below ``hub`` and a test can give it a store of its own. The dependencies
authenticate the request's bearer token against the store and check its role.
May import: fastapi, store, registry, rollout, settings, errors, this part.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from pumpops.web._auth import Principal, hash_token, parse_bearer, role_allows, token_id_of
from pumpops.web._errors import ApiError

if TYPE_CHECKING:
    from pumpops.registry import EventSink, Registry
    from pumpops.rollout import RolloutService
    from pumpops.settings import Settings
    from pumpops.store import TelemetryStore

__all__ = ["Admin", "ApiContext", "Ctx", "Operator", "Viewer", "context_of", "requires"]


@dataclass
class ApiContext:
    """The objects the API's routes use, built once by the hub.

    Attributes:
        settings: the workspace settings (monitoring window, retrain policy, tracking URI).
        store: the hub's store (thread-safe: routes run in a thread pool).
        sink: lifecycle events: stored, then published when a broker is configured.
        rollouts: a rollout service whose audit entries name ``actor`` (the token's owner).
        registry: the model registry (MLflow), opened on first use.
        clock_us: now, µs since the epoch (tests may fix it).
        stream_poll_s: how often the event stream looks for new rows.
        ingest_stats: the running ingest's counters (``hub serve --services``), else None.
        cache: short-lived shared results (the fleet view), by name: ``(monotonic time, value)``.
    """

    settings: Settings
    store: TelemetryStore
    sink: EventSink
    rollouts: Callable[[str], RolloutService]
    registry: Callable[[], Registry]
    clock_us: Callable[[], int] = lambda: time.time_ns() // 1000
    stream_poll_s: float = 0.5
    ingest_stats: Callable[[], object] | None = None
    cache: dict[str, tuple[float, Any]] = field(default_factory=dict)


def context_of(request: Request) -> ApiContext:
    """The context the API was mounted with."""
    context: ApiContext = request.app.state.pumpops_api
    return context


def _principal(request: Request, context: ApiContext) -> Principal:
    header = request.headers.get("authorization")
    if header is None:
        raise ApiError(401, "unauthenticated", "no token: send the header 'Authorization: Bearer <token>'")
    token = parse_bearer(header)
    if token is None:
        raise ApiError(401, "unauthenticated", "malformed token: expected 'Bearer pumpops_<id>_<secret>'")
    record = context.store.api_token_by_hash(hash_token(token))
    if record is None or record.token_id != token_id_of(token):
        raise ApiError(401, "unauthenticated", "unknown token (make one with `pumpops tokens create`)")
    refusal = record.refusal(context.clock_us())
    if refusal is not None:
        raise ApiError(401, "unauthenticated", f"{refusal} (token {record.token_id})")
    return Principal(name=record.name, role=record.role, token_id=record.token_id)


def requires(role: str) -> Callable[[Request], Principal]:
    """A dependency: the request's principal, if its token is valid and its role is at least ``role``."""

    def dependency(request: Request) -> Principal:
        principal = _principal(request, context_of(request))
        if not role_allows(principal.role, role):
            raise ApiError(
                403,
                "forbidden",
                f"token {principal.token_id} ({principal.name}) has role {principal.role}; "
                f"this needs {role} or above",
            )
        request.state.principal = principal
        return principal

    return dependency


#: The context, as a route parameter.
Ctx = Annotated[ApiContext, Depends(context_of)]
#: A principal of at least that role, as a route parameter.
Viewer = Annotated[Principal, Depends(requires("viewer"))]
Operator = Annotated[Principal, Depends(requires("operator"))]
Admin = Annotated[Principal, Depends(requires("admin"))]
