"""How an MQTT client connects: the options every pumpops client is built from (pure data)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["CLIENT_USERNAME", "ClientOptions", "LastWill", "TlsOptions"]

#: MQTT user name pumpops clients present. Not a credential: amqtt keeps sessions
#: only for clients with a user name (see ``pumpops.telemetry``'s embedded broker),
#: and it labels connections in broker logs.
CLIENT_USERNAME: Final = "pumpops"


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """TLS for the broker connection (``mqtts://``); None fields mean the system defaults.

    Attributes:
        ca_file: PEM file of the CAs to trust (None: the system's).
        cert_file: the client certificate, PEM, for mutual TLS.
        key_file: the client certificate's private key, PEM.
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


@dataclass(frozen=True, slots=True)
class LastWill:
    """The message the broker publishes for a client that vanished without disconnecting.

    Attributes:
        topic: where the will is published.
        payload: its bytes.
        qos: its QoS (0, 1 or 2).
        retain: whether the broker retains it.
    """

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Everything about a connection except where the broker is.

    Attributes:
        client_id: the MQTT client id (unique among the broker's clients).
        clean_session: False keeps the session (subscriptions, queued QoS 1
            messages) at the broker while the client is away.
        protocol: ``"3.1.1"`` or ``"5"``.
        username: presented at connect (None: no user name).
        password: presented with ``username`` (None: no password).
        tls: TLS settings, or None for plain TCP.
        keepalive_s: MQTT keep-alive, seconds.
        last_will: the will message, or None.
        manual_ack: acknowledge received QoS 1 messages only when the
            application says so (:meth:`paho.mqtt.client.Client.ack`).
        max_inflight: QoS 1 messages sent and not yet acknowledged before paho
            waits (None: paho's default).
        max_queued: messages paho queues beyond that (0: unbounded; None: paho's default).
        reconnect_min_s: first delay of paho's own reconnects (network thread
            clients), seconds; None: paho's default.
        reconnect_max_s: largest delay of paho's own reconnects, seconds.
    """

    client_id: str
    clean_session: bool = True
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    username: str | None = CLIENT_USERNAME
    password: str | None = None
    tls: TlsOptions | None = None
    keepalive_s: int = 30
    last_will: LastWill | None = None
    manual_ack: bool = False
    max_inflight: int | None = None
    max_queued: int | None = None
    reconnect_min_s: int | None = None
    reconnect_max_s: int = 30
