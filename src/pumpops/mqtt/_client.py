"""The paho-mqtt client built one way, and :class:`Connection`: connect, confirmed publish, subscribe.

:func:`make_client` turns :class:`~pumpops.mqtt.ClientOptions` into a configured
paho client (protocol, session, user name, TLS, will, manual acknowledgement,
in-flight limits). :class:`Connection` runs such a client on paho's network
thread, which reconnects by itself; a service that must own its reconnects
(ingest: jittered backoff, generations of acknowledgements) drives the client
from :func:`make_client` on its own thread with :class:`~pumpops.mqtt.Backoff`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from pumpops.errors import BrokerError
from pumpops.mqtt._options import ClientOptions

__all__ = ["Connection", "Message", "PublishInfo", "make_client", "open_socket"]

_log = logging.getLogger(__name__)

#: A received message (paho's), as handed to ``on_message``.
Message = mqtt.MQTTMessage
#: What :meth:`Connection.publish` returns: paho's handle on one publish (``mid``, ``is_published()``).
PublishInfo = mqtt.MQTTMessageInfo


def make_client(options: ClientOptions) -> mqtt.Client:
    """A paho client configured from ``options`` (callbacks, connecting: the caller's)."""
    if options.protocol == "5":
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=options.client_id, protocol=mqtt.MQTTv5)
    else:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=options.client_id,
            clean_session=options.clean_session,
            protocol=mqtt.MQTTv311,
        )
    if options.username is not None:
        client.username_pw_set(options.username, options.password)
    if options.manual_ack:
        client.manual_ack_set(True)
    if options.max_inflight is not None:
        client.max_inflight_messages_set(options.max_inflight)
    if options.max_queued is not None:
        client.max_queued_messages_set(options.max_queued)
    if options.reconnect_min_s is not None:
        client.reconnect_delay_set(options.reconnect_min_s, options.reconnect_max_s)
    if options.last_will is not None:
        will = options.last_will
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    if options.tls is not None:
        tls = options.tls
        client.tls_set(ca_certs=tls.ca_file, certfile=tls.cert_file, keyfile=tls.key_file)
    return client


def open_socket(client: mqtt.Client, options: ClientOptions, host: str, port: int) -> None:
    """``connect`` a client from :func:`make_client` (blocking; MQTT 5's clean start from the options).

    Raises:
        OSError: the broker cannot be reached (paho's own errors pass through).
    """
    if options.protocol == "5":
        client.connect(host, port, keepalive=options.keepalive_s, clean_start=options.clean_session)
    else:
        client.connect(host, port, keepalive=options.keepalive_s)


def _failed(reason: object) -> bool:
    return bool(getattr(reason, "is_failure", False))


class Connection:
    """One client on paho's network thread: connect, publish (confirmed), subscribe, close.

    Args:
        host: broker host.
        port: broker port.
        options: how to connect.
        subscriptions: topic filters subscribed (QoS 1) on every connect.
        on_message: called on the network thread with each received message.
        on_connect: called on the network thread after each accepted connect.
        on_disconnect: called on the network thread with paho's reason and
            whether the link was up before.
        on_refused: called on the network thread when the broker refuses a connect.
        on_publish: called on the network thread with the ``mid`` of each acknowledged publish.
    """

    def __init__(
        self,
        host: str,
        port: int,
        options: ClientOptions,
        *,
        subscriptions: Sequence[str] = (),
        on_message: Callable[[Message], None] | None = None,
        on_connect: Callable[[], None] | None = None,
        on_disconnect: Callable[[object, bool], None] | None = None,
        on_refused: Callable[[object], None] | None = None,
        on_publish: Callable[[int], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.options = options
        self._subscriptions = tuple(subscriptions)
        self._hooks = (on_message, on_connect, on_disconnect, on_refused, on_publish)
        self._connected = threading.Event()
        self._answered = threading.Event()  # the broker accepted or refused the last connect
        self._subscribed = threading.Event()
        self._refusal: str | None = None
        self._started = False
        client = make_client(options)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        if on_message is not None:
            client.on_message = lambda _c, _u, message: on_message(message)
        if on_publish is not None:
            client.on_publish = lambda _c, _u, mid, _rc, _p: on_publish(mid)
        client.on_subscribe = lambda *_args: self._subscribed.set()
        self.client = client

    @property
    def url(self) -> str:
        """The broker as a URL (log lines, errors)."""
        return f"{'mqtts' if self.options.tls is not None else 'mqtt'}://{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        """Whether the broker link is up now."""
        return self._connected.is_set()

    @property
    def started(self) -> bool:
        """Whether the network thread runs (between a connect and :meth:`close`)."""
        return self._started

    def wait_connected(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the link; True if it is up."""
        return self._connected.wait(timeout_s)

    def wait_subscribed(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the broker to acknowledge a subscription; True if it did."""
        return self._subscribed.wait(timeout_s)

    def connect(self, timeout_s: float) -> Connection:
        """Connect, start the network thread and wait until the broker accepts.

        Raises:
            BrokerError: the broker cannot be reached or did not accept within ``timeout_s``.
        """
        try:
            open_socket(self.client, self.options, self.host, self.port)
        except OSError as exc:
            raise BrokerError(f"cannot connect to the MQTT broker at {self.url}: {exc}") from exc
        self.client.loop_start()
        self._started = True
        self._answered.wait(timeout_s)
        if not self._connected.is_set():
            self.close()
            if self._refusal is not None:
                raise BrokerError(
                    f"the MQTT broker at {self.url} refused the connection: {self._refusal} "
                    "(check the user name, password and client certificate)"
                )
            raise BrokerError(
                f"the MQTT broker at {self.url} did not accept the connection within {timeout_s} s: no answer"
            )
        return self

    def connect_async(self) -> Connection:
        """Start connecting in the background (the network thread retries until the broker answers)."""
        if self.options.protocol == "5":
            self.client.connect_async(
                self.host,
                self.port,
                keepalive=self.options.keepalive_s,
                clean_start=self.options.clean_session,
            )
        else:
            self.client.connect_async(self.host, self.port, keepalive=self.options.keepalive_s)
        self.client.loop_start()
        self._started = True
        return self

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> PublishInfo:
        """Hand a message to paho; while the link is down paho keeps a QoS>0 message and sends it later.

        Raises:
            BrokerError: paho refused it (not connected is not a refusal).
        """
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise BrokerError(f"cannot publish to {topic}: {mqtt.error_string(info.rc)}")
        return info

    def publish_confirmed(
        self, topic: str, payload: bytes, *, timeout_s: float, retain: bool = False
    ) -> bool:
        """Publish at QoS 1; True once the broker acknowledged it, False if not (link down, timeout)."""
        if not self._connected.is_set():
            return False
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def wait_published(self, infos: Sequence[tuple[str, PublishInfo]], timeout_s: float) -> None:
        """Wait until the broker acknowledged every ``(topic, info)``.

        Raises:
            BrokerError: one was not acknowledged within ``timeout_s`` (names its topic).
        """
        deadline = time.monotonic() + timeout_s
        for topic, info in infos:
            while not info.is_published():
                if time.monotonic() > deadline:
                    raise BrokerError(f"the broker at {self.url} did not acknowledge the message on {topic}")
                time.sleep(0.005)

    def close(self) -> None:
        """Disconnect cleanly and stop the network thread (idempotent)."""
        if not self._started:
            return
        self.client.disconnect()
        self.client.loop_stop()
        self._started = False
        self._connected.clear()

    def _on_connect(self, client: mqtt.Client, _u: object, _flags: object, reason: Any, _p: object) -> None:
        on_refused, on_connect = self._hooks[3], self._hooks[1]
        if _failed(reason):
            self._refusal = str(reason)
            self._answered.set()
            if on_refused is not None:
                on_refused(reason)
            return
        for topic in self._subscriptions:
            client.subscribe(topic, qos=1)
        self._connected.set()
        self._answered.set()
        if on_connect is not None:
            on_connect()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        was_up = self._connected.is_set()
        self._connected.clear()
        on_disconnect = self._hooks[2]
        if on_disconnect is not None:
            on_disconnect(reason, was_up)
