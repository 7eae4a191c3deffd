"""What the agent tells the hub: one JSON envelope for alarms, summaries, drift reports and state.

Every message the agent sends goes through its outbox and carries a message id
``<device_id>:<seq>`` (the outbox's never-reused sequence), so the hub can
store each one once however often the agent has to resend it. The envelope::

    {"schema": "pumpops.agent/1", "msg_id": "p-0001:42", "device_id": "p-0001",
     "site": "north-sea-7", "kind": "alarm", "ts_ms": 1764100000000,
     "agent_version": "0.1.0", "body": {...}}

Topics: ``<prefix>/<site>/<device_id>/<topic kind>`` with the topic kind of
:data:`TOPIC_OF_KIND` (``alarms``, ``summaries``, ``drift``, ``state``). The
bodies are documented in ``docs/protocol.md`` ("Agent messages"); the hub
checks the envelope strictly and keeps the body as it came. It lives in
``schema`` because both ends use it: the agent encodes, hub ingest decodes.
May import: errors, pydantic, the stdlib.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from pumpops.errors import MessageRejected

__all__ = [
    "AGENT_SCHEMA",
    "KIND_OF_TOPIC",
    "MAX_AGENT_MESSAGE_BYTES",
    "TOPIC_OF_KIND",
    "AgentKind",
    "AgentMessage",
    "decode_agent_message",
    "encode_agent_message",
    "with_msg_id",
]

AGENT_SCHEMA: Final = "pumpops.agent/1"
AgentKind = Literal["alarm", "summary", "drift", "state"]

#: The topic kind (last topic segment) each message kind is published on.
TOPIC_OF_KIND: Final[dict[str, str]] = {
    "alarm": "alarms",
    "summary": "summaries",
    "drift": "drift",
    "state": "state",
}
KIND_OF_TOPIC: Final[dict[str, str]] = {v: k for k, v in TOPIC_OF_KIND.items()}

_Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
_MsgId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}:[0-9]{1,19}$")]
#: An agent message larger than this is refused by the hub (the outbox holds compact reports only).
MAX_AGENT_MESSAGE_BYTES: Final = 256 * 1024
#: Objects and arrays nested deeper than this (the envelope is level 1, its body level 2) are
#: refused: the bodies pumpops sends are 4 levels deep at most, and a deeper document only
#: costs the hub stack and time (a 900-deep body once broke the hash with a RecursionError).
MAX_AGENT_DEPTH: Final = 32


class AgentMessage(BaseModel):
    """One message from an agent.

    Attributes:
        schema_: always ``pumpops.agent/1`` (``schema`` in JSON).
        msg_id: ``<device_id>:<seq>``; empty until the outbox numbers it.
        device_id: the sending device.
        site: its site.
        kind: ``alarm``, ``summary``, ``drift`` or ``state``.
        ts_ms: when the agent produced it (ms since the Unix epoch, UTC).
        agent_version: the agent's version.
        body: the kind's content (see ``docs/protocol.md``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_: Literal["pumpops.agent/1"] = Field(default=AGENT_SCHEMA, alias="schema")
    msg_id: _MsgId | Literal[""] = ""
    device_id: _Ident
    site: _Ident
    kind: AgentKind
    ts_ms: int = Field(ge=0, le=2**53)
    agent_version: str = Field(min_length=1, max_length=32)
    body: dict[str, Any]


def encode_agent_message(message: AgentMessage) -> bytes:
    """Compact JSON bytes of a message (NaN and infinities refused: JSON has none).

    >>> m = AgentMessage(device_id="p-1", site="s1", kind="state", ts_ms=5, agent_version="0.1.0", body={})
    >>> encode_agent_message(m)[:45]
    b'{"schema":"pumpops.agent/1","msg_id":"","devi'
    """
    doc = message.model_dump(mode="json", by_alias=True)
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


def with_msg_id(payload: bytes, msg_id: str) -> bytes:
    """The stored envelope with the outbox's message id filled in (done when forwarding).

    >>> m = AgentMessage(device_id="p-1", site="s1", kind="state", ts_ms=5, agent_version="0.1.0", body={})
    >>> decode_agent_message(with_msg_id(encode_agent_message(m), "p-1:7")).msg_id
    'p-1:7'
    """
    doc = json.loads(payload)
    doc["msg_id"] = msg_id
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


def decode_agent_message(payload: bytes, *, topic_kind: str | None = None) -> AgentMessage:
    """Parse and check an agent message as the hub receives it.

    Args:
        payload: the MQTT payload.
        topic_kind: the topic's last segment, when known: it must match the message's kind.

    Raises:
        MessageRejected: ``too_large``, ``too_deep``, ``malformed_json``, ``invalid_field``,
            ``missing_msg_id`` or ``wrong_topic``, with a sentence saying what is wrong.

    >>> decode_agent_message(b'{"body": ' + b"[" * 40 + b"]" * 40 + b"}")
    Traceback (most recent call last):
    ...
    pumpops.errors.MessageRejected: too_deep: objects and arrays are nested more than 32 levels deep; ...
    """
    if len(payload) > MAX_AGENT_MESSAGE_BYTES:
        raise MessageRejected(
            "too_large",
            f"{len(payload)} bytes; agent messages are at most {MAX_AGENT_MESSAGE_BYTES} bytes "
            "(send fewer or smaller reports per message)",
        )
    try:
        doc = json.loads(payload)
    except RecursionError:
        raise _too_deep() from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise MessageRejected("malformed_json", f"the payload is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MessageRejected("malformed_json", "the payload must be a JSON object")
    # fewer brackets than the limit cannot nest deeper than it (a C count, no walk, for usual messages)
    if payload.count(b"{") + payload.count(b"[") > MAX_AGENT_DEPTH and json_depth(doc) > MAX_AGENT_DEPTH:
        raise _too_deep()
    try:
        message = AgentMessage.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise MessageRejected("invalid_field", f"{where}: {first['msg']}") from None
    if not message.msg_id:
        raise MessageRejected("missing_msg_id", "agent messages need a msg_id to be stored once")
    if not message.msg_id.startswith(message.device_id + ":"):
        raise MessageRejected(
            "invalid_field", f"msg_id {message.msg_id!r} does not start with device {message.device_id!r}"
        )
    if topic_kind is not None and KIND_OF_TOPIC.get(topic_kind) != message.kind:
        raise MessageRejected("wrong_topic", f"a {message.kind} message arrived on a {topic_kind!r} topic")
    return message


def _too_deep() -> MessageRejected:
    return MessageRejected(
        "too_deep",
        f"objects and arrays are nested more than {MAX_AGENT_DEPTH} levels deep; agent messages "
        "carry flat reports (see docs/protocol.md, 'Agent messages')",
    )


def json_depth(doc: object) -> int:
    """How deeply objects and arrays nest in a parsed JSON value, without recursion.

    >>> json_depth(1), json_depth({}), json_depth({"a": [1, {"b": []}]})
    (0, 1, 4)
    """
    deepest = 0
    stack: list[tuple[object, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Iterable[object] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest
