"""decode(): every bad-input case, as a table of named scenarios, plus the good path and encoding."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from pumpops.fleet import Device
from pumpops.schema import CANONICAL_SENSORS
from pumpops.telemetry import (
    READING_REASONS,
    WHOLE_MESSAGE_REASONS,
    DecodeLimits,
    DecodeResult,
    decode,
    encode_message,
    schema_path,
    telemetry_json_schema,
)

from .conftest import FLEET, Msg, make_msg, now_ms

ACME, NORD, SAKURA = FLEET
LIMITS = DecodeLimits(max_payload_bytes=64 * 1024, max_future_skew_s=300, max_past_age_s=30 * 86_400)


def run(topic: str, payload: bytes, *, now: int | None = None, limits: DecodeLimits = LIMITS) -> DecodeResult:
    lookup = {d.device_id: d for d in FLEET}.get
    from pumpops.fleet import load_profiles

    return decode(
        topic,
        payload,
        device_lookup=lookup,
        profiles=load_profiles(),
        now_us=(now if now is not None else now_ms()) * 1000,
        limits=limits,
    )


def run_msg(msg: Msg) -> DecodeResult:
    return run(msg.topic, msg.payload())


# ----------------------------------------------------------------------------- whole-message rejections


def _raw(text: str) -> Callable[[Msg], tuple[str, bytes]]:
    return lambda m: (m.topic, text.encode())


def _edit_json(edit: Callable[[dict], object]) -> Callable[[Msg], tuple[str, bytes]]:
    def make(m: Msg) -> tuple[str, bytes]:
        obj = json.loads(m.payload())
        edit(obj)
        return m.topic, json.dumps(obj).encode()

    return make


@dataclass(frozen=True)
class Whole:
    name: str
    make: Callable[[Msg], tuple[str, bytes]]
    reason: str
    detail: str  # a regular expression the detail must contain


WHOLE = [
    Whole(
        "truncated_json", lambda m: (m.topic, m.payload()[:-7]), "malformed_json", r"not valid JSON.*at byte"
    ),
    Whole("not_utf8", lambda m: (m.topic, b"\xff\xfe" + m.payload()), "malformed_json", "not valid JSON"),
    Whole("empty_payload", lambda m: (m.topic, b""), "malformed_json", "not valid JSON"),
    Whole("json_list", _raw("[1, 2, 3]"), "wrong_schema", "is a JSON list"),
    Whole("json_null", _raw("null"), "wrong_schema", "is a JSON null"),
    Whole("no_schema", _edit_json(lambda o: o.pop("schema")), "wrong_schema", 'no "schema" field'),
    Whole(
        "future_schema",
        _edit_json(lambda o: o.update(schema="pumpops.telemetry/2")),
        "wrong_schema",
        "pumpops.telemetry/2",
    ),
    Whole(
        "missing_msg_id", _edit_json(lambda o: o.pop("msg_id")), "missing_field", "field 'msg_id' is missing"
    ),
    Whole("missing_values", _edit_json(lambda o: o.pop("values")), "missing_field", "'values' is missing"),
    Whole(
        "extra_field",
        _edit_json(lambda o: o.update(battery=0.9)),
        "unexpected_field",
        "'battery' is not part of pumpops.telemetry/1",
    ),
    Whole(
        "string_timestamp",
        _edit_json(lambda o: o["ts_ms"].__setitem__(1, "1735689600000")),
        "invalid_field",
        r"field 'ts_ms\[1\]'.*integer",
    ),
    Whole(
        "string_value",
        _edit_json(lambda o: o["values"][0].__setitem__(2, "12.5")),
        "invalid_field",
        r"'values\[0\]\[2\]'.*number",
    ),
    Whole("bad_msg_id", _edit_json(lambda o: o.update(msg_id="has space")), "invalid_field", "'msg_id'"),
    Whole("empty_sensors", _edit_json(lambda o: o.update(sensors=[])), "invalid_field", "'sensors'"),
    Whole(
        "row_too_short",
        _edit_json(lambda o: o["values"][3].pop()),
        "ragged_values",
        r"row 3 of values has 8 value\(s\) for 9 sensor\(s\)",
    ),
    Whole(
        "rows_fewer_than_ts",
        _edit_json(lambda o: o["values"].pop()),
        "ragged_values",
        r"10 timestamp\(s\) but 9 row\(s\)",
    ),
    Whole(
        "topic_too_short",
        lambda m: ("pumpops/v1/acme-1/telemetry", m.payload()),
        "wrong_topic",
        r"expected <site>/<device_id>/<kind>",
    ),
    Whole(
        "topic_wrong_prefix",
        lambda m: ("pumpops/v2/site-a/acme-1/telemetry", m.payload()),
        "wrong_topic",
        "does not start with 'pumpops/v1/'",
    ),
    Whole(
        "topic_unknown_kind",
        lambda m: ("pumpops/v1/site-a/acme-1/telemetri", m.payload()),
        "wrong_topic",
        "ends in 'telemetri'",
    ),
    Whole(
        "topic_extra_level",
        lambda m: ("pumpops/v1/site-a/acme-1/telemetry/x", m.payload()),
        "wrong_topic",
        r"found 4 part\(s\)",
    ),
    Whole(
        "topic_bad_site",
        lambda m: ("pumpops/v1/site a/acme-1/telemetry", m.payload()),
        "wrong_topic",
        "site segment",
    ),
    Whole(
        "topic_device_differs",
        lambda m: ("pumpops/v1/site-a/acme-2/telemetry", m.payload()),
        "wrong_identity",
        "'acme-1' in the payload differs from 'acme-2' in the topic, which only the identity of device",
    ),
    Whole(
        "unknown_device",
        lambda m: (
            "pumpops/v1/site-a/ghost-9/telemetry",
            m.payload().replace(b'"device_id":"acme-1"', b'"device_id":"ghost-9"'),
        ),
        "unknown_device",
        "'ghost-9' is not registered",
    ),
    Whole(
        "wrong_site",
        lambda m: ("pumpops/v1/site-z/acme-1/telemetry", m.payload()),
        "site_mismatch",
        "registered at site 'site-a' but published under site 'site-z'",
    ),
    Whole(
        "duplicate_column",
        _edit_json(lambda o: o["sensors"].__setitem__(1, dict(o["sensors"][0]))),
        "duplicate_sensor",
        "'SUCT_PRESS' and 'SUCT_PRESS'",
    ),
    Whole(
        "native_and_canonical_column",
        _edit_json(lambda o: o["sensors"].__setitem__(1, {"name": "suction_pressure", "unit": "Pa"})),
        "duplicate_sensor",
        r"both are suction_pressure",
    ),
]


@pytest.mark.parametrize("case", WHOLE, ids=[c.name for c in WHOLE])
def test_decode_rejects_whole_message(case: Whole) -> None:
    topic, payload = case.make(make_msg(ACME))
    result = run(topic, payload)
    assert result.batch is None
    assert result.rejected_whole
    (letter,) = result.dead_letters
    assert letter.reason == case.reason
    assert re.search(case.detail, letter.detail), letter.detail
    assert letter.payload == payload
    assert letter.topic == topic
    assert case.reason in WHOLE_MESSAGE_REASONS


def test_decode_oversized_payload_rejected_before_parsing() -> None:
    payload = b"{" + b" " * 70_000  # not even JSON: the size is checked first
    result = run(make_msg(ACME).topic, payload)
    (letter,) = result.dead_letters
    assert letter.reason == "payload_too_large"
    assert "70001 bytes exceeds the limit of 65536" in letter.detail
    assert len(letter.payload) == LIMITS.max_payload_bytes  # the stored copy is cut to the limit


def test_decode_dead_letter_names_device_and_msg_id_when_known() -> None:
    msg = make_msg(ACME, msg_id="m-77")
    obj = json.loads(msg.payload())
    obj["battery"] = 1
    (letter,) = run(msg.topic, json.dumps(obj).encode()).dead_letters
    assert (letter.device_id, letter.msg_id) == ("acme-1", "m-77")


def test_decode_wrong_identity_dead_letter_names_the_sender_from_the_topic() -> None:
    msg = make_msg(ACME, msg_id="acme-next")  # acme-1's payload, published on acme-2's topic
    (letter,) = run("pumpops/v1/site-a/acme-2/telemetry", msg.payload()).dead_letters
    assert (letter.reason, letter.device_id, letter.msg_id) == ("wrong_identity", "acme-2", "acme-next")


def test_decode_unknown_profile_is_a_whole_message_rejection(profiles: dict) -> None:
    odd = Device("odd-1", "site-a", "no-such-make", "g")
    msg = make_msg(ACME)
    payload = msg.payload().replace(b'"acme-1"', b'"odd-1"')
    result = decode(
        "pumpops/v1/site-a/odd-1/telemetry",
        payload,
        device_lookup={"odd-1": odd}.get,
        profiles=profiles,
        now_us=now_ms() * 1000,
    )
    assert result.reason == "unknown_profile"
    assert "no-such-make" in result.dead_letters[0].detail


# ----------------------------------------------------------------------------- reading-level rejections


def _set_unit(column: int, unit: str) -> Callable[[Msg], None]:
    def edit(m: Msg) -> None:
        m.sensors[column] = (m.sensors[column][0], unit)

    return edit


def _set_cells(cells: list[tuple[int, int]], value: float | None) -> Callable[[Msg], None]:
    def edit(m: Msg) -> None:
        for i, j in cells:
            m.values[i][j] = value

    return edit


def _set_ts(row: int, delta_ms: int | None = None, *, to_row: int | None = None) -> Callable[[Msg], None]:
    def edit(m: Msg) -> None:
        m.ts_ms[row] = m.ts_ms[to_row] if to_row is not None else m.ts_ms[row] + (delta_ms or 0)

    return edit


@dataclass(frozen=True)
class Partial:
    name: str
    device: Device
    edit: Callable[[Msg], None]
    reason: str
    rejected: int  # readings rejected (the message has 10 rows)
    detail: str


PARTIAL = [
    Partial(
        "unknown_sensor",
        ACME,
        lambda m: m.sensors.__setitem__(2, ("FLOW_TOTAL", "m**3")),
        "unknown_sensor",
        10,
        r"sensor 'FLOW_TOTAL' is not in profile 'acme-ansi' \(its sensors: SUCT_PRESS",
    ),
    Partial(
        "unknown_unit", ACME, _set_unit(0, "psig"), "unknown_unit", 10, r"'psig' is unknown; did you mean psi"
    ),
    Partial(
        "unit_not_an_expression",
        ACME,
        _set_unit(0, "m**9**9**9"),
        "unknown_unit",
        10,
        "not a unit expression",
    ),
    Partial(
        "temperature_unit_for_pressure",
        ACME,
        _set_unit(1, "degC"),
        "wrong_unit",
        10,
        r"'degC' measures \[temperature\], but 'Pa' is needed.*declares 'psi' for 'DISCH_PRESS'",
    ),
    Partial(
        "gram_for_acceleration", SAKURA, _set_unit(7, "g"), "wrong_unit", 10, r"\[mass\].*did you mean gn"
    ),
    Partial(
        "nan_literal",
        ACME,
        _set_cells([(0, 0), (4, 3)], float("nan")),
        "non_finite",
        2,
        r"SUCT_PRESS at .*: NaN",
    ),
    Partial("infinity_literal", ACME, _set_cells([(2, 1)], float("inf")), "non_finite", 1, "Infinity"),
    Partial(
        "impossible_pressure",
        ACME,
        _set_cells([(5, 1)], 1.0e7),
        "out_of_range",
        1,
        r"DISCH_PRESS at .*: 1e\+07 psi = 6\.89476e\+10 Pa, outside the physical range "
        r"\[-105000, 5e\+07\] Pa",
    ),
    Partial(
        "temperature_below_absolute_zero",
        NORD,
        _set_cells([(0, 6), (1, 6), (2, 6)], -300.0),
        "out_of_range",
        3,
        r"T_wind .*-300 degC = -26\.85 K",
    ),
    Partial(
        "negative_current_sent_in_si",
        ACME,
        _set_cells([(0, 4)], -40.0),
        "out_of_range",
        1,
        r"AMPS at .*: -40 A, outside",
    ),
    Partial("negative_speed", ACME, _set_cells([(9, 3)], -100.0), "out_of_range", 1, "motor_speed"),
    Partial(
        "far_future",
        ACME,
        lambda m: m.ts_ms.__setitem__(9, now_ms() + 3_600_000),
        "future_timestamp",
        9,
        r"1 row\(s\).*allowed 300 s ahead .*check the device's clock",
    ),
    Partial(
        "far_past",
        ACME,
        lambda m: m.ts_ms.__setitem__(0, now_ms() - 40 * 86_400_000),
        "stale_timestamp",
        9,
        r"older than 30 days",
    ),
    Partial("duplicate_timestamp", ACME, _set_ts(5, to_row=4), "duplicate_timestamp", 9, r"row 5 at"),
    Partial(
        "step_back",
        ACME,
        _set_ts(6, -3500),
        "out_of_order",
        9,
        r"row 6 at .*timestamps must increase",
    ),
]


@pytest.mark.parametrize("case", PARTIAL, ids=[c.name for c in PARTIAL])
def test_decode_rejects_readings_and_keeps_the_rest(case: Partial) -> None:
    msg = make_msg(case.device)
    case.edit(msg)
    result = run_msg(msg)
    assert result.batch is not None, result.dead_letters
    (letter,) = result.dead_letters
    assert letter.reason == case.reason
    assert case.reason in READING_REASONS
    assert re.search(case.detail, letter.detail), letter.detail
    assert result.readings_rejected == case.rejected
    assert result.batch.n_readings == result.readings_in - case.rejected
    assert f"rejected {case.rejected}" in letter.detail
    assert letter.payload == msg.payload()
    assert [r.reason for r in result.batch.rejections] == [case.reason]


def test_decode_out_of_order_rejects_only_rows_behind_the_latest() -> None:
    msg = make_msg(ACME, rows=6)
    base = msg.ts_ms[0]
    msg.ts_ms[:] = [base, base + 1000, base + 5000, base + 2000, base + 3000, base + 6000]
    result = run_msg(msg)
    assert result.batch is not None
    kept = (result.batch.ts_us // 1000 - base).tolist()
    assert kept == [0, 1000, 5000, 6000]
    assert result.reason == "out_of_order"
    assert result.readings_rejected == 18


def test_decode_future_rows_do_not_make_later_rows_out_of_order() -> None:
    msg = make_msg(ACME, rows=4)
    msg.ts_ms[0] = now_ms() + 86_400_000  # a bogus first row must not shadow the good ones
    result = run_msg(msg)
    assert result.reason == "future_timestamp"
    assert result.batch is not None
    assert result.batch.ts_us.shape == (3,)


def test_decode_all_readings_rejected_gives_no_batch() -> None:
    msg = make_msg(ACME, rows=3)
    for j in range(len(msg.sensors)):
        msg.sensors[j] = (msg.sensors[j][0], "furlong")
    result = run_msg(msg)
    assert result.batch is None
    assert result.rejected_whole
    assert result.reason == "wrong_unit"
    assert result.readings_rejected == result.readings_in == 27


def test_decode_several_reasons_one_dead_letter_listing_each() -> None:
    msg = make_msg(ACME)
    msg.values[0][0] = 1.0e9  # out_of_range ×1
    msg.ts_ms[9] = now_ms() + 86_400_000  # future ×9 (row 9)
    msg.sensors[4] = ("AMPS", "degC")  # wrong_unit ×10 (column 4), counted first
    result = run_msg(msg)
    (letter,) = result.dead_letters
    assert letter.reason == "wrong_unit"  # covers the most readings
    assert "wrong_unit ×10" in letter.detail
    assert "future_timestamp ×8" in letter.detail  # row 9 minus its AMPS cell, already counted
    assert "out_of_range ×1" in letter.detail
    assert result.readings_rejected == 19
    assert result.batch is not None
    assert result.batch.n_readings == 90 - 19


def _with_literals(msg: Msg, cells: dict[tuple[int, int], float]) -> bytes:
    """The message as JSON with NaN/Infinity literals (Python's json writes them; orjson refuses them)."""
    obj = json.loads(msg.payload())
    for (i, j), value in cells.items():
        obj["values"][i][j] = value
    return json.dumps(obj, allow_nan=True).encode()


def test_decode_nan_literals_are_not_malformed_json() -> None:
    msg = make_msg(ACME, rows=3)
    body = _with_literals(msg, {(0, 0): float("nan"), (1, 1): float("inf"), (2, 2): float("-inf")})
    assert b"NaN" in body
    assert b"-Infinity" in body
    result = run(msg.topic, body)
    assert result.reason == "non_finite"
    assert result.readings_rejected == 3
    assert result.batch is not None
    assert result.batch.n_readings == 24
    assert "NaN" in result.dead_letters[0].detail
    assert "-Infinity" in result.dead_letters[0].detail


def test_decode_nan_literal_and_null_are_different() -> None:
    msg = make_msg(ACME, rows=2)
    msg.values[0][0] = None  # not sampled: not a reading, not an error
    result = run(msg.topic, _with_literals(msg, {(1, 0): float("nan")}))
    assert result.readings_in == 17
    assert result.readings_rejected == 1
    assert result.reason == "non_finite"


def test_decode_overflowing_number_is_non_finite_not_malformed() -> None:
    msg = make_msg(ACME, rows=1)
    body = msg.payload().decode()
    value = json.loads(body)["values"][0][0]
    result = run(msg.topic, body.replace(repr(value), "1e999", 1).encode())
    assert result.reason == "non_finite"


def test_decode_invalid_json_that_python_accepts_stays_malformed() -> None:
    # a lone surrogate escape: the stdlib parses it, orjson (rightly) does not
    msg = make_msg(ACME, rows=1)
    body = msg.payload().replace(b'"m', b'"\\ud800m', 1)
    assert run(msg.topic, body).reason == "malformed_json"


# ----------------------------------------------------------------------------- the good path


def test_decode_converts_native_units_to_si() -> None:
    msg = make_msg(NORD, rows=2)
    msg.values[0][:] = [1.5, 12.0, 36.0, 2950.0, 90.0, 150.0, 80.0, 60.0, 40.0, 2.5]
    result = run_msg(msg)
    assert result.dead_letters == ()
    assert result.batch is not None
    got = dict(zip(result.batch.sensors, result.batch.values[0].tolist(), strict=True))
    assert got["suction_pressure"] == pytest.approx(1.5e5)
    assert got["flow_rate"] == pytest.approx(0.01)
    assert got["motor_speed"] == pytest.approx(2950 * 2 * np.pi / 60)
    assert got["motor_power"] == pytest.approx(90e3)
    assert got["bearing_temperature"] == pytest.approx(333.15)
    assert got["vibration_velocity"] == pytest.approx(2.5e-3)


def test_decode_accepts_canonical_names_and_any_convertible_unit() -> None:
    msg = make_msg(SAKURA, rows=1)
    msg.sensors = [("suction_pressure", "bar"), ("VibX", "m/s**2")]
    msg.values = [[2.0, 9.80665]]
    result = run_msg(msg)
    assert result.batch is not None
    assert result.dead_letters == ()
    assert result.batch.sensors == ("suction_pressure", "vibration_accel_de")
    assert result.batch.values.tolist() == [[2.0e5, pytest.approx(9.80665)]]


def test_decode_batch_carries_identity_and_times() -> None:
    msg = make_msg(ACME, rows=3, msg_id="abc-1")
    result = run_msg(msg)
    batch = result.batch
    assert batch is not None
    assert (batch.device_id, batch.msg_id) == ("acme-1", "abc-1")
    assert batch.ts_us.tolist() == [t * 1000 for t in msg.ts_ms]
    assert batch.values.shape == (3, 9)
    assert batch.ts_us.dtype == np.int64
    assert len(batch.payload_sha256) == 64
    assert result.readings_in == batch.n_readings == 27


def test_decode_nulls_are_not_readings_and_not_errors() -> None:
    msg = make_msg(ACME, rows=2)
    msg.values[0] = [None] * 9
    result = run_msg(msg)
    assert result.dead_letters == ()
    assert result.batch is not None
    assert result.batch.ts_us.shape == (1,)
    assert result.readings_in == 9


def test_decode_ignores_other_kinds_of_device_topic() -> None:
    result = run("pumpops/v1/site-a/acme-1/alarms", b"anything at all")
    assert result.ignored
    assert result.batch is None
    assert result.dead_letters == ()


@pytest.mark.parametrize("topic", ["pumpops/v1/events/model.promoted", "pumpops/v1/events/rollout.started"])
def test_decode_ignores_hub_events_under_the_prefix(topic: str) -> None:
    # the registry publishes events under <prefix>/events/<kind>; ingest subscribes
    # to <prefix>/# and must not dead-letter them as wrongly shaped device topics
    result = run(topic, b'{"format": "pumpops.event/1"}')
    assert result.ignored
    assert result.dead_letters == ()


def test_decode_values_stay_within_physical_bounds() -> None:
    result = run_msg(make_msg(SAKURA, rows=50, seed=3))
    batch = result.batch
    assert batch is not None
    for j, name in enumerate(batch.sensors):
        sensor = CANONICAL_SENSORS[name]
        col = batch.values[:, j]
        assert np.all((col >= sensor.minimum) & (col <= sensor.maximum))


# ----------------------------------------------------------------------------- encoding and the schema file


def test_encode_message_writes_nan_as_null_and_round_trips() -> None:
    body = encode_message(
        msg_id="m", device_id="acme-1", sensors=[("AMPS", "A")], ts_ms=[1, 2], values=[[1.0], [float("nan")]]
    )
    assert json.loads(body)["values"] == [[1.0], [None]]


def test_encode_message_rejects_misshapen_values() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        encode_message(msg_id="m", device_id="d", sensors=[("a", "A")], ts_ms=[1, 2], values=[[1.0]])


def test_schema_file_shipped_matches_the_model() -> None:
    shipped = json.loads(schema_path().read_text(encoding="utf-8"))
    assert shipped == telemetry_json_schema()
    assert shipped["properties"]["schema"]["const"] == "pumpops.telemetry/1"
    assert shipped["additionalProperties"] is False


def test_decode_throughput_is_reported_not_asserted() -> None:
    # a smoke run only: throughput is measured by the benchmark, never asserted in a unit test
    msg = make_msg(ACME, rows=10)
    payload = msg.payload()
    start = time.perf_counter()
    for _ in range(50):
        assert run(msg.topic, payload).batch is not None
    assert time.perf_counter() - start < 60
