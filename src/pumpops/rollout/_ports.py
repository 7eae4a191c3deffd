"""What the rollout service needs from its surroundings: narrow Protocols a fake implements.

May import: the stdlib, ``pumpops.fleet`` and ``pumpops.store`` records (types only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from pumpops.fleet import Device
from pumpops.store import AgentRecord

if TYPE_CHECKING:
    from pumpops.store import ReleaseRecord

__all__ = ["DesiredPublisher", "EventEmitter", "IntentSigner", "RolloutRow", "RolloutStore"]


class RolloutRow(Protocol):
    """A stored rollout as the service reads it (``pumpops.store.RolloutRecord``)."""

    @property
    def rollout_id(self) -> str: ...
    @property
    def group(self) -> str: ...
    @property
    def release(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def state_json(self) -> str: ...
    @property
    def created_at_us(self) -> int: ...
    @property
    def updated_at_us(self) -> int: ...


class RolloutStore(Protocol):
    """The part of :class:`~pumpops.store.TelemetryStore` the service uses (a fake implements just this)."""

    def devices(self) -> list[Device]: ...
    def releases(self, *, group: str | None = None) -> list[ReleaseRecord]: ...
    def agent_messages(
        self,
        *,
        device_id: str | None = None,
        kind: str | None = None,
        since_us: int | None = None,
        limit: int | None = None,
    ) -> list[AgentRecord]: ...
    def append_audit(
        self,
        actor: str,
        action: str,
        subject: str,
        payload: Mapping[str, Any] | None = None,
        *,
        time_us: int | None = None,
    ) -> object: ...
    def put_rollout(
        self,
        rollout_id: str,
        *,
        group: str,
        release: str,
        status: str,
        state_json: str,
        time_us: int | None = None,
    ) -> RolloutRow: ...
    def get_rollout(self, rollout_id: str) -> RolloutRow | None: ...
    def rollouts(self, *, group: str | None = None, active_only: bool = False) -> Sequence[RolloutRow]: ...


class EventEmitter(Protocol):
    """Where events go: :class:`pumpops.registry.EventSink` (stores, then publishes)."""

    def emit(self, kind: str, subject: str, payload: dict[str, Any] | None = None) -> object: ...


class DesiredPublisher(Protocol):
    """Writes retained ``desired`` messages (QoS 1)."""

    def publish_retained(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Publish every ``(topic, payload)`` retained with QoS 1; return once all are acknowledged.

        Raises:
            BrokerError: some were not acknowledged.
        """
        ...


class IntentSigner(Protocol):
    """Signs the hub's intent for a group into the TUF repository (``pumpops.release.SignedIntentWriter``).

    A device installs a version older than the one it runs only when this
    signed intent pins it: the retained ``desired`` message is just a hint.
    """

    def pin(self, group: str, version: str | None, *, actor: str, reason: str) -> bool:
        """Sign that ``group`` runs exactly ``version`` (None: lift the pin), audited under ``actor``.

        Returns:
            Whether the repository changed (False: it said so already).

        Raises:
            NotFoundError: ``version`` is not published for the group, or there is no repository.
        """
        ...
