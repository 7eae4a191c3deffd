"""The embedded broker's plugins (imported by amqtt, by dotted path, when it starts).

Open mode: :class:`OpenAuthPlugin` lets every local client in. Secure mode:
:class:`RegistryAuthPlugin` admits only identities of the workspace's
credentials registry (argon2-checked passwords, ``pumpops.security``) and binds
each client id to the first identity that used it (the embedded equivalent of
Mosquitto's ``use_username_as_clientid``); :class:`AclTopicPlugin` decides every
publish, subscribe and delivery by :class:`pumpops.security.AccessPolicy`, the
rules Mosquitto's ``acl_file`` is rendered from. amqtt's anonymous plugin is
never loaded in secure mode: it admits any client that sends a user name.
:class:`SecureBroker` authenticates a CONNECT before amqtt touches the session
its client id names (amqtt itself does that afterwards).

Kept apart from ``_broker`` so that importing :mod:`pumpops.telemetry` does
not import amqtt: only a process that starts the embedded broker pays for it.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqtt.broker import Broker
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.utils import gen_client_id

from pumpops.security import HUB_PREFIX, AccessPolicy, CredentialRegistry

_log = logging.getLogger(__name__)
# what a persistent client's CONNECT renews in its stored session (as amqtt does)
_RENEWED_ON_CONNECT = (
    *("will_flag", "will_message", "will_topic", "will_qos"),
    *("keep_alive", "username", "password"),
)


class OpenAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt ships no type information
    """amqtt authentication that lets every client in *without* marking it anonymous.

    amqtt neither keeps offline sessions nor queues QoS 1 messages for
    sessions it marks anonymous, and its ``AnonymousAuthPlugin`` marks every
    session so. The embedded broker listens on 127.0.0.1 only, so letting
    every local client in is the intended policy.
    """

    @dataclass
    class Config:
        """No options."""

    async def authenticate(self, *, session: Any) -> bool | None:
        """Accept the client."""
        return True


class RegistryAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """Admit only registered identities with their password; a client id stays with its first identity."""

    @dataclass
    class Config:
        """``registry``: the credentials registry folder (``<workspace>/security``)."""

        registry: str = ""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._registry = CredentialRegistry(Path(self.config.registry))
        self._owners: dict[str, str] = {}  # client id -> the user name that first used it

    async def authenticate(self, *, session: Any) -> bool | None:
        """Check the user name, the password and the client id's owner."""
        username, password = session.username, session.password
        client_id = str(session.client_id or "")
        if not username or password is None:
            _log.warning("refused client %r: no user name or password", client_id)
            return False
        secret = password.decode("utf-8", "replace") if isinstance(password, bytes) else str(password)
        if not self._registry.verify(str(username), secret):
            _log.warning("refused client %r: wrong user name or password for %r", client_id, username)
            return False
        if client_id.startswith(HUB_PREFIX) and not str(username).startswith(HUB_PREFIX):
            _log.warning("refused %r: client ids starting with %r are the hub's", username, HUB_PREFIX)
            return False
        owner = self._owners.setdefault(client_id, str(username))
        if owner != username:
            _log.warning("refused %r: client id %r belongs to another identity", username, client_id)
            return False
        return True


class AclTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]
    """Publish, subscribe and receive only as :class:`pumpops.security.AccessPolicy` allows."""

    @dataclass
    class Config:
        """``prefix``: the topic prefix the rules are for."""

        prefix: str = "pumpops/v1"

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._policy = AccessPolicy(self.config.prefix)

    async def topic_filtering(
        self, *, session: Any = None, topic: str | None = None, action: Any = None
    ) -> bool | None:
        """The policy's verdict (False for no session, no topic or an unknown action)."""
        if session is None or not topic or action is None:
            return False
        kind = str(getattr(action, "value", action))
        if kind not in ("publish", "subscribe", "receive"):
            return False
        allowed = self._policy.allows(session.username, kind, topic)  # type: ignore[arg-type]
        if not allowed and kind != "receive":
            _log.info("denied %s of %r to %r", kind, topic, session.username)
        return allowed


class SecureBroker(Broker):  # type: ignore[misc]
    """amqtt's broker, authenticating a CONNECT *before* it touches the session its client id names.

    amqtt looks up, takes over (disconnecting the live client) or, for a clean
    session, deletes the session of a CONNECT's client id first and
    authenticates afterwards: any client that knows another's client id could
    end its connection or erase its queued messages without a password. This
    subclass refuses an unauthenticated CONNECT (CONNACK 5) before that step;
    the rest is amqtt's own ``_initialize_client_session``.
    """

    async def _initialize_client_session(
        self, reader: Any, writer: Any, remote_address: str, remote_port: int
    ) -> tuple[Any, Any]:
        try:
            handler, session = await BrokerProtocolHandler.init_from_connect(
                reader, writer, self.plugins_manager
            )
        except MQTTError as exc:
            await writer.close()
            raise MQTTError(exc) from exc
        except (AMQTTError, NoDataError) as exc:
            # amqtt leaves this socket to the garbage collector (a port probe, a TLS client that gave up)
            with contextlib.suppress(Exception):
                await writer.close()
            raise AMQTTError(exc) from exc
        if not await self._authenticate(session, None):
            _log.warning(
                "refused a CONNECT from %s:%s before any session was touched", remote_address, remote_port
            )
            await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
            await writer.close()
            raise AMQTTError("not authorized")
        return await self._session_for(handler, session)

    async def _session_for(self, handler: Any, session: Any) -> tuple[Any, Any]:
        """Amqtt's session step (0.12): new, cleaned, or the stored one of a persistent client."""
        if session.clean_session:
            if session.client_id:
                await self._delete_session(session.client_id)
            else:
                session.client_id = gen_client_id()
            session.parent = 0
        elif session.client_id in self._sessions:
            existing, _ = self._sessions[session.client_id]
            for name in (
                "will_flag",
                "will_message",
                "will_topic",
                "will_qos",
                "keep_alive",
                "username",
                "password",
            ):
                setattr(existing, name, getattr(session, name))
            session = existing
            session.parent = 1
        else:
            session.parent = 0
        delay = self.config.get("timeout-disconnect-delay", 0)
        if session.keep_alive > 0 and isinstance(delay, int):
            session.keep_alive += delay
        return handler, session
