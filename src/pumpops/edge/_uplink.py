"""The agent's MQTT link: publish one message and know whether the broker took it; hear ``desired``.

paho-mqtt (through :class:`pumpops.mqtt.Connection`) runs its network loop in
its own thread and reconnects by itself (1 s doubling to 30 s).
:meth:`Uplink.publish` returns True only once the broker acknowledged the
message (QoS 1 PUBACK) within the timeout; while the link is down it returns
False at once, so the outbox keeps the message and its order. What arrives on
the device's ``desired`` topic (retained, written by the hub) is put on a queue
the agent's loop reads.
May import: ``pumpops.mqtt``, the stdlib.
"""

from __future__ import annotations

import logging
import queue
import time

from pumpops.mqtt import ClientOptions, Connection, Message

__all__ = ["Uplink"]

log = logging.getLogger("pumpops.agent")


class Uplink:
    """The MQTT link of one device.

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
        options = ClientOptions(
            client_id=client_id,
            clean_session=True,
            username=None,
            keepalive_s=keepalive_s,
            reconnect_min_s=1,
            reconnect_max_s=30,
        )
        self._conn = Connection(
            host,
            port,
            options,
            subscriptions=(desired_topic,),
            on_message=self._on_message,
            on_connect=lambda: log.info("broker connected"),
            on_disconnect=self._on_disconnect,
            on_refused=lambda reason: log.warning("broker refused the connection: %s", reason),
        )
        self._conn.connect_async()

    @property
    def connected(self) -> bool:
        """Whether the broker link is up now."""
        return self._conn.connected

    def wait_connected(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the link; True if it is up."""
        return self._conn.wait_connected(timeout_s)

    def wait_desired(self, timeout_s: float, grace_s: float = 0.3) -> bool:
        """Wait for the ``desired`` subscription (``timeout_s``), then ``grace_s`` for its retained message.

        The broker sends a retained message right after acknowledging the
        subscription; an agent that starts should know what the hub wants
        before its first update check.
        """
        if not self._conn.wait_subscribed(timeout_s):
            return False
        end = time.monotonic() + grace_s
        while self.desired.empty() and time.monotonic() < end:
            time.sleep(0.02)
        return True

    def _on_disconnect(self, reason: object, was_up: bool) -> None:
        if was_up:
            log.warning("broker link lost (%s); messages wait in the outbox", reason)

    def _on_message(self, message: Message) -> None:
        if message.topic == self.desired_topic:
            self.desired.put(bytes(message.payload))

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """Publish at QoS 1; True once the broker acknowledged it, False if not (link down, timeout)."""
        return self._conn.publish_confirmed(topic, payload, timeout_s=self.publish_timeout_s, retain=retain)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self._conn.close()
