"""MQTT topics and the wire codec, the publisher, the ingest service (broker to store), the embedded broker.

May import: schema, fleet, store, sources, settings, errors, paho-mqtt, amqtt, orjson, and
``pumpops.edge._messages`` (the agent envelope codec, edge-safe; loaded on first use).

- :func:`build_topic` / :func:`parse_topic`: ``<prefix>/<site>/<device_id>/<kind>``.
- :func:`encode_message` / :func:`decode`: the JSON message; ``decode`` is a pure
  decision (what to store in SI units, what to dead-letter and why).
- :class:`Publisher`: frames of any source → QoS 1 messages with deterministic ids.
- :class:`IngestService`: broker → store, acknowledging after commit; telemetry
  and the agents' messages (``alarms``, ``summaries``, ``drift``, ``state``,
  stored once per message id).
- :class:`EmbeddedBroker`: amqtt in a background thread, for machines with no broker.

``docs/protocol.md`` describes the protocol; ``telemetry.schema.json`` (next
to this file, see :func:`schema_path`) is its JSON Schema.
"""

from importlib import resources
from pathlib import Path

from pumpops.telemetry._broker import EMBEDDED, BrokerAddress, EmbeddedBroker, parse_broker_url
from pumpops.telemetry._codec import (
    READING_REASONS,
    WHOLE_MESSAGE_REASONS,
    DecodeLimits,
    DecodeResult,
    decode,
    encode_frame,
    encode_message,
    telemetry_json_schema,
)
from pumpops.telemetry._ingest import (
    Backoff,
    BatchPolicy,
    DeviceCache,
    IngestService,
    IngestStats,
    backoff_delay,
    run_until_stopped,
)
from pumpops.telemetry._publisher import Pacer, Publisher, PublishStats, chunk_frame, message_id, parse_speed
from pumpops.telemetry._topics import (
    AGENT_TOPIC_KINDS,
    DEFAULT_PREFIX,
    TOPIC_KINDS,
    DeviceTopic,
    TopicKind,
    build_topic,
    parse_topic,
    subscription_filter,
)


def schema_path() -> Path:
    """The shipped JSON Schema of the telemetry message."""
    return Path(str(resources.files("pumpops.telemetry") / "telemetry.schema.json"))


__all__ = [
    "AGENT_TOPIC_KINDS",
    "DEFAULT_PREFIX",
    "EMBEDDED",
    "READING_REASONS",
    "TOPIC_KINDS",
    "WHOLE_MESSAGE_REASONS",
    "Backoff",
    "BatchPolicy",
    "BrokerAddress",
    "DecodeLimits",
    "DecodeResult",
    "DeviceCache",
    "DeviceTopic",
    "EmbeddedBroker",
    "IngestService",
    "IngestStats",
    "Pacer",
    "PublishStats",
    "Publisher",
    "TopicKind",
    "backoff_delay",
    "build_topic",
    "chunk_frame",
    "decode",
    "encode_frame",
    "encode_message",
    "message_id",
    "parse_broker_url",
    "parse_speed",
    "parse_topic",
    "run_until_stopped",
    "schema_path",
    "subscription_filter",
    "telemetry_json_schema",
]
