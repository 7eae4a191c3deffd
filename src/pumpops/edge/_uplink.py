"""The agent's MQTT link: publish one message and know whether the broker took it; hear ``desired``.

paho-mqtt (through :class:`pumpops.mqtt.Connection`) runs its network loop in
its own thread and reconnects by itself (1 s doubling to 30 s).
:meth:`Uplink.publish` returns True only once the broker acknowledged the
message (QoS 1 PUBACK) within the timeout; while the link is down it returns
False at once, so the outbox keeps the message and its order. What arrives on
the device's ``desired`` topic (retained, written by the hub) is put on a queue
the agent's loop reads.

The last will (``will``): the broker publishes it, retained, on the device's
``state`` topic when the agent vanishes without a clean disconnect (kill -9,
power cut, network loss), so the hub's fleet status says ``offline`` instead of
waiting for silence. Its message id is a fresh one from the outbox's sequence,
renewed after every lost link (the hub stores a message id once, so a second
death must not reuse the first will's id); a clean :meth:`Uplink.close` sends no will.
May import: ``pumpops.mqtt``, the stdlib.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pumpops.edge._envelope import encode_envelope
from pumpops.edge._state import AGENT_VERSION
from pumpops.errors import ConfigError
from pumpops.mqtt import ClientOptions, Connection, LastWill, Message, TlsOptions

if TYPE_CHECKING:
    from pumpops.edge._config import AgentConfig
    from pumpops.edge._outbox import Outbox

__all__ = ["OFFLINE_STATUS", "Uplink", "build_uplink", "last_will_payload"]

#: The ``status`` of the last will's state report.
OFFLINE_STATUS = "offline"

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
        tls: TLS settings (``mqtts://``; paho checks the broker's host name), or None.
        username: the MQTT user name (None: none).
        password: its password.
        will: makes the last will, ``(topic, payload)``; called before the first connect
            and after every lost link, on paho's thread. None: no will.
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
        tls: TlsOptions | None = None,
        username: str | None = None,
        password: str | None = None,
        will: Callable[[], tuple[str, bytes]] | None = None,
    ) -> None:
        self.desired_topic = desired_topic
        self.publish_timeout_s = publish_timeout_s
        self.desired: queue.Queue[bytes] = queue.Queue()
        #: accepted connects so far (the agent re-sends its state after each one)
        self.connects = 0
        self._will = will
        options = ClientOptions(
            client_id=client_id,
            clean_session=True,
            username=username,
            password=password,
            tls=tls,
            keepalive_s=keepalive_s,
            last_will=self._make_will(),
            reconnect_min_s=1,
            reconnect_max_s=30,
        )
        self._conn = Connection(
            host,
            port,
            options,
            subscriptions=(desired_topic,),
            on_message=self._on_message,
            on_connect=self._on_connect,
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

    def _make_will(self) -> LastWill | None:
        if self._will is None:
            return None
        topic, payload = self._will()
        return LastWill(topic, payload, qos=1, retain=True)

    def _on_connect(self) -> None:
        self.connects += 1
        log.info("broker connected")

    def _on_disconnect(self, reason: object, was_up: bool) -> None:
        if was_up:
            log.warning("broker link lost (%s); messages wait in the outbox", reason)
            try:
                will = self._make_will()
            except Exception as exc:  # paho's thread must survive; the old will stays
                log.warning("cannot renew the last will: %s", exc)
                return
            if will is not None:
                self._conn.client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)

    def _on_message(self, message: Message) -> None:
        if message.topic == self.desired_topic:
            self.desired.put(bytes(message.payload))

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """Publish at QoS 1; True once the broker acknowledged it, False if not (link down, timeout)."""
        return self._conn.publish_confirmed(topic, payload, timeout_s=self.publish_timeout_s, retain=retain)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self._conn.close()


def last_will_payload(device_id: str, site: str, msg_id: str, ts_ms: int, agent_version: str) -> bytes:
    """The last will: a ``state`` envelope with status ``offline`` and ``last_will: true``.

    ``ts_ms`` is when the will was set (the connect), not when the agent died; the hub
    dates a last will by its arrival (``pumpops.telemetry``'s agent decoding).
    """
    body = {"status": OFFLINE_STATUS, "last_will": True}
    return encode_envelope(
        device_id=device_id,
        site=site,
        kind="state",
        ts_ms=ts_ms,
        agent_version=agent_version,
        body=body,
        msg_id=msg_id,
    )


def build_uplink(config: AgentConfig, outbox: Outbox, *, desired_topic: str) -> Uplink:
    """The uplink of ``agent.toml``'s ``[broker]``: TLS, credentials, the device id as client id, the will.

    Raises:
        ConfigError: no broker configured, or the password file cannot be read.
    """
    broker, a = config.broker, config.agent
    hp = broker.host_port
    if hp is None:
        raise ConfigError("broker.url is 'none': there is no uplink to build")
    tls = None
    if broker.tls:
        tls = TlsOptions(
            ca_file=None if broker.ca_file is None else str(broker.ca_file),
            cert_file=None if broker.cert_file is None else str(broker.cert_file),
            key_file=None if broker.key_file is None else str(broker.key_file),
        )
    state_topic = f"{broker.topic_prefix}/{a.site}/{a.device_id}/state"

    def will() -> tuple[str, bytes]:
        payload = last_will_payload(
            a.device_id, a.site, outbox.reserve_msg_id(), int(time.time() * 1000), AGENT_VERSION
        )
        return state_topic, payload

    return Uplink(
        hp[0],
        hp[1],
        client_id=a.device_id,
        desired_topic=desired_topic,
        keepalive_s=broker.keepalive_s,
        publish_timeout_s=broker.publish_timeout_s,
        tls=tls,
        username=broker.username,
        password=broker.password(),
        will=will,
    )
