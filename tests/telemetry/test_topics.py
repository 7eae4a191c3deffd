"""Topic names: built from valid parts only, parsed into parts or a ``wrong_topic`` rejection."""

from __future__ import annotations

import pytest

from pumpops.errors import ConfigError, MessageRejected
from pumpops.telemetry import TOPIC_KINDS, DeviceTopic, build_topic, parse_topic, subscription_filter


@pytest.mark.parametrize("kind", TOPIC_KINDS)
def test_topic_build_then_parse_round_trips(kind: str) -> None:
    topic = build_topic("north-sea-7", "p-0001", kind, prefix="test-x/v1")  # type: ignore[arg-type]
    assert parse_topic(topic, prefix="test-x/v1") == DeviceTopic("test-x/v1", "north-sea-7", "p-0001", kind)  # type: ignore[arg-type]
    assert str(parse_topic(topic, prefix="test-x/v1")) == topic


@pytest.mark.parametrize(
    ("site", "device", "kind", "prefix"),
    [
        ("site a", "p-1", "telemetry", "pumpops/v1"),
        ("s", "p/1", "telemetry", "pumpops/v1"),
        ("s", "+", "telemetry", "pumpops/v1"),
        ("s", "p-1", "logs", "pumpops/v1"),
        ("s", "p-1", "telemetry", "pumpops/v1/"),
        ("s", "p-1", "telemetry", "pump#ops"),
        ("", "p-1", "telemetry", "pumpops/v1"),
    ],
)
def test_topic_build_refuses_invalid_parts(site: str, device: str, kind: str, prefix: str) -> None:
    with pytest.raises(ConfigError):
        build_topic(site, device, kind, prefix=prefix)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("topic", "says"),
    [
        ("pumpops/v1/p-1/telemetry", "found 2 part(s)"),
        ("pumpops/v1/s/p-1/telemetry/extra", "found 4 part(s)"),
        ("pumpops/v1/s//telemetry", "device id segment ''"),
        ("pumpops/v1/s/p-1/metrics", "ends in 'metrics'"),
        ("pumpops/v2/s/p-1/telemetry", "does not start with 'pumpops/v1/'"),
        ("pumpops/v1", "does not start with"),
        ("", "does not start with"),
        ("pumpops/v1/-s/p-1/telemetry", "site segment '-s'"),
        ("pumpops/v1/s/" + "x" * 65 + "/telemetry", "device id segment"),
    ],
)
def test_topic_parse_wrong_shape_is_rejected_with_reason(topic: str, says: str) -> None:
    with pytest.raises(MessageRejected) as info:
        parse_topic(topic)
    assert info.value.reason == "wrong_topic"
    assert says in info.value.detail


def test_topic_parse_cuts_long_topics_in_details() -> None:
    with pytest.raises(MessageRejected) as info:
        parse_topic("x" * 10_000)
    assert len(info.value.detail) < 300


def test_subscription_filter_shapes() -> None:
    assert subscription_filter(prefix="a/v1") == "a/v1/#"
    assert subscription_filter(prefix="a/v1", kind="alarms") == "a/v1/+/+/alarms"
    assert subscription_filter(prefix="a/v1", shared_group="g1") == "$share/g1/a/v1/#"
    with pytest.raises(ConfigError):
        subscription_filter(shared_group="bad/group")
