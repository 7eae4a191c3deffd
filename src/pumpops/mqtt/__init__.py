"""The one MQTT adapter: every pumpops part that speaks MQTT builds its client here.

It owns how a client connects (:class:`ClientOptions`: client id, clean or
persistent session, MQTT 3.1.1 or 5, user name and password, TLS, keep-alive,
last will), two ways to run it (:class:`Connection` on paho's network thread;
:class:`DrivenConnection` on the owner's thread, reconnecting with
:class:`Backoff`, jittered exponential),
publishing with confirmation (:meth:`Connection.publish_confirmed`: wait for the
PUBACK with a timeout), subscriptions renewed on every connect, manual
acknowledgement (``ClientOptions.manual_ack``, for ingest) and a clean close.
Topics and payloads belong to the parts that use it (``telemetry``, ``edge``,
``rollout``, ``registry``).

May import: ``pumpops.errors``, paho-mqtt, the stdlib — nothing else (it sits at
the bottom, and the edge agent imports it). Names load on first use, so that
importing the package does not import paho.
"""

from typing import TYPE_CHECKING

from pumpops._lazy import lazy_exports

if TYPE_CHECKING:
    from pumpops.mqtt._backoff import Backoff, backoff_delay
    from pumpops.mqtt._client import Connection, Message, PublishInfo, make_client, open_socket
    from pumpops.mqtt._driven import DrivenConnection
    from pumpops.mqtt._options import CLIENT_USERNAME, ClientOptions, LastWill, TlsOptions

_LAZY: dict[str, str] = {
    "Backoff": "pumpops.mqtt._backoff",
    "backoff_delay": "pumpops.mqtt._backoff",
    "Connection": "pumpops.mqtt._client",
    "DrivenConnection": "pumpops.mqtt._driven",
    "Message": "pumpops.mqtt._client",
    "PublishInfo": "pumpops.mqtt._client",
    "make_client": "pumpops.mqtt._client",
    "open_socket": "pumpops.mqtt._client",
    "CLIENT_USERNAME": "pumpops.mqtt._options",
    "ClientOptions": "pumpops.mqtt._options",
    "LastWill": "pumpops.mqtt._options",
    "TlsOptions": "pumpops.mqtt._options",
}


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)


__all__ = [
    "CLIENT_USERNAME",
    "Backoff",
    "ClientOptions",
    "Connection",
    "DrivenConnection",
    "LastWill",
    "Message",
    "PublishInfo",
    "TlsOptions",
    "backoff_delay",
    "make_client",
    "open_socket",
]
