"""MQTT topics and the wire codec, the publisher, the ingest service (broker to store), the embedded broker.

May import: schema (the agent envelope among it), fleet, store, sources, settings, errors,
mqtt (every MQTT client here is built by ``pumpops.mqtt``), amqtt, orjson.

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
from typing import TYPE_CHECKING

from pumpops._lazy import lazy_exports

if TYPE_CHECKING:
    from pumpops.telemetry._broker import EMBEDDED, BrokerAddress, EmbeddedBroker, parse_broker_url
    from pumpops.telemetry._codec import (
        READING_REASONS,
        WHOLE_MESSAGE_REASONS,
        DecodeLimits,
        DecodeResult,
        encode_frame,
        encode_message,
        telemetry_json_schema,
    )
    from pumpops.telemetry._decode import decode
    from pumpops.telemetry._ingest import IngestService
    from pumpops.telemetry._ingest_policy import Backoff, BatchPolicy, DeviceCache, IngestStats, backoff_delay
    from pumpops.telemetry._ingest_pool import WorkerPool, worker_client_id
    from pumpops.telemetry._ingest_runner import run_until_stopped, stop_on_signals
    from pumpops.telemetry._publisher import (
        Pacer,
        Publisher,
        PublishStats,
        chunk_frame,
        message_id,
        parse_speed,
    )
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

#: Where each public name lives: loaded on first use, so that ``import pumpops.telemetry``
#: (and ``pumpops --help``, which imports ``pumpops.cli.telemetry``) stays light.
_LAZY: dict[str, str] = {
    "EMBEDDED": "pumpops.telemetry._broker",
    "BrokerAddress": "pumpops.telemetry._broker",
    "EmbeddedBroker": "pumpops.telemetry._broker",
    "parse_broker_url": "pumpops.telemetry._broker",
    "READING_REASONS": "pumpops.telemetry._codec",
    "WHOLE_MESSAGE_REASONS": "pumpops.telemetry._codec",
    "DecodeLimits": "pumpops.telemetry._codec",
    "DecodeResult": "pumpops.telemetry._codec",
    "decode": "pumpops.telemetry._decode",
    "encode_frame": "pumpops.telemetry._codec",
    "encode_message": "pumpops.telemetry._codec",
    "telemetry_json_schema": "pumpops.telemetry._codec",
    "Backoff": "pumpops.telemetry._ingest_policy",
    "BatchPolicy": "pumpops.telemetry._ingest_policy",
    "DeviceCache": "pumpops.telemetry._ingest_policy",
    "IngestService": "pumpops.telemetry._ingest",
    "IngestStats": "pumpops.telemetry._ingest_policy",
    "backoff_delay": "pumpops.telemetry._ingest_policy",
    "WorkerPool": "pumpops.telemetry._ingest_pool",
    "worker_client_id": "pumpops.telemetry._ingest_pool",
    "run_until_stopped": "pumpops.telemetry._ingest_runner",
    "stop_on_signals": "pumpops.telemetry._ingest_runner",
    "Pacer": "pumpops.telemetry._publisher",
    "Publisher": "pumpops.telemetry._publisher",
    "PublishStats": "pumpops.telemetry._publisher",
    "chunk_frame": "pumpops.telemetry._publisher",
    "message_id": "pumpops.telemetry._publisher",
    "parse_speed": "pumpops.telemetry._publisher",
    "AGENT_TOPIC_KINDS": "pumpops.telemetry._topics",
    "DEFAULT_PREFIX": "pumpops.telemetry._topics",
    "TOPIC_KINDS": "pumpops.telemetry._topics",
    "DeviceTopic": "pumpops.telemetry._topics",
    "TopicKind": "pumpops.telemetry._topics",
    "build_topic": "pumpops.telemetry._topics",
    "parse_topic": "pumpops.telemetry._topics",
    "subscription_filter": "pumpops.telemetry._topics",
}


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)


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
    "WorkerPool",
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
    "stop_on_signals",
    "subscription_filter",
    "telemetry_json_schema",
    "worker_client_id",
]
