"""Pins the public API of pumpops.telemetry: a change to this list is a change users see."""

from __future__ import annotations

import pumpops.telemetry

PUBLIC = {
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
}


def test_telemetry_exported_members_are_pinned() -> None:
    assert set(pumpops.telemetry.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(pumpops.telemetry, name), name


def test_telemetry_import_does_not_load_the_broker_or_the_database() -> None:
    import subprocess
    import sys

    code = "import sys, pumpops.telemetry; print('amqtt' in sys.modules, 'sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
