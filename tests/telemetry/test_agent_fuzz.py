"""Property tests of the agent message decoders: any bytes → a message or a reasoned rejection, never a crash.

Issue 13, row 12: a body nested 900+ deep became an ``internal_error`` dead
letter with a traceback. Here arbitrary bytes, arbitrary JSON in every field
of a valid envelope, deep nesting and byte-level mutations of valid messages
go through :func:`pumpops.schema.decode_agent_message` (which must return an
:class:`~pumpops.schema.AgentMessage` or raise
:class:`~pumpops.errors.MessageRejected`, nothing else) and through the hub's
:func:`decode_agent` (which must never raise, and give exactly one of a
record or a dead letter with a documented reason).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from pumpops.errors import MessageRejected
from pumpops.fleet import load_profiles
from pumpops.schema import AgentMessage, decode_agent_message
from pumpops.telemetry import WHOLE_MESSAGE_REASONS, decode
from pumpops.telemetry._agent import AGENT_REASONS, decode_agent

from .conftest import FLEET

NOW_US = 1_767_225_600_000_000
TOPIC = "pumpops/v1/site-a/p-1/alarms"
VALID: dict[str, Any] = {
    "schema": "pumpops.agent/1",
    "msg_id": "p-1:7",
    "device_id": "p-1",
    "site": "site-a",
    "kind": "alarm",
    "ts_ms": NOW_US // 1000 - 1000,
    "agent_version": "0.1.0",
    "body": {"event": "raised", "alarm_id": "p-1-a7", "scores": [0.5, 0.75]},
}
VALID_BYTES = json.dumps(VALID).encode()

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=25,
)
topics = st.sampled_from(
    [TOPIC, "pumpops/v1/site-a/p-1/state", "pumpops/v1/site-b/p-1/alarms", "pumpops/v1/site-a/p-2/alarms"]
)


def _nested(depth: int, opener: str) -> str:
    """A JSON value ``depth`` levels deep: arrays (``[``) or objects (``{"a":``)."""
    closer = "]" if opener == "[" else "}"
    return opener * depth + "1" + closer * depth


def _check_envelope_codec(payload: bytes) -> str:
    try:
        message = decode_agent_message(payload, topic_kind="alarms")
    except MessageRejected as exc:
        rejected = exc
    else:
        assert isinstance(message, AgentMessage)
        return "decoded"
    assert rejected.reason in AGENT_REASONS, rejected.reason
    assert rejected.detail
    return rejected.reason


def _check_hub(topic: str, payload: bytes) -> str:
    result = decode_agent(topic, payload, now_us=NOW_US)
    assert (result.record is None) != (result.dead_letter is None)
    if result.dead_letter is not None:
        assert result.dead_letter.reason in AGENT_REASONS, result.dead_letter.reason
        assert result.dead_letter.reason != "internal_error"
        assert result.dead_letter.payload == payload[: 256 * 1024]
        return result.dead_letter.reason
    assert result.record is not None
    assert result.record.device_id == topic.split("/")[3]  # bound to the topic's identity
    assert result.record.ts_us <= NOW_US + 300 * 1_000_000
    return "stored"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.binary(max_size=2048), topic=topics)
@example(payload=b"[" * 100_000, topic=TOPIC)
@example(payload=b'{"body":' + b'{"a":' * 900 + b"1" + b"}" * 901, topic=TOPIC)
@example(payload=b"\xff\xfe\x00", topic=TOPIC)
@example(payload=b'"\\ud800"', topic=TOPIC)
def test_agent_decoders_any_bytes_decode_or_reject(payload: bytes, topic: str) -> None:
    event(_check_envelope_codec(payload))
    event(_check_hub(topic, payload))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(sorted(VALID)), value=json_values, topic=topics)
def test_agent_decoders_any_json_in_any_field_decode_or_reject(field: str, value: Any, topic: str) -> None:
    doc = {**VALID, field: value}
    payload = json.dumps(doc, allow_nan=True).encode()
    event(_check_envelope_codec(payload))
    event(_check_hub(topic, payload))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    cuts=st.lists(st.tuples(st.integers(0, len(VALID_BYTES) - 1), st.binary(max_size=4)), max_size=4),
    topic=topics,
)
def test_agent_decoders_mutated_valid_messages_decode_or_reject(
    cuts: list[tuple[int, bytes]], topic: str
) -> None:
    payload = bytearray(VALID_BYTES)
    for at, insert in cuts:
        payload[at : at + len(insert)] = insert
    event(_check_envelope_codec(bytes(payload)))
    event(_check_hub(topic, bytes(payload)))


@pytest.mark.parametrize("opener", ["[", '{"a":'])
@pytest.mark.parametrize("depth", [30, 31, 900, 5_000, 60_000])
def test_agent_deep_nesting_is_too_deep_or_too_large_never_internal(depth: int, opener: str) -> None:
    body = '{"x":' + _nested(depth, opener) + "}"
    payload = json.dumps(VALID).replace(json.dumps(VALID["body"]), body).encode()
    reason = _check_hub(TOPIC, payload)
    if len(payload) > 256 * 1024:
        assert reason == "too_large"
    elif depth + 2 > 32:  # the envelope is level 1, the body 2, its "x" value 3 and down
        assert reason == "too_deep"
    else:
        assert reason == "stored"


@pytest.mark.parametrize("depth", [900, 60_000])
def test_telemetry_deep_nesting_is_bad_input_never_internal(depth: int) -> None:
    device = FLEET[0]
    payload = (
        '{"schema":"pumpops.telemetry/1","msg_id":"m-1","device_id":"acme-1","sensors":'
        + _nested(depth, "[")
        + ',"ts_ms":[1],"values":[[1]]}'
    ).encode()
    result = decode(
        f"pumpops/v1/{device.site}/{device.device_id}/telemetry",
        payload,
        device_lookup={device.device_id: device}.get,
        profiles=load_profiles(),
        now_us=NOW_US,
    )
    assert result.batch is None
    assert result.reason in WHOLE_MESSAGE_REASONS
