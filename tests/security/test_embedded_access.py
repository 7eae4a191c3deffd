"""The embedded broker's secure mode (amqtt + ``_amqtt_auth``): the same identities and rules, attacked.

amqtt refuses a subscription its topic plugin denies (SUBACK 0x80) and drops a
denied publish after acknowledging it; each "not delivered" row still sends a
control message that is delivered and checks only the control arrived.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pumpops.errors import ConfigError
from pumpops.security import CredentialRegistry, write_private
from pumpops.telemetry import EmbeddedBroker

from .conftest import Broker, Client, collect_leaked_sockets


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, EmbeddedBroker]]:
    tmp = tmp_path_factory.mktemp("secured-embedded")
    registry = CredentialRegistry(tmp / "ws" / "security")
    registry.ensure_hub_identities()
    server = registry.ca().issue_server(["localhost"])
    cert, key = tmp / "server.pem", tmp / "server.key"
    write_private(cert, server.cert_pem)
    write_private(key, server.key_pem)
    prefix = f"emb{uuid.uuid4().hex[:8]}/v1"
    running = EmbeddedBroker(
        "127.0.0.1", 0, registry=registry.folder, topic_prefix=prefix, tls_cert=(cert, key)
    ).start()
    broker = Broker("localhost", running.port, True, registry, prefix, registry.ca_file)
    try:
        yield broker, running
    finally:
        broker.close_clients()
        running.stop()
        collect_leaked_sockets()


@pytest.fixture
def broker(embedded: tuple[Broker, EmbeddedBroker]) -> Iterator[Broker]:
    yield embedded[0]
    embedded[0].close_clients()


def _pump(broker: Broker) -> tuple[str, str, Client]:
    device = f"pump-{uuid.uuid4().hex[:6]}"
    password = broker.provision(device)  # the embedded broker reads the registry at each connect
    return device, password, broker.connect(device, password, client_id=device)


def _ingest(broker: Broker) -> Client:
    return broker.connect(
        "hub-ingest", broker.hub_password("hub-ingest"), subscriptions=[f"{broker.prefix}/+/+/+"]
    )


def test_secure_mode_never_loads_the_anonymous_plugin(embedded: tuple[Broker, EmbeddedBroker]) -> None:
    plugins = embedded[1].config()["plugins"]
    assert not any("Anonymous" in name or "OpenAuth" in name for name in plugins)
    assert "pumpops.telemetry._amqtt_auth.RegistryAuthPlugin" in plugins


def test_open_broker_listens_on_loopback_only() -> None:
    with pytest.raises(ConfigError, match=r"127\.0\.0\.1 only"):
        EmbeddedBroker("0.0.0.0", 0)


def test_open_broker_says_it_is_open(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pumpops.telemetry._broker"), EmbeddedBroker(port=0):
        pass
    assert any("OPEN" in record.getMessage() for record in caplog.records)


def test_provisioned_device_publishes_over_tls(broker: Broker) -> None:
    ingest = _ingest(broker)
    device, _, pump = _pump(broker)
    pump.publish(broker.topic(device, "telemetry"), b"genuine")
    assert ingest.receive_until(b"genuine") == [(broker.topic(device, "telemetry"), b"genuine")]


def test_anonymous_wrong_password_and_unknown_user_are_refused(broker: Broker) -> None:
    device, _, _ = _pump(broker)
    assert "not authorized" in broker.refused(None, None).lower()
    assert "not authorized" in broker.refused(device, "wrong").lower()
    assert "not authorized" in broker.refused("nobody", "whatever").lower()


def test_plain_tcp_to_the_tls_port_fails(broker: Broker) -> None:
    device, password, _ = _pump(broker)
    assert "did not accept" in broker.refused(device, password, tls=False)


def test_revoked_device_is_refused_at_once(broker: Broker) -> None:
    device, password, pump = _pump(broker)
    pump.close()
    broker.registry.revoke(device)
    assert "not authorized" in broker.refused(device, password).lower()


@pytest.mark.parametrize("kind", ["telemetry", "state", "desired"])
def test_forged_publishes_are_not_delivered(broker: Broker, kind: str) -> None:
    device, _, pump = _pump(broker)
    ingest = _ingest(broker)
    victim = f"victim-{uuid.uuid4().hex[:6]}"
    pump.attempt(broker.topic(victim, kind), b"forged", retain=True)
    pump.attempt(broker.topic(device, "desired"), b"forged-own-desired", retain=True)
    pump.attempt(f"{broker.prefix}/events/model.promoted", b"forged-event")
    pump.publish(broker.topic(device, "telemetry"), b"control")
    assert ingest.receive_until(b"control") == [(broker.topic(device, "telemetry"), b"control")]


def test_device_cannot_read_another_devices_desired(broker: Broker) -> None:
    spy_id, password, spy_first = _pump(broker)
    spy_first.close()
    victim = f"victim-{uuid.uuid4().hex[:6]}"
    hub = broker.connect("hub-rollout", broker.hub_password("hub-rollout"))
    hub.publish(broker.topic(victim, "desired"), b"victim-retained", retain=True)
    spy = broker.connect(
        spy_id,
        password,
        client_id=spy_id,
        subscriptions=[
            broker.topic(victim, "desired"),
            f"{broker.prefix}/+/+/desired",
            f"{broker.prefix}/#",
            broker.topic(spy_id, "desired"),
        ],
    )
    hub.publish(broker.topic(victim, "desired"), b"victim-live")
    hub.publish(broker.topic(spy_id, "desired"), b"control")
    assert set(spy.receive_until(b"control")) == {(broker.topic(spy_id, "desired"), b"control")}


def test_a_client_id_stays_with_its_identity(broker: Broker) -> None:
    ingest_id = f"hub-ingest-{uuid.uuid4().hex}"
    ingest = broker.connect(
        "hub-ingest",
        broker.hub_password("hub-ingest"),
        client_id=ingest_id,
        clean_session=False,
        subscriptions=[f"{broker.prefix}/+/+/telemetry"],
        reconnect_s=1,
    )
    device, password, pump = _pump(broker)
    text = broker.refused(device, password, client_id=ingest_id, clean_session=False)
    assert "not authorized" in text.lower()
    # a device's own id is bound to it too: another device cannot use it
    other, other_password, _ = _pump(broker)
    assert "not authorized" in broker.refused(other, other_password, client_id=device).lower()
    pump.publish(broker.topic(device, "telemetry"), b"after")
    assert ingest.receive_until(b"after")[-1] == (broker.topic(device, "telemetry"), b"after")


def test_server_certificate_files_are_private(embedded: tuple[Broker, EmbeddedBroker]) -> None:
    folder = Path(embedded[0].registry.folder)
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    for path in (folder / "identities.json", folder / "ca" / "ca.key"):
        assert oct(path.stat().st_mode & 0o777) == "0o600", path
