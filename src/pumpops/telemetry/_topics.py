"""MQTT topic names: ``<prefix>/<site>/<device_id>/<kind>``, built and parsed.

Every device topic has exactly four parts after the prefix is split off: the
site, the device id and the kind of traffic. Building checks the identifiers
(so a publisher cannot create a topic the hub would reject); parsing turns a
wrong shape into a :class:`~pumpops.errors.MessageRejected` with the stable
reason ``wrong_topic`` and a sentence saying what was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal, get_args

from pumpops.errors import ConfigError, MessageRejected
from pumpops.schema import IDENT_PATTERN

TopicKind = Literal["telemetry", "alarms", "summaries", "drift", "state", "desired"]

#: Kinds of device traffic under the prefix; ``desired`` is retained and written by the hub.
#: ``alarms``, ``summaries``, ``drift`` and ``state`` carry the agent's messages
#: (``pumpops.agent/1``, see :data:`AGENT_TOPIC_KINDS`).
TOPIC_KINDS: Final[tuple[str, ...]] = get_args(TopicKind)

DEFAULT_PREFIX: Final = "pumpops/v1"

#: Topic kinds on which device agents publish their messages (one envelope, stored by msg_id).
AGENT_TOPIC_KINDS: Final[tuple[str, ...]] = ("alarms", "summaries", "drift", "state")

_IDENT = re.compile(IDENT_PATTERN)
_PREFIX = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
_SHARE_GROUP = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# A topic in a rejection detail is cut to this many characters: it came from the network.
_SHOW = 120


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    """A parsed device topic.

    Attributes:
        prefix: the topic prefix (``pumpops/v1``).
        site: the site segment.
        device_id: the device segment.
        kind: the kind of traffic (``telemetry``, ``alarms``, ...).
    """

    prefix: str
    site: str
    device_id: str
    kind: TopicKind

    def __str__(self) -> str:
        return f"{self.prefix}/{self.site}/{self.device_id}/{self.kind}"


def _check_prefix(prefix: str) -> None:
    if not _PREFIX.match(prefix):
        raise ConfigError(
            f"topic prefix {prefix!r} must be segments of letters, digits, '_' or '-' joined by '/'"
        )


def build_topic(
    site: str, device_id: str, kind: TopicKind = "telemetry", *, prefix: str = DEFAULT_PREFIX
) -> str:
    """Return the topic a device publishes (or, for ``desired``, is sent) on.

    Args:
        site: the device's site; an identifier (letters, digits, ``._:-``).
        device_id: the device id; an identifier.
        kind: which kind of traffic.
        prefix: the topic prefix from settings.

    Raises:
        ConfigError: the prefix, site, device id or kind is not allowed in a topic.

    >>> build_topic("north-sea-7", "p-0001")
    'pumpops/v1/north-sea-7/p-0001/telemetry'
    >>> build_topic("s1", "p-1", "desired", prefix="test-42/v1")
    'test-42/v1/s1/p-1/desired'
    """
    _check_prefix(prefix)
    for label, value in (("site", site), ("device id", device_id)):
        if not _IDENT.match(value):
            raise ConfigError(f"{label} {value!r} cannot be used in a topic; it must match {IDENT_PATTERN}")
    if kind not in TOPIC_KINDS:
        raise ConfigError(f"topic kind {kind!r} is not one of {', '.join(TOPIC_KINDS)}")
    return f"{prefix}/{site}/{device_id}/{kind}"


def _show(topic: str) -> str:
    return repr(topic if len(topic) <= _SHOW else topic[:_SHOW] + "...")


#: Topics under ``<prefix>/`` that belong to the hub, not to a device
#: (``<prefix>/events/<kind>``, published by the registry and later lifecycle steps).
HUB_TOPIC_ROOTS: Final = ("events",)


def is_hub_topic(topic: str, *, prefix: str = DEFAULT_PREFIX) -> bool:
    """Whether ``topic`` is one of the hub's own topics under the prefix (not a device's).

    >>> is_hub_topic("pumpops/v1/events/model.promoted")
    True
    >>> is_hub_topic("pumpops/v1/events-site/p-1/telemetry")
    False
    """
    return any(topic.startswith(f"{prefix}/{root}/") for root in HUB_TOPIC_ROOTS)


def parse_topic(topic: str, *, prefix: str = DEFAULT_PREFIX) -> DeviceTopic:
    """Split a device topic into its parts.

    Args:
        topic: the topic a message arrived on.
        prefix: the topic prefix from settings.

    Raises:
        MessageRejected: with reason ``wrong_topic`` if the topic is not
            ``<prefix>/<site>/<device_id>/<kind>`` with valid identifiers and a
            known kind.

    >>> parse_topic("pumpops/v1/s1/p-1/telemetry").device_id
    'p-1'
    >>> try:
    ...     parse_topic("pumpops/v1/p-1/telemetry")
    ... except MessageRejected as exc:
    ...     print(exc.reason)
    wrong_topic
    """
    head = prefix + "/"
    if not topic.startswith(head):
        raise MessageRejected("wrong_topic", f"topic {_show(topic)} does not start with {head!r}")
    parts = topic[len(head) :].split("/")
    if len(parts) != 3:
        raise MessageRejected(
            "wrong_topic",
            f"topic {_show(topic)}: expected <site>/<device_id>/<kind> after {head!r}, "
            f"found {len(parts)} part(s)",
        )
    site, device_id, kind = parts
    for label, value in (("site", site), ("device id", device_id)):
        if not _IDENT.match(value):
            raise MessageRejected(
                "wrong_topic",
                f"topic {_show(topic)}: the {label} segment {value[:_SHOW]!r} is not a valid identifier "
                f"(letters, digits and ._:- , at most 64 characters, starting with a letter or digit)",
            )
    if kind not in TOPIC_KINDS:
        raise MessageRejected(
            "wrong_topic",
            f"topic {_show(topic)} ends in {kind[:_SHOW]!r}; expected one of {', '.join(TOPIC_KINDS)}",
        )
    return DeviceTopic(prefix, site, device_id, kind)  # type: ignore[arg-type]  # checked just above


def subscription_filter(
    *, prefix: str = DEFAULT_PREFIX, kind: TopicKind | None = None, shared_group: str | None = None
) -> str:
    """Return the topic filter a hub service subscribes to.

    Args:
        prefix: the topic prefix from settings.
        kind: only this kind of traffic; ``None`` subscribes to everything under
            the prefix (ingest does, so that a message on a wrongly shaped topic
            is dead-lettered instead of never being delivered to anyone).
        shared_group: subscribe as a member of an MQTT shared subscription
            (``$share/<group>/...``) so that several workers split the traffic.

    Raises:
        ConfigError: the prefix or group name is not allowed.

    >>> subscription_filter()
    'pumpops/v1/#'
    >>> subscription_filter(kind="telemetry", shared_group="ingest")
    '$share/ingest/pumpops/v1/+/+/telemetry'
    """
    _check_prefix(prefix)
    body = f"{prefix}/#" if kind is None else f"{prefix}/+/+/{kind}"
    if shared_group is None:
        return body
    if not _SHARE_GROUP.match(shared_group):
        raise ConfigError(f"shared subscription group {shared_group!r} must be 1-64 of letters, digits, ._-")
    return f"$share/{shared_group}/{body}"
