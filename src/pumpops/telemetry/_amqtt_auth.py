"""The embedded broker's authentication plugin (imported by amqtt, by dotted path, when it starts).

Kept apart from ``_broker`` so that importing :mod:`pumpops.telemetry` does
not import amqtt: only a process that starts the embedded broker pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amqtt.plugins.base import BaseAuthPlugin


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
