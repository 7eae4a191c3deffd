"""Model references on the command line: ``<name>/<version>`` as is, ``<name>@<alias>`` through the registry.

Used by ``release create``, ``rollout start`` and ``approve``: a reference of
digits needs no registry (MLflow loads only for an alias).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pumpops.store import TelemetryStore

__all__ = ["resolve_model_ref"]


def resolve_model_ref(ref: str, *, tracking_uri: str, store: TelemetryStore) -> tuple[str, int]:
    """The model name and version ``ref`` names.

    Args:
        ref: ``<name>/<version>`` or ``<name>@<alias>`` (``@champion`` and
            ``@challenger`` also find the group's ``<group>-champion`` alias).
        tracking_uri: the MLflow registry, asked only for an alias.
        store: the pumpops store (the registry's alias history and events).

    Raises:
        ConfigError: neither shape.
        NotFoundError: no such model or alias.
        ServiceError: MLflow failed.

    >>> resolve_model_ref("pumpops-skab-testbed/3", tracking_uri="", store=None)  # type: ignore[arg-type]
    ('pumpops-skab-testbed', 3)
    """
    from pumpops.registry import parse_model_ref  # noqa: PLC0415 - commands load it on use

    name, which = parse_model_ref(ref)
    if isinstance(which, int):
        return name, which
    from pumpops.registry import EventSink, Registry  # noqa: PLC0415 - MLflow only for an alias

    info = Registry(tracking_uri, EventSink(store, None)).resolve(ref)
    return info.name, info.version
