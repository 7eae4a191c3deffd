"""The agent message envelope as the device writes it, without pydantic.

The contract is :mod:`pumpops.schema`'s (``AgentMessage``, ``encode_agent_message``,
``with_msg_id``, ``TOPIC_OF_KIND``; the raw-readings schema id ``SCHEMA_ID``);
the hub decodes with it. Its pydantic model costs the device process ~10 MiB, so
the agent writes the same bytes here with ``json``: the same keys in the same
order, compact, NaN refused. ``tests/edge/test_envelope.py`` holds that the bytes
are identical to ``encode_agent_message``'s and that the hub's decoder accepts them.
May import: the stdlib.
"""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = ["AGENT_SCHEMA", "RAW_SCHEMA_ID", "TOPIC_OF_KIND", "encode_envelope", "with_msg_id"]

AGENT_SCHEMA: Final = "pumpops.agent/1"
#: Raw readings' schema id (``pumpops.schema.SCHEMA_ID``).
RAW_SCHEMA_ID: Final = "pumpops.telemetry/1"
#: The topic kind each message kind is published on (``pumpops.schema.TOPIC_OF_KIND``).
TOPIC_OF_KIND: Final[dict[str, str]] = {
    "alarm": "alarms",
    "summary": "summaries",
    "drift": "drift",
    "state": "state",
}


def encode_envelope(
    *,
    device_id: str,
    site: str,
    kind: str,
    ts_ms: int,
    agent_version: str,
    body: dict[str, Any],
    msg_id: str = "",
) -> bytes:
    """The envelope's compact JSON bytes (``msg_id`` empty until the outbox numbers it).

    Raises:
        ValueError: the body holds NaN or an infinity (JSON has none).

    >>> m = dict(device_id="p-1", site="s1", kind="state", ts_ms=5, agent_version="0.1.0", body={})
    >>> encode_envelope(**m)[:45]
    b'{"schema":"pumpops.agent/1","msg_id":"","devi'
    """
    if kind not in TOPIC_OF_KIND:
        raise ValueError(f"unknown agent message kind {kind!r}")
    doc = {
        "schema": AGENT_SCHEMA,
        "msg_id": msg_id,
        "device_id": device_id,
        "site": site,
        "kind": kind,
        "ts_ms": int(ts_ms),
        "agent_version": agent_version,
        "body": body,
    }
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


def with_msg_id(payload: bytes, msg_id: str) -> bytes:
    """The stored envelope with the outbox's message id filled in (done when forwarding)."""
    doc = json.loads(payload)
    doc["msg_id"] = msg_id
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
