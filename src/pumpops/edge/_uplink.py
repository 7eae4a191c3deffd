"""The agent's MQTT link: publish one message and know whether the broker took it; hear ``desired``.

paho-mqtt runs its network loop in its own thread and reconnects by itself
(1 s doubling to 30 s). :meth:`Uplink.publish` returns True only once the
broker acknowledged the message (QoS 1 PUBACK) within the timeout; while the
link is down it returns False at once, so the outbox keeps the message and
its order. What arrives on the device's ``desired`` topic (retained, written
by the hub) is put on a queue the agent's loop reads.
May import: paho-mqtt, the stdlib.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

__all__ = ["Uplink"]

log = logging.getLogger("pumpops.agent")


class Uplink:
    """A paho-mqtt client for one device.

    Args:
        host: broker host.
        port: broker port.
        client_id: the MQTT client id.
        desired_topic: the device's ``desired`` topic (subscribed on every connect).
        keepalive_s: MQTT keep-alive.
        publish_timeout_s: how long :meth:`publish` waits for the acknowledgement.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str,
        desired_topic: str,
        keepalive_s: int = 30,
        publish_timeout_s: float = 5.0,
    ) -> None:
        self.desired_topic = desired_topic
        self.publish_timeout_s = publish_timeout_s
        self.desired: queue.Queue[bytes] = queue.Queue()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_args: self._subscribed.set()
        self._client.connect_async(host, port, keepalive=keepalive_s)
        self._client.loop_start()

    @property
    def connected(self) -> bool:
        """Whether the broker link is up now."""
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the link; True if it is up."""
        return self._connected.wait(timeout_s)

    def wait_desired(self, timeout_s: float, grace_s: float = 0.3) -> bool:
        """Wait for the ``desired`` subscription (``timeout_s``), then ``grace_s`` for its retained message.

        The broker sends a retained message right after acknowledging the
        subscription; an agent that starts should know what the hub wants
        before its first update check.
        """
        if not self._subscribed.wait(timeout_s):
            return False
        end = time.monotonic() + grace_s
        while self.desired.empty() and time.monotonic() < end:
            time.sleep(0.02)
        return True

    def _on_connect(
        self, client: mqtt.Client, _userdata: object, _flags: object, reason: object, _p: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("broker refused the connection: %s", reason)
            return
        client.subscribe(self.desired_topic, qos=1)
        self._connected.set()
        log.info("broker connected")

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if self._connected.is_set():
            log.warning("broker link lost (%s); messages wait in the outbox", reason)
        self._connected.clear()

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.desired_topic:
            self.desired.put(bytes(message.payload))

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """Publish at QoS 1; True once the broker acknowledged it, False if not (link down, timeout)."""
        if not self._connected.is_set():
            return False
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        try:
            info.wait_for_publish(self.publish_timeout_s)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()
