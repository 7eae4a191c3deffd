"""The generated Mosquitto configuration, attacked: identity, TLS and the access rules on a real broker.

Mosquitto acknowledges a publish or a subscription its ACL denies and then
delivers nothing, so every "not delivered" row sends a control message that
*is* delivered after the forged one and checks that only the control arrived.
"""

from __future__ import annotations

import signal
import time
import uuid
from dataclasses import dataclass

import pytest

from pumpops.errors import BrokerError
from pumpops.security import CertificateAuthority, refresh_password_file, reload_broker, write_private

from .conftest import WAIT_S, Broker, Client


def _dev(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def _ingest(broker: Broker) -> Client:
    return broker.connect(
        "hub-ingest", broker.hub_password("hub-ingest"), subscriptions=[f"{broker.prefix}/+/+/+"]
    )


def test_provisioned_device_publishes_its_telemetry_over_tls(broker: Broker) -> None:
    ingest = _ingest(broker)
    pump = _admit(broker, "pump")
    pump.client.publish(broker.topic(pump.device, "telemetry"), b"genuine")
    assert ingest.receive_until(b"genuine") == [(broker.topic(pump.device, "telemetry"), b"genuine")]


def _connect_when_admitted(broker: Broker, device: str, password: str) -> Client:
    """Connect once the reloaded broker knows the device (SIGHUP is handled asynchronously)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            return broker.connect(device, password, timeout_s=2.0)
        except BrokerError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@dataclass
class Pump:
    """A provisioned device, connected."""

    device: str
    password: str
    client: Client


def _admit(broker: Broker, name: str) -> Pump:
    """Provision a device, reload the broker, connect as it."""
    device = _dev(name)
    password = broker.provision(device)
    refresh_password_file(broker.registry)
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGHUP)
    return Pump(device, password, _connect_when_admitted(broker, device, password))


@pytest.fixture
def pump(broker: Broker) -> Pump:
    return _admit(broker, "pump")


def test_anonymous_client_is_refused(broker: Broker) -> None:
    assert "not authorized" in broker.refused(None, None).lower()


def test_wrong_password_is_refused(broker: Broker, pump: Pump) -> None:
    assert "not authorized" in broker.refused(pump.device, "not-the-password").lower()


def test_unknown_user_is_refused(broker: Broker) -> None:
    assert "not authorized" in broker.refused("nobody", "whatever").lower()


def test_plain_tcp_to_the_tls_port_fails(broker: Broker, pump: Pump) -> None:
    text = broker.refused(pump.device, pump.password, tls=False)
    assert "did not accept" in text or "cannot connect" in text


def test_wrong_ca_fails_certificate_verification(broker: Broker) -> None:
    other = CertificateAuthority.create("someone else's CA")
    path = broker.ca_file.parent.parent / f"other-ca-{uuid.uuid4().hex[:6]}.pem"
    write_private(path, other.cert_pem)
    text = broker.refused("hub-ingest", broker.hub_password("hub-ingest"), ca_file=path)
    assert "CERTIFICATE_VERIFY_FAILED" in text


def test_wrong_host_name_fails_verification(broker: Broker) -> None:
    # the certificate names "localhost" only: 127.0.0.1 is the same broker under a name it does not have
    text = broker.refused("hub-ingest", broker.hub_password("hub-ingest"), host="127.0.0.1")
    assert "CERTIFICATE_VERIFY_FAILED" in text or "match" in text


def test_device_cannot_publish_another_devices_telemetry_or_state(broker: Broker, pump: Pump) -> None:
    victim = _dev("victim")
    ingest = _ingest(broker)
    for topic in (
        broker.topic(victim, "telemetry"),
        broker.topic(victim, "state"),
        broker.topic(victim, "alarms", site="other-site"),
        f"{broker.prefix}/events/model.promoted",
    ):
        attacker = broker.connect(pump.device, pump.password)
        attacker.attempt(topic, b"forged")
        attacker.close()
    control = broker.connect(pump.device, pump.password)
    control.publish(broker.topic(pump.device, "state"), b"control")
    assert ingest.receive_until(b"control") == [(broker.topic(pump.device, "state"), b"control")]


@pytest.mark.parametrize("whose", ["own", "other"])
def test_device_cannot_publish_desired(broker: Broker, pump: Pump, whose: str) -> None:
    target = pump.device if whose == "own" else _dev("victim")
    ingest = _ingest(broker)  # hub-ingest reads every device topic, desired included
    pump.client.attempt(broker.topic(target, "desired"), b'{"version": 1}', retain=True)
    pump.client.close()
    control = broker.connect(pump.device, pump.password)
    control.publish(broker.topic(pump.device, "telemetry"), b"control")
    assert ingest.receive_until(b"control") == [(broker.topic(pump.device, "telemetry"), b"control")]
    ingest.close()
    # nor was it retained: a new subscriber to that desired topic gets only the hub's control
    later = broker.connect(
        "hub-ingest", broker.hub_password("hub-ingest"), subscriptions=[broker.topic(target, "desired")]
    )
    hub = broker.connect("hub-rollout", broker.hub_password("hub-rollout"))
    hub.publish(broker.topic(target, "desired"), b"hub-control")
    assert later.receive_until(b"hub-control") == [(broker.topic(target, "desired"), b"hub-control")]


def test_only_the_hub_rollout_identity_publishes_desired(broker: Broker, pump: Pump) -> None:
    topic = broker.topic(pump.device, "desired")
    agent = broker.connect(pump.device, pump.password, subscriptions=[topic])
    broker.connect("hub-ingest", broker.hub_password("hub-ingest")).attempt(topic, b"from-ingest")
    broker.connect("hub-events", broker.hub_password("hub-events")).attempt(topic, b"from-events")
    broker.connect("hub-rollout", broker.hub_password("hub-rollout")).publish(topic, b"from-rollout")
    assert agent.receive_until(b"from-rollout") == [(topic, b"from-rollout")]


def test_device_subscribing_to_another_devices_desired_gets_nothing(broker: Broker, pump: Pump) -> None:
    victim = _dev("victim")
    spy_id = pump.device
    pump.client.close()
    # acknowledged by Mosquitto (denied subscriptions are), then nothing of the victim's arrives
    spy = broker.connect(
        spy_id,
        pump.password,
        subscriptions=[
            broker.topic(victim, "desired"),
            f"{broker.prefix}/+/+/desired",
            f"{broker.prefix}/#",
            broker.topic(spy_id, "desired"),
        ],
    )
    hub = broker.connect("hub-rollout", broker.hub_password("hub-rollout"))
    hub.publish(broker.topic(victim, "desired"), b"victim-secret", retain=True)
    hub.publish(broker.topic(spy_id, "desired"), b"control")
    got = spy.receive_until(b"control")
    assert set(got) == {(broker.topic(spy_id, "desired"), b"control")}


def test_a_device_cannot_take_over_ingests_session(broker: Broker, pump: Pump) -> None:
    session_id = "pumpops-ingest"  # the well-known id of attack row 9
    ingest = broker.connect(
        "hub-ingest",
        broker.hub_password("hub-ingest"),
        client_id=session_id,
        clean_session=False,
        subscriptions=[f"{broker.prefix}/+/+/telemetry"],
    )
    thief = broker.connect(pump.device, pump.password, client_id=session_id, clean_session=False)
    thief.publish(broker.topic(pump.device, "telemetry"), b"after-takeover-attempt")
    # ingest kept its connection and its session: it receives the message, the thief is someone else
    assert ingest.receive_until(b"after-takeover-attempt")[-1][1] == b"after-takeover-attempt"
    assert ingest.disconnects == []
    assert thief.inbox.empty()


def test_revoked_device_is_refused_after_reload(broker: Broker) -> None:
    device = _dev("revoked")
    password = broker.provision(device)
    refresh_password_file(broker.registry)
    assert broker.proc is not None
    pid_file = broker.ca_file.parent / f"mosquitto-{device}.pid"
    write_private(pid_file, f"{broker.proc.pid}\n".encode())
    reload_broker(pid_file)
    _connect_when_admitted(broker, device, password).close()
    broker.registry.revoke(device)
    refresh_password_file(broker.registry)
    assert reload_broker(pid_file) == broker.proc.pid
    deadline = time.monotonic() + WAIT_S
    refusal = ""
    while not refusal:  # SIGHUP is handled asynchronously: wait until the reload took effect
        try:
            broker.connect(device, password, timeout_s=2.0).close()
        except BrokerError as exc:
            refusal = str(exc)
        assert time.monotonic() < deadline, "the revoked device was still admitted after the reload"
        time.sleep(0.2)
    assert "not authorized" in refusal.lower()
