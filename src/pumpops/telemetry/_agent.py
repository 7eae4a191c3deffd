"""The hub's side of the agent messages: an MQTT message on an agent topic → an :class:`AgentRecord`.

A pure decision, like :func:`~pumpops.telemetry.decode` for telemetry: topic and
payload bytes in; the record to store, or the dead letter saying why not, out.
The envelope (``pumpops.agent/1``) is checked by the agent's own codec,
:func:`pumpops.schema.decode_agent_message`, so hub and agent agree on
one definition; this module adds what only the hub can check: the envelope's
device is the topic's (the broker's access rules let an identity publish only on
its own device's topics, so the topic names the sender: anything else is
``wrong_identity``), the site is the topic's, the message id is exactly
``<device_id>:<seq>``, the time is not further ahead of the hub's clock than
telemetry's ``ingest.max_future_skew_s``, and the body is JSON (no NaN). The
body is kept as it came; the payload hash covers the envelope's canonical JSON,
so a resend is recognised whatever key order or spacing it was serialised with.
How far a sequence number may jump past the device's stored maximum is judged
by the store, in the transaction that stores it (``seq_jump``).
May import: ``pumpops.schema`` (the agent message envelope),
store (the record type), schema, errors, the telemetry topics and codec limits.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final

from pumpops.errors import MessageRejected
from pumpops.schema import DeadLetter
from pumpops.store import AgentRecord
from pumpops.telemetry._codec import DecodeLimits
from pumpops.telemetry._topics import (
    AGENT_TOPIC_KINDS,
    DEFAULT_PREFIX,
    DeviceTopic,
    is_hub_topic,
    parse_topic,
)

__all__ = ["AGENT_REASONS", "AgentDecodeResult", "agent_topic", "decode_agent"]

#: Reason codes of dead letters for agent messages (``msg_id_conflict`` and ``seq_jump`` are given
#: by the store).
AGENT_REASONS: Final = (
    "too_large",
    "too_deep",
    "malformed_json",
    "invalid_field",
    "missing_msg_id",
    "wrong_topic",
    "wrong_identity",
    "future_timestamp",
    "msg_id_conflict",
    "seq_jump",
    "store_refused",
)
# The envelope codec's size limit (MAX_AGENT_MESSAGE_BYTES); a dead letter keeps at most this much.
_MAX_KEPT_BYTES: Final = 256 * 1024
_MAX_SEQ: Final = 2**63 - 1
_DEFAULT_LIMITS: Final = DecodeLimits()


@dataclass(frozen=True, slots=True)
class AgentDecodeResult:
    """What :func:`decode_agent` decided: exactly one of ``record`` and ``dead_letter`` is set.

    Attributes:
        topic: the topic it arrived on.
        record: the message to store.
        dead_letter: why it was rejected, with the raw payload.
    """

    topic: str
    record: AgentRecord | None = None
    dead_letter: DeadLetter | None = None


def agent_topic(topic: str, *, prefix: str = DEFAULT_PREFIX) -> DeviceTopic | None:
    """The parsed topic if it is a well-formed agent topic (``alarms``, ``summaries``, ``drift``, ``state``).

    >>> agent_topic("pumpops/v1/s1/p-1/summaries").kind
    'summaries'
    >>> agent_topic("pumpops/v1/s1/p-1/telemetry") is None, agent_topic("pumpops/v1/x/alarms") is None
    (True, True)
    """
    if topic.rsplit("/", 1)[-1] not in AGENT_TOPIC_KINDS or is_hub_topic(topic, prefix=prefix):
        return None
    try:
        where = parse_topic(topic, prefix=prefix)
    except MessageRejected:
        return None  # a wrongly shaped topic: the telemetry decoder dead-letters it
    return where if where.kind in AGENT_TOPIC_KINDS else None


def canonical_sha256(doc: dict[str, Any]) -> str:
    """SHA-256 of a JSON object's canonical form (sorted keys, no spaces, no NaN).

    >>> canonical_sha256({"b": 1, "a": [1.5, None]}) == canonical_sha256({"a": [1.5, None], "b": 1})
    True
    """
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def decode_agent(
    topic: str,
    payload: bytes,
    *,
    now_us: int,
    prefix: str = DEFAULT_PREFIX,
    limits: DecodeLimits = _DEFAULT_LIMITS,
) -> AgentDecodeResult:
    """Check one agent message as the hub receives it; never raises for any topic or payload.

    Args:
        topic: the MQTT topic, an agent topic (see :func:`agent_topic`).
        payload: the raw bytes.
        now_us: the hub's clock (the record's ``received_at_us``).
        prefix: the topic prefix.
        limits: telemetry's limits; agent messages share ``max_future_skew_s``.

    Returns:
        The record to store, or the dead letter (reasons in :data:`AGENT_REASONS`).

    >>> env = {"schema": "pumpops.agent/1", "msg_id": "p-1:7", "device_id": "p-1", "site": "s1",
    ...        "kind": "alarm", "ts_ms": 1000, "agent_version": "0.1.0", "body": {"event": "raised"}}
    >>> ok = decode_agent("pumpops/v1/s1/p-1/alarms", json.dumps(env).encode(), now_us=5)
    >>> ok.record.msg_id, ok.record.seq, ok.record.ts_us, ok.record.body_json
    ('p-1:7', 7, 1000000, '{"event":"raised"}')
    >>> decode_agent("pumpops/v1/s2/p-1/alarms", json.dumps(env).encode(), now_us=5).dead_letter.reason
    'wrong_topic'
    >>> decode_agent("pumpops/v1/s1/p-2/alarms", json.dumps(env).encode(), now_us=5).dead_letter.reason
    'wrong_identity'
    """
    from pumpops.schema import decode_agent_message  # noqa: PLC0415 - loads the envelope codec once, on first use

    where = agent_topic(topic, prefix=prefix)
    try:
        if where is None:
            raise MessageRejected(
                "wrong_topic",
                f"{topic[:120]!r} is not <prefix>/<site>/<device_id>/<alarms|summaries|drift|state>",
            )
        message = decode_agent_message(payload, topic_kind=where.kind)
        if message.device_id != where.device_id:
            raise MessageRejected(
                "wrong_identity",
                f"the message speaks for device {message.device_id!r} but was published on the topic "
                f"of device {where.device_id!r}, which only that device's identity may publish on; a "
                "device speaks only for itself (check which credentials this device was given)",
            )
        if message.site != where.site:
            raise MessageRejected(
                "wrong_topic",
                f"the message is from device {message.device_id!r} at site {message.site!r} but arrived "
                f"on the topic of site {where.site!r}; fix the device's site in its agent.toml or its "
                "registration",
            )
        _check_time(message.ts_ms, now_us, limits)
        seq = message.msg_id[len(message.device_id) + 1 :]
        if not seq.isdigit() or int(seq) > _MAX_SEQ:
            raise MessageRejected(
                "invalid_field",
                f"msg_id {message.msg_id!r} must be '<device_id>:<seq>', seq an integer from 0 to {_MAX_SEQ}",
            )
        envelope = message.model_dump(mode="json", by_alias=True)
        try:
            body_json = json.dumps(message.body, separators=(",", ":"), allow_nan=False)
            digest = canonical_sha256(envelope)
        except ValueError:
            raise MessageRejected("invalid_field", "body holds NaN or Infinity, which JSON has not") from None
    except MessageRejected as exc:
        return AgentDecodeResult(topic, dead_letter=_letter(topic, payload, now_us, where, exc))
    record = AgentRecord(
        msg_id=message.msg_id,
        device_id=message.device_id,
        site=message.site,
        kind=message.kind,
        # A last will (status offline) was written at connect time; it is true when the broker sends it.
        ts_us=now_us if _last_will(message.kind, message.body) else message.ts_ms * 1000,
        agent_version=message.agent_version,
        body_json=body_json,
        payload_sha256=digest,
        received_at_us=now_us,
        topic=topic,
        payload=payload,
    )
    return AgentDecodeResult(topic, record=record)


def _last_will(kind: str, body: dict[str, Any]) -> bool:
    """An agent's MQTT last will (``pumpops.edge``): dated by its arrival, not by its connect-time stamp."""
    return kind == "state" and body.get("last_will") is True


def _check_time(ts_ms: int, now_us: int, limits: DecodeLimits) -> None:
    """Refuse a message time further ahead of the hub's clock than telemetry's readings may be."""
    now_ms = now_us // 1000
    ahead_ms = ts_ms - now_ms
    if ahead_ms > limits.max_future_skew_s * 1000:
        raise MessageRejected(
            "future_timestamp",
            f"ts_ms {ts_ms} is {ahead_ms / 1000:.0f} s ahead of the hub's clock ({now_ms}); at most "
            f"{limits.max_future_skew_s:g} s are allowed (ingest.max_future_skew_s, as for telemetry) "
            "— check the device's clock (NTP)",
        )


def _letter(
    topic: str, payload: bytes, now_us: int, where: DeviceTopic | None, exc: MessageRejected
) -> DeadLetter:
    msg_id: str | None = None
    if len(payload) <= _MAX_KEPT_BYTES:
        try:  # best effort, for the operator reading the dead letter
            found = json.loads(payload).get("msg_id")
            if isinstance(found, str) and 0 < len(found) <= 128:
                msg_id = found
        except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
            pass
    return DeadLetter(
        topic=topic,
        payload=payload[:_MAX_KEPT_BYTES],
        reason=exc.reason,
        detail=exc.detail,
        received_at_us=now_us,
        device_id=None if where is None else where.device_id,
        msg_id=msg_id,
    )
