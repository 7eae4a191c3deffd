"""Who may publish and read which topics: the broker's access rules as data, rendered for Mosquitto and amqtt.

Device topics are ``<prefix>/<site>/<device_id>/<kind>``. A device (its MQTT
user name is its id) may publish only its own ``telemetry``, ``alarms``,
``summaries``, ``drift`` and ``state`` (under any site) and read only its own
``desired``. The hub's identities: ``hub-ingest`` reads device traffic (also as
a ``$share/...`` member), ``hub-rollout`` alone publishes ``desired``,
``hub-events`` alone publishes ``<prefix>/events/...``. Everything else is
denied. :meth:`AccessPolicy.mosquitto_acl` renders an ``acl_file``;
:meth:`AccessPolicy.allows` is the same decision for the embedded broker.

May import: ``pumpops.errors``, the stdlib.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from pumpops.errors import ConfigError

__all__ = [
    "DEVICE_PUBLISH_KINDS",
    "HUB_IDENTITIES",
    "HUB_PREFIX",
    "AccessPolicy",
    "AclRule",
    "filter_within",
    "topic_matches",
]

Access = Literal["read", "write"]
Action = Literal["publish", "subscribe", "receive"]

#: What a device publishes about itself.
DEVICE_PUBLISH_KINDS: Final = ("telemetry", "alarms", "summaries", "drift", "state")
#: User names of the hub's services start with this; no device id may.
HUB_PREFIX: Final = "hub-"
#: The hub's service identities (MQTT user names).
HUB_IDENTITIES: Final = ("hub-ingest", "hub-rollout", "hub-events")
_DEVICE: Final = "%u"  # Mosquitto's pattern token: the connecting user name
_PREFIX = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


@dataclass(frozen=True, slots=True)
class AclRule:
    """One rule: ``access`` to topics matching ``topic`` (MQTT wildcards; ``%u`` = the user name)."""

    access: Access
    topic: str


def topic_matches(topic: str, topic_filter: str) -> bool:
    """Whether a concrete topic matches an MQTT filter (``+`` one level, ``#`` the rest).

    >>> topic_matches("p/v1/s/d1/telemetry", "p/v1/+/d1/telemetry")
    True
    >>> topic_matches("p/v1/s/d2/telemetry", "p/v1/+/d1/telemetry")
    False
    """
    levels, pattern = topic.split("/"), topic_filter.split("/")
    for i, want in enumerate(pattern):
        if want == "#":
            return True
        if i >= len(levels) or (want not in ("+", levels[i])):
            return False
    return len(levels) == len(pattern)


def filter_within(requested: str, allowed: str) -> bool:
    """Whether every topic ``requested`` (a filter) can match is matched by ``allowed``.

    >>> filter_within("p/+/d1/desired", "p/+/d1/desired")
    True
    >>> filter_within("p/+/+/desired", "p/+/d1/desired")
    False
    >>> filter_within("p/a/#", "p/#")
    True
    """
    req, allow = requested.split("/"), allowed.split("/")
    for i, want in enumerate(allow):
        if want == "#":
            return True
        if i >= len(req):
            return False
        got = req[i]
        if got == "#" or want not in ("+", got):
            return False
    return len(req) == len(allow)


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """The access rules for one topic prefix.

    Args:
        prefix: the topic prefix (``pumpops/v1``).
    """

    prefix: str = "pumpops/v1"

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise ConfigError(f"topic prefix {self.prefix!r} must be segments of letters, digits, '_' or '-'")

    def device_rules(self) -> tuple[AclRule, ...]:
        """What every device may do, with ``%u`` standing for its id."""
        writes = tuple(AclRule("write", f"{self.prefix}/+/{_DEVICE}/{kind}") for kind in DEVICE_PUBLISH_KINDS)
        return (*writes, AclRule("read", f"{self.prefix}/+/{_DEVICE}/desired"))

    def hub_rules(self) -> dict[str, tuple[AclRule, ...]]:
        """What each hub identity may do (user name → rules)."""
        devices = f"{self.prefix}/+/+/+"
        return {
            "hub-ingest": (AclRule("read", devices), AclRule("read", f"$share/+/{devices}")),
            "hub-rollout": (AclRule("write", f"{self.prefix}/+/+/desired"),),
            "hub-events": (AclRule("write", f"{self.prefix}/events/#"),),
        }

    def rules_for(self, username: str) -> tuple[AclRule, ...]:
        """The rules of one user name, ``%u`` replaced (a hub identity, else a device)."""
        hub = self.hub_rules()
        if username in hub:
            return hub[username]
        if username.startswith(HUB_PREFIX) or any(c in username for c in "+#/"):
            return ()
        return tuple(AclRule(r.access, r.topic.replace(_DEVICE, username)) for r in self.device_rules())

    def allows(self, username: str | None, action: Action, topic: str) -> bool:
        """Whether ``username`` may publish on, subscribe to or receive from ``topic``.

        ``subscribe`` is allowed only for a filter no wider than a read rule (so a
        wildcard cannot pull another device's retained ``desired``);
        ``publish`` and ``receive`` test the concrete topic.

        >>> policy = AccessPolicy("pumpops/v1")
        >>> policy.allows("p-1", "publish", "pumpops/v1/site/p-1/telemetry")
        True
        >>> policy.allows("p-1", "publish", "pumpops/v1/site/p-2/telemetry")
        False
        >>> policy.allows("p-1", "publish", "pumpops/v1/site/p-1/desired")
        False
        """
        if not username:
            return False
        rules = self.rules_for(username)
        if action == "publish":
            return any(r.access == "write" and topic_matches(topic, r.topic) for r in rules)
        if action == "receive":
            return any(r.access == "read" and topic_matches(topic, r.topic) for r in rules)
        return any(r.access == "read" and filter_within(topic, r.topic) for r in rules)

    def mosquitto_acl(self) -> str:
        """The rules as a Mosquitto ``acl_file`` (hub identities by name, devices by pattern)."""
        lines = [
            "# pumpops broker access rules (generated by `pumpops broker config`; do not edit by hand).",
            "# Devices: pattern rules, %u = the connecting user name = the device id.",
            "# Anything not allowed here is denied.",
            "",
        ]
        for user, rules in self.hub_rules().items():
            lines.append(f"user {user}")
            lines.extend(f"topic {r.access} {r.topic}" for r in rules)
            lines.append("")
        lines.append("# every device (hub identities cannot be devices: their names start with 'hub-')")
        lines.extend(f"pattern {r.access} {r.topic}" for r in self.device_rules())
        return "\n".join(lines) + "\n"
