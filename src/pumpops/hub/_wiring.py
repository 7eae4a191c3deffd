"""The one place that builds the hub's objects from the settings (commands, hub services, demo).

The store (:func:`open_workspace_store`), the lifecycle event publisher and sink
(:func:`event_publisher`, :func:`event_sink`), the model registry
(:func:`registry_for`, :func:`open_registry`), the rollout controller
(:func:`rollout_publishers`, :func:`rollout_service`), ingest
(:func:`ingest_service`) and fleet monitoring (:func:`monitoring_service`). Every import of a heavy library
happens inside a function, when a command runs: ``pumpops --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pumpops.monitoring import MonitoringService
    from pumpops.registry import EventPublisher, EventSink, Registry
    from pumpops.rollout import MqttDesiredPublisher, RolloutService
    from pumpops.settings import IngestSettings, MonitoringSettings, Settings
    from pumpops.store import TelemetryStore
    from pumpops.telemetry import BrokerAddress, IngestService


@contextmanager
def open_workspace_store(settings: Settings, *, upgrade: bool = False) -> Iterator[TelemetryStore]:
    """The workspace's store (its database URL), closed on exit; with ``upgrade``, migrated first."""
    from pumpops.store import open_store

    with open_store(settings.resolved_database_url) as store:
        if upgrade:
            store.upgrade()
        yield store


def event_publisher(settings: Settings, broker: str | None) -> EventPublisher | None:
    """Where lifecycle events go: ``broker``, else the settings' broker URL (None: stored only).

    The embedded broker (``embedded``), ``none`` and an empty URL publish nothing.
    """
    from pumpops.settings import EMBEDDED_BROKER

    url = broker if broker is not None else settings.broker_url
    if url in (EMBEDDED_BROKER, "none", ""):
        return None
    from pumpops.registry import MqttEventPublisher

    return MqttEventPublisher(url)


def event_sink(
    settings: Settings, store: TelemetryStore, publisher: EventPublisher | None = None
) -> EventSink:
    """Lifecycle events: stored in ``store``, published by ``publisher`` under the settings' prefix."""
    from pumpops.registry import EventSink

    return EventSink(store, publisher, topic_prefix=settings.topic_prefix)


def registry_for(settings: Settings, sink: EventSink) -> Registry:
    """The model registry at the settings' tracking URI, its events to ``sink``."""
    from pumpops.registry import Registry

    return Registry(settings.resolved_tracking_uri, sink)


@contextmanager
def open_registry(settings: Settings, *, broker: str | None) -> Iterator[Registry]:
    """The registry of a workspace: its tracking URI (``settings.resolved_tracking_uri``) and its store.

    ``pumpops train`` registers through this too, so a run is registered where it was logged.
    """
    with open_workspace_store(settings, upgrade=True) as store:
        yield registry_for(settings, event_sink(settings, store, event_publisher(settings, broker)))


def rollout_publishers(
    settings: Settings, broker: str | None
) -> tuple[MqttDesiredPublisher, EventPublisher | None]:
    """The rollout's desired-state publisher and its event publisher, on ``broker`` (else the settings').

    On the embedded broker (the demo's in-process one) desired states go to its
    port on 127.0.0.1 and events are stored only.
    """
    from pumpops.registry import MqttEventPublisher
    from pumpops.rollout import MqttDesiredPublisher
    from pumpops.telemetry import BrokerAddress, parse_broker_url

    url = broker if broker is not None else settings.broker_url
    address = parse_broker_url(url)
    if address is None:  # the demo's in-process broker: it listens here
        return MqttDesiredPublisher(BrokerAddress("127.0.0.1", settings.embedded_broker_port)), None
    return MqttDesiredPublisher(address), MqttEventPublisher(url)


def rollout_service(
    settings: Settings,
    store: TelemetryStore,
    desired: MqttDesiredPublisher,
    events: EventPublisher | None,
    *,
    actor: str,
) -> RolloutService:
    """The rollout controller on ``store``: desired states by ``desired``, events stored and published.

    With the workspace's TUF repository, a rollback also signs the group's pinned version into it.
    """
    from pumpops.release import SignedIntentWriter, TufRepository, repository_folder
    from pumpops.rollout import RolloutService

    signed = TufRepository(repository_folder(settings)).exists()
    return RolloutService(
        store,
        desired,
        events=event_sink(settings, store, events),
        actor=actor,
        topic_prefix=settings.topic_prefix,
        intent=SignedIntentWriter(settings, store) if signed else None,
    )


def ingest_service(
    settings: Settings, store: TelemetryStore, address: BrokerAddress, ingest: IngestSettings | None = None
) -> IngestService:
    """Ingest from the broker at ``address`` into ``store`` (``ingest``: the settings' own by default)."""
    from pumpops.fleet import load_profiles
    from pumpops.telemetry import IngestService

    return IngestService(
        store,
        address,
        settings=settings.ingest if ingest is None else ingest,
        topic_prefix=settings.topic_prefix,
        profiles=load_profiles(settings.profiles_dirs),
    )


def monitoring_service(
    settings: Settings,
    store: TelemetryStore,
    sink: EventSink,
    *,
    actor: str,
    policy: MonitoringSettings | None = None,
) -> MonitoringService:
    """Fleet monitoring on ``store`` (``policy``: the settings' ``[monitoring]`` by default)."""
    from pumpops.monitoring import MonitoringService

    return MonitoringService(store, sink, settings.monitoring if policy is None else policy, actor=actor)
