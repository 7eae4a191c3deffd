"""A client driven on its owner's thread: connect, loop, reconnect with jittered backoff, close cleanly.

:class:`Connection` leaves the network to paho's own thread and paho's fixed
reconnect delays. A service that must own its network thread (ingest: manual
acknowledgements sent only from that thread, a reconnect that keeps the
session) uses :class:`DrivenConnection` instead: every paho call and callback
happens on the thread that calls :meth:`DrivenConnection.run`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt

from pumpops.mqtt._backoff import Backoff
from pumpops.mqtt._client import Message, make_client, open_socket
from pumpops.mqtt._options import ClientOptions

__all__ = ["DrivenConnection"]

_log = logging.getLogger(__name__)


class DrivenConnection:
    """One client, looped by :meth:`run` on the caller's thread until a stop event.

    Args:
        host: broker host.
        port: broker port.
        options: how to connect (a persistent session: ``clean_session=False``).
        backoff: delays between failed connects and after a lost link (reset once connected).
        on_connect: after each accepted connect, with the broker's ``session_present``.
        on_message: each received message.
        on_subscribe: the broker's reason codes for each subscription.
        on_refused: the broker refused a connect (its reason).
        on_lost: the link went down, or :meth:`run` is returning.
        each_loop: after every network loop (send what the application queued).
        log: where reconnects are logged (the owner's logger).
        loop_timeout_s: how long one network loop waits for the socket, seconds.
    """

    def __init__(
        self,
        host: str,
        port: int,
        options: ClientOptions,
        *,
        backoff: Backoff,
        on_connect: Callable[[bool], None],
        on_message: Callable[[Message], None],
        on_subscribe: Callable[[Sequence[Any]], None] | None = None,
        on_refused: Callable[[object], None] | None = None,
        on_lost: Callable[[], None] | None = None,
        each_loop: Callable[[], None] | None = None,
        log: logging.Logger = _log,
        loop_timeout_s: float = 0.02,
    ) -> None:
        self.host = host
        self.port = port
        self.options = options
        self._backoff = backoff
        self._on_connect_hook = on_connect
        self._on_refused = on_refused
        self._on_lost = on_lost or (lambda: None)
        self._each_loop = each_loop or (lambda: None)
        self._log = log
        self._loop_timeout_s = loop_timeout_s
        self._socket_ok = False
        self._refused = False
        self._ever_opened = False
        self._connected = False
        client = make_client(options)
        client.on_connect = self._on_connect
        client.on_message = lambda _c, _u, message: on_message(message)
        if on_subscribe is not None:
            client.on_subscribe = lambda _c, _u, _mid, reasons, _p: on_subscribe(reasons)
        self._client = client

    @property
    def url(self) -> str:
        """The broker as a URL (log lines, errors)."""
        return f"{'mqtts' if self.options.tls is not None else 'mqtt'}://{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        """Whether the broker accepted the current connection."""
        return self._connected

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe (call it from a callback, on the loop's thread)."""
        self._client.subscribe(topic, qos=qos)

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a received message (``manual_ack``; on the loop's thread)."""
        self._client.ack(mid, qos)

    def run(self, stop: threading.Event, *, drain: Callable[[], bool], drain_timeout_s: float = 2.0) -> None:
        """Connect, loop and reconnect until ``stop`` is set; then drain and disconnect cleanly.

        Args:
            stop: set it (from any thread) to end the loop.
            drain: True while the owner still has something to send (``each_loop`` sends it).
            drain_timeout_s: how long to keep sending after ``stop``, seconds.
        """
        backoff = self._backoff
        while not stop.is_set():
            if not self._socket_ok:
                try:
                    self._open()
                except (OSError, mqtt.WebsocketConnectionError, ValueError) as exc:
                    delay = backoff.next_delay()
                    self._log.warning(
                        "cannot reach the broker at %s (%s); retrying in %.1f s", self.url, exc, delay
                    )
                    stop.wait(delay)
                    continue
            try:
                rc = self._client.loop(timeout=self._loop_timeout_s)
                self._each_loop()
            except Exception:  # paho re-raises callback errors; the loop must survive them
                self._log.exception("MQTT network loop failed; reconnecting")
                rc = mqtt.MQTT_ERR_UNKNOWN
            if rc == mqtt.MQTT_ERR_SUCCESS and not self._refused:
                if self._connected:
                    backoff.reset()
                continue
            why = "the broker refused the connection" if self._refused else mqtt.error_string(rc)
            self._connected = False
            self._on_lost()
            self._socket_ok = False
            delay = backoff.next_delay()
            self._log.warning("lost the broker at %s (%s); reconnecting in %.1f s", self.url, why, delay)
            stop.wait(delay)
        self._finish(drain, drain_timeout_s)

    def _open(self) -> None:
        """Open the connection: ``connect`` the first time, then ``reconnect`` (same session)."""
        self._refused = False
        if self._ever_opened:
            self._client.reconnect()  # closes any old socket first
        else:
            open_socket(self._client, self.options, self.host, self.port)
            self._ever_opened = True
        self._socket_ok = True

    def _finish(self, drain: Callable[[], bool], timeout_s: float) -> None:
        """Send what is left, then disconnect cleanly (a persistent session stays at the broker)."""
        if self._socket_ok and self._connected:
            deadline = time.monotonic() + timeout_s
            while (drain() or self._client.want_write()) and time.monotonic() < deadline:
                self._each_loop()
                self._client.loop(timeout=self._loop_timeout_s)
            self._client.disconnect()
            for _ in range(5):
                if self._client.loop(timeout=self._loop_timeout_s) != mqtt.MQTT_ERR_SUCCESS:
                    break
        self._connected = False
        self._on_lost()

    def _on_connect(self, _client: mqtt.Client, _u: object, flags: Any, reason: Any, _p: object) -> None:
        if reason.is_failure:
            self._refused = True
            if self._on_refused is not None:
                self._on_refused(reason)
            return
        self._connected = True
        self._on_connect_hook(bool(flags.session_present))
