"""Property tests: whatever arrives, decode() and the ingest path neither raise nor lose it.

Payloads are arbitrary bytes, arbitrary JSON, and valid messages mutated in
every field; topics are valid, foreign or arbitrary. For each: exactly one of
ignored / rejected whole / stored (with or without a dead letter listing the
rejected readings), and the counts add up.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pumpops.fleet import load_profiles
from pumpops.schema import CANONICAL_SENSORS
from pumpops.settings import IngestSettings
from pumpops.telemetry import READING_REASONS, WHOLE_MESSAGE_REASONS, BrokerAddress, IngestService, decode

from .conftest import FLEET, make_msg, now_ms
from .fakes import MemoryStore
from .test_codec import LIMITS

PROFILES = load_profiles()
LOOKUP = {d.device_id: d for d in FLEET}.get
NOW_MS = now_ms()
UNITS = [
    "psi",
    "bar",
    "kPa",
    "Pa",
    "degC",
    "degF",
    "K",
    "g",
    "gn",
    "rpm",
    "A",
    "V",
    "kW",
    "m**3/hour",
    "L/min",
]

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
    max_leaves=20,
)
cells = (
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e12, -1e12, 0.0])
    | st.none()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(min_value=-1e6, max_value=1e6)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | json_scalars
)


def _topic(data: st.DataObject, device_id: str, site: str) -> str:
    """Mostly the device's own telemetry topic; sometimes a sibling kind, a wrong one, or any text."""
    roll = data.draw(st.integers(0, 19), label="topic kind")
    if roll < 14:
        return f"pumpops/v1/{site}/{device_id}/telemetry"
    if roll < 18:
        return data.draw(
            st.sampled_from(
                [
                    f"pumpops/v1/{site}/{device_id}/alarms",
                    f"pumpops/v1/site-z/{device_id}/telemetry",
                    f"pumpops/v1/{site}/nord-1/telemetry",
                    "pumpops/v1/x/telemetry",
                ]
            ),
            label="topic",
        )
    return data.draw(st.text(max_size=40), label="topic")


def _len(value: object) -> int:
    return len(value) if isinstance(value, list) else 0


def _mutate(data: st.DataObject, obj: dict[str, Any]) -> None:
    """Apply a few random mutations to a valid message object."""
    for _ in range(data.draw(st.integers(0, 4), label="n mutations")):
        rows, cols = _len(obj.get("values")), _len(obj.get("sensors"))
        kind = data.draw(
            st.sampled_from(
                ["drop", "set", "cell", "ts", "name", "unit", "drop_row", "dup_row", "swap", "ts_all"]
            )
        )
        if kind == "drop" and obj:
            obj.pop(data.draw(st.sampled_from(sorted(obj))))
        elif kind == "set":
            key = data.draw(
                st.sampled_from(["schema", "msg_id", "device_id", "sent_at_ms", "sensors", "ts_ms", "extra"])
            )
            obj[key] = data.draw(json_values)
        elif kind == "cell" and rows and cols and isinstance(obj.get("values"), list):
            i, j = data.draw(st.integers(0, rows - 1)), data.draw(st.integers(0, cols - 1))
            if isinstance(obj["values"][i], list) and j < len(obj["values"][i]):
                obj["values"][i][j] = data.draw(cells)
        elif kind == "ts" and isinstance(obj.get("ts_ms"), list) and obj["ts_ms"]:
            i = data.draw(st.integers(0, len(obj["ts_ms"]) - 1))
            obj["ts_ms"][i] = data.draw(
                st.integers(-(2**70), 2**70) | st.integers(NOW_MS - 10**10, NOW_MS + 10**10) | json_scalars
            )
        elif kind == "ts_all" and isinstance(obj.get("ts_ms"), list):
            obj["ts_ms"] = (
                sorted(obj["ts_ms"], reverse=data.draw(st.booleans()))
                if all(isinstance(t, int) for t in obj["ts_ms"])
                else obj["ts_ms"]
            )
        elif kind in ("name", "unit") and cols and isinstance(obj.get("sensors"), list):
            j = data.draw(st.integers(0, cols - 1))
            if isinstance(obj["sensors"][j], dict):
                field = "name" if kind == "name" else "unit"
                pool = list(CANONICAL_SENSORS) if kind == "name" else UNITS
                obj["sensors"][j][field] = data.draw(st.sampled_from(pool) | st.text(max_size=40))
        elif kind == "drop_row" and rows and isinstance(obj.get("values"), list):
            obj["values"].pop(data.draw(st.integers(0, rows - 1)))
        elif (
            kind == "dup_row"
            and rows
            and isinstance(obj.get("values"), list)
            and isinstance(obj.get("ts_ms"), list)
        ):
            i = data.draw(st.integers(0, rows - 1))
            obj["values"].insert(i, list(obj["values"][i]) if isinstance(obj["values"][i], list) else [])
            if i < len(obj["ts_ms"]):
                obj["ts_ms"].insert(i, obj["ts_ms"][i])
        elif kind == "swap" and rows > 1 and isinstance(obj.get("ts_ms"), list) and len(obj["ts_ms"]) > 1:
            obj["ts_ms"][0], obj["ts_ms"][1] = obj["ts_ms"][1], obj["ts_ms"][0]


@st.composite
def messages(draw: st.DrawFn) -> tuple[str, bytes]:
    """(topic, payload) drawn from arbitrary bytes, arbitrary JSON, or a mutated valid message."""
    data = draw(st.data())
    device = draw(st.sampled_from(FLEET))
    topic = _topic(data, device.device_id, device.site)
    source = draw(st.sampled_from(["bytes", "json"] + ["mutated"] * 6))
    if source == "bytes":
        return topic, draw(st.binary(max_size=300))
    if source == "json":
        return topic, json.dumps(draw(json_values), allow_nan=True).encode()
    msg = make_msg(
        device, rows=draw(st.integers(1, 6)), start_ms=NOW_MS - 120_000, seed=draw(st.integers(0, 9))
    )
    obj = json.loads(msg.payload())
    _mutate(data, obj)
    try:
        payload = json.dumps(obj, allow_nan=True).encode()
    except (ValueError, OverflowError):
        payload = b"{}"
    if draw(st.integers(0, 9)) == 0:
        payload = payload[: draw(st.integers(0, len(payload)))]
    return topic, payload


def check_decision(topic: str, payload: bytes) -> None:
    result = decode(
        topic, payload, device_lookup=LOOKUP, profiles=PROFILES, now_us=NOW_MS * 1000, limits=LIMITS
    )
    event("ignored" if result.ignored else f"{'stored' if result.batch else 'rejected'}: {result.reason}")
    outcomes = [result.ignored, result.rejected_whole, result.batch is not None]
    assert sum(outcomes) == 1, result
    assert len(result.dead_letters) <= 1
    if result.ignored:
        assert result.dead_letters == ()
        return
    if result.rejected_whole:
        letter = result.dead_letters[0]
        assert letter.reason in WHOLE_MESSAGE_REASONS or letter.reason in READING_REASONS
        assert letter.detail
        assert letter.payload == payload[: LIMITS.max_payload_bytes]
        return
    batch = result.batch
    assert batch is not None
    assert batch.n_readings + result.readings_rejected == result.readings_in
    assert bool(result.dead_letters) == (result.readings_rejected > 0)
    if result.dead_letters:
        assert result.dead_letters[0].reason in READING_REASONS
    assert batch.values.shape == (batch.ts_us.shape[0], len(batch.sensors))
    assert len(set(batch.sensors)) == len(batch.sensors)
    assert batch.ts_us.dtype == np.int64
    assert np.all(np.diff(batch.ts_us) > 0)
    assert np.all(batch.ts_us <= (NOW_MS + LIMITS.max_future_skew_s * 1000) * 1000)
    finite = ~np.isnan(batch.values)
    assert np.all(np.isfinite(batch.values[finite]))
    for j, name in enumerate(batch.sensors):
        sensor = CANONICAL_SENSORS[name]
        column = batch.values[finite[:, j], j]
        assert np.all((column >= sensor.minimum) & (column <= sensor.maximum))


@settings(max_examples=400, deadline=None)
@given(messages())
def test_decode_any_input_is_stored_or_dead_lettered(message: tuple[str, bytes]) -> None:
    check_decision(*message)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.text(max_size=80))
def test_decode_arbitrary_bytes_never_raise(payload: bytes, topic: str) -> None:
    check_decision(topic, payload)
    check_decision("pumpops/v1/site-a/acme-1/telemetry", payload)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages(), min_size=1, max_size=8))
def test_ingest_path_counts_add_up(batch: list[tuple[str, bytes]]) -> None:
    store = MemoryStore(FLEET)
    settings_ = IngestSettings(client_id="prop", max_past_age_s=LIMITS.max_past_age_s, batch_max_messages=3)
    service = IngestService(
        store, BrokerAddress("127.0.0.1", 9), settings=settings_, now_us=lambda: NOW_MS * 1000
    )
    stats = service.process(batch)
    assert stats.received == stats.committed == len(batch)
    ends = (
        stats.stored_messages
        + stats.agent_messages
        + stats.duplicates
        + stats.id_conflicts
        + stats.rejected_messages
        + stats.ignored
    )
    assert ends == len(batch)
    assert len(store.messages) == stats.stored_messages
    assert len(store.readings) == stats.stored_readings
    assert stats.dead_letters == len(store.letters)
    assert stats.dead_letters >= stats.rejected_messages + stats.id_conflicts + stats.partially_rejected
    assert stats.acked == 0  # process() is not a broker session: nothing to acknowledge
