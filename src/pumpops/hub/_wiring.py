"""The one place that builds the hub's objects from the settings (commands, hub services, demo).

The store (:func:`open_workspace_store`), the lifecycle event publisher and sink
(:func:`event_publisher`, :func:`event_sink`), the model registry
(:func:`registry_for`, :func:`open_registry`), the rollout controller
(:func:`rollout_publishers`, :func:`rollout_service`), ingest
(:func:`ingest_service`) and fleet monitoring (:func:`monitoring_service`). Every broker connection a hub
service opens takes its TLS files and its own identity from ``[broker_auth]`` (:func:`service_address`).
Every import of a heavy library happens inside a function, when a command runs: ``pumpops --help`` stays fast.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pumpops.errors import ConfigError

if TYPE_CHECKING:
    from pumpops.monitoring import MonitoringService
    from pumpops.registry import EventPublisher, EventSink, Registry
    from pumpops.rollout import IntentSigner, MqttDesiredPublisher, RolloutService
    from pumpops.settings import IngestSettings, MonitoringSettings, Settings
    from pumpops.store import TelemetryStore
    from pumpops.telemetry import BrokerAddress, IngestService

#: The hub services that connect to the broker, each with its own identity (``[broker_auth.<service>]``).
Service = Literal["ingest", "rollout", "events"]


def read_password_file(path: Path, *, what: str) -> str:
    """The first line of a password file.

    Raises:
        ConfigError: it cannot be read or is empty (naming ``what``: the setting).
    """
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from exc
    if not text:
        raise ConfigError(f"{what} {path} is empty")
    return text.splitlines()[0].strip()


def service_address(settings: Settings, service: Service, address: BrokerAddress) -> BrokerAddress:
    """``address`` with the TLS files of ``[broker_auth]`` and the identity of ``service``.

    TLS is on when the settings' broker is ``mqtts://`` (the host name is checked
    against the broker's certificate). Without ``[broker_auth.<service>]`` the
    service presents no password (an open broker).

    Raises:
        ConfigError: a password file cannot be read, or TLS files for a plain broker.
    """
    auth = settings.broker_auth
    tls = address.tls or settings.broker_url.startswith("mqtts://")
    identity = getattr(auth, service)
    password = None
    if identity is not None:
        where = settings.workspace_path(identity.password_file)
        password = read_password_file(where, what=f"broker_auth.{service}.password_file")

    def path(value: Path | None) -> str | None:
        return str(settings.workspace_path(value)) if value is not None else None

    return replace(address, tls=tls).with_credentials(
        ca_file=path(auth.ca_file) if tls else None,
        cert_file=path(auth.cert_file) if tls else None,
        key_file=path(auth.key_file) if tls else None,
        username=identity.username if identity is not None else None,
        password=password,
    )


def ingest_client_id(settings: Settings, address: BrokerAddress) -> str:
    """Ingest's client id: the settings' own if given, else, with an identity, one nobody can guess.

    The derived id is stable across restarts (the broker keeps the session) and
    is the user name plus a digest of the password: only the holder of the
    password knows it.
    """
    configured = settings.ingest.client_id
    if "client_id" in settings.ingest.model_fields_set or not address.password or not address.username:
        return configured
    digest = hashlib.sha256(f"{address.username}\0{address.password}".encode()).hexdigest()[:24]
    return f"{address.username}-{digest}"


@contextmanager
def open_workspace_store(
    settings: Settings, *, upgrade: bool = False, sign_audit: bool = True
) -> Iterator[TelemetryStore]:
    """The workspace's store (its database URL), closed on exit; with ``upgrade``, migrated first.

    Audit entries appended through it are signed with the workspace's audit
    key (created on first use) and anchored (ADR 0013); ``sign_audit=False``
    for readers that must not create a key (``pumpops audit verify``).
    """
    from pumpops.audit import workspace_signer
    from pumpops.store import open_store

    signer = workspace_signer(settings.workspace) if sign_audit else None
    with open_store(settings.resolved_database_url, audit_signer=signer) as store:
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
    from pumpops.telemetry import parse_broker_url

    address = parse_broker_url(url)
    if address is None:
        return None
    return MqttEventPublisher(service_address(settings, "events", address))


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
        local = BrokerAddress("127.0.0.1", settings.embedded_broker_port)
        return MqttDesiredPublisher(service_address(settings, "rollout", local)), None
    return (
        MqttDesiredPublisher(service_address(settings, "rollout", address)),
        MqttEventPublisher(service_address(settings, "events", address)),
    )


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
    from pumpops.rollout import RolloutService

    return RolloutService(
        store,
        desired,
        events=event_sink(settings, store, events),
        actor=actor,
        topic_prefix=settings.topic_prefix,
        intent=intent_signer(settings, store),
    )


def intent_signer(settings: Settings, store: TelemetryStore) -> IntentSigner | None:
    """Signs a rollback's pin into the workspace's TUF repository (None: the workspace has none).

    Every rollout controller (commands, ``hub serve --services``, the HTTP API, the demo) takes
    its signer from here: without one, agents refuse the rollback's older version as unsigned.
    """
    from pumpops.release import SignedIntentWriter, TufRepository, repository_folder

    signed = TufRepository(repository_folder(settings)).exists()
    return SignedIntentWriter(settings, store) if signed else None


def ingest_service(
    settings: Settings, store: TelemetryStore, address: BrokerAddress, ingest: IngestSettings | None = None
) -> IngestService:
    """Ingest from the broker at ``address`` into ``store`` (``ingest``: the settings' own by default).

    It connects as ``[broker_auth.ingest]`` with TLS when the broker is ``mqtts://``.
    """
    from pumpops.fleet import load_profiles
    from pumpops.telemetry import IngestService

    address = service_address(settings, "ingest", address)
    chosen = settings.ingest if ingest is None else ingest
    if ingest is None:
        chosen = chosen.model_copy(update={"client_id": ingest_client_id(settings, address)})
    return IngestService(
        store,
        address,
        settings=chosen,
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
