"""The cheap decode path (column plans cached, clean messages judged whole) gives the old path's results.

The reference is the full path as it was before issue 18: every column
resolved afresh for each message and every message judged reading by reading
(``_judge_readings(..., cheap=False)`` with an uncached plan). Hypothesis
draws the same inputs as ``test_properties`` (arbitrary bytes and JSON, valid
messages mutated in every field) plus clean messages of every profile, in
native and in other units of the same dimension.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import pumpops.telemetry._decode as decode_module
import pumpops.telemetry._decode_readings as readings_module
from pumpops.schema import ReadingBatch
from pumpops.telemetry import DecodeResult, decode

from .conftest import FLEET, make_msg
from .test_codec import LIMITS
from .test_properties import LOOKUP, NOW_MS, PROFILES, messages

# other units of each native one, same dimension (the plan's unit maps are exercised beyond the profile's)
_SAME_DIMENSION = {
    "psi": ["bar", "kPa", "Pa"],
    "bar": ["psi", "kPa"],
    "kPa": ["bar", "psi"],
    "degF": ["degC", "K"],
    "degC": ["degF", "K"],
    "gallon/minute": ["L/min", "m**3/hour"],
    "m**3/hour": ["L/min", "gallon/minute"],
    "L/min": ["m**3/hour"],
}


@contextmanager
def old_path() -> Iterator[None]:
    """Decode as before: no plan cache, no whole-message shortcut."""
    with (
        mock.patch.object(decode_module, "column_plan", readings_module._build_plan),
        mock.patch.object(
            decode_module, "_judge_readings", partial(readings_module._judge_readings, cheap=False)
        ),
    ):
        yield


def decode_one(topic: str, payload: bytes) -> DecodeResult:
    return decode(
        topic, payload, device_lookup=LOOKUP, profiles=PROFILES, now_us=NOW_MS * 1000, limits=LIMITS
    )


def _same_batch(a: ReadingBatch | None, b: ReadingBatch | None) -> None:
    if a is None or b is None:
        assert a is b
        return
    for f in dataclasses.fields(ReadingBatch):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype, f.name
            assert x.shape == y.shape, f.name
            assert np.array_equal(x, y, equal_nan=True), f.name
            assert np.array_equal(np.signbit(x), np.signbit(y)), f.name
        else:
            assert x == y, f.name


def assert_same_as_old_path(topic: str, payload: bytes) -> DecodeResult:
    new = decode_one(topic, payload)
    with old_path():
        old = decode_one(topic, payload)
    _same_batch(new.batch, old.batch)
    assert (new.dead_letters, new.readings_in, new.readings_rejected, new.ignored) == (
        old.dead_letters,
        old.readings_in,
        old.readings_rejected,
        old.ignored,
    )
    return new


@settings(max_examples=400, deadline=None)
@given(messages())
def test_cheap_path_equals_old_path_on_any_input(message: tuple[str, bytes]) -> None:
    assert_same_as_old_path(*message)


@st.composite
def clean_messages(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid message, sometimes with a column in another unit or a value moved out of range."""
    device = draw(st.sampled_from(FLEET))
    msg = make_msg(
        device, rows=draw(st.integers(1, 12)), start_ms=NOW_MS - 600_000, seed=draw(st.integers(0, 99))
    )
    obj = json.loads(msg.payload())
    for column in obj["sensors"]:
        others = _SAME_DIMENSION.get(column["unit"], [])
        if others and draw(st.booleans()):
            column["unit"] = draw(st.sampled_from(others))  # values stay: some become out of range
    if draw(st.integers(0, 3)) == 0:
        i = draw(st.integers(0, len(obj["values"]) - 1))
        j = draw(st.integers(0, len(obj["sensors"]) - 1))
        obj["values"][i][j] = draw(
            st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([-0.0, 1e308])
        )
    return msg.topic, json.dumps(obj).encode()


@settings(max_examples=300, deadline=None)
@given(clean_messages())
def test_cheap_path_equals_old_path_on_clean_and_nearly_clean_messages(message: tuple[str, bytes]) -> None:
    assert_same_as_old_path(*message)


def test_a_clean_message_takes_the_cheap_path_and_a_bad_one_the_full_path() -> None:
    """The shortcut is really taken (or the equality above would prove nothing about it)."""
    clean = make_msg(FLEET[0], rows=10, start_ms=NOW_MS - 600_000)
    obj = json.loads(clean.payload())
    obj["values"][3][2] = None  # a sensor not sampled in one row: the full path counts it
    holey = json.dumps(obj).encode()
    seen: list[DecodeResult | None] = []
    real = readings_module._judge_clean

    def spy(*args: object) -> DecodeResult | None:
        seen.append(real(*args))  # type: ignore[arg-type]
        return seen[-1]

    with mock.patch.object(readings_module, "_judge_clean", spy):
        good = assert_same_as_old_path(clean.topic, clean.payload())
        partial_row = assert_same_as_old_path(clean.topic, holey)
    assert seen[0] is not None
    assert seen[1] is None
    assert good.batch is not None
    assert good.readings_in == 10 * len(clean.sensors)
    assert not good.dead_letters
    assert partial_row.readings_in == 10 * len(clean.sensors) - 1


def test_bad_input_is_still_dead_lettered_with_its_reasons() -> None:
    """Out of range, stale and repeated rows: the dead letter names each reason, as before."""
    msg = make_msg(FLEET[1], rows=6, start_ms=NOW_MS - 600_000)
    obj = json.loads(msg.payload())
    obj["values"][0][0] = 1e9  # out of range
    obj["ts_ms"][2] = obj["ts_ms"][1]  # duplicate timestamp
    result = assert_same_as_old_path(msg.topic, json.dumps(obj).encode())
    assert result.batch is not None
    assert len(result.dead_letters) == 1
    detail = result.dead_letters[0].detail
    assert "out_of_range ×1" in detail, detail
    assert "duplicate_timestamp" in detail, detail
    assert result.readings_rejected == 1 + len(msg.sensors)


def test_column_plans_are_cached_per_profile_and_layout() -> None:
    profile = PROFILES["acme-ansi"]
    layout = tuple((s.native, s.unit) for s in profile.sensors)
    first = readings_module.column_plan(profile, layout)
    assert readings_module.column_plan(profile, layout) is first
    other = readings_module.column_plan(profile, layout[:2])
    assert other is not first
    assert other.columns == first.columns[:2]
    assert first.all_known
    assert len(first.sensors) == len(layout)
    unknown = readings_module.column_plan(profile, (*layout[:1], ("nonsense", "psi")))
    assert not unknown.all_known
    assert unknown.columns[1].reason == "unknown_sensor"
