"""The telemetry wire codec: ``encode`` for publishers, ``decode`` for the hub.

:func:`decode` is a pure decision function: it takes the topic, the raw payload
bytes, a way to look a device up, the manufacturer profiles, the clock and the
limits, and returns what to store (a :class:`~pumpops.schema.ReadingBatch` in
canonical SI units) and what to dead-letter, with reasons a person can act on.
It does no I/O, so every rule below is tested without a broker or a database.

Two levels of rejection:

- **Whole message** (nothing stored, the raw payload is dead-lettered):
  ``wrong_topic``, ``payload_too_large``, ``malformed_json``, ``wrong_schema``,
  ``missing_field``, ``unexpected_field``, ``invalid_field``,
  ``ragged_values``, ``device_mismatch``, ``unknown_device``,
  ``site_mismatch``, ``unknown_profile``, ``duplicate_sensor``.
- **Readings** (the rest is stored; ONE dead letter for the message lists every
  reason with counts and examples): ``unknown_sensor``, ``unknown_unit``,
  ``wrong_unit``, ``non_finite``, ``out_of_range``, ``future_timestamp``,
  ``stale_timestamp``, ``duplicate_timestamp``, ``out_of_order``.

A reading is a non-null cell. Each rejected reading is counted under the first
reason that applies, in the order column (sensor, unit), row (timestamp), cell
(non-finite, range), so ``stored + rejected == readings in the message``.
``docs/protocol.md`` lists every code with an example.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import orjson
from pydantic import ValidationError

from pumpops.errors import MessageRejected, UnitError
from pumpops.fleet import Device, ManufacturerProfile
from pumpops.schema import (
    CANONICAL_SENSORS,
    SCHEMA_ID,
    CanonicalSensor,
    DeadLetter,
    ReadingBatch,
    Rejection,
    TelemetryMessage,
    affine_to,
)
from pumpops.telemetry._topics import DEFAULT_PREFIX, DeviceTopic, is_hub_topic, parse_topic

if TYPE_CHECKING:
    from pumpops.settings import IngestSettings
    from pumpops.sources import Channel, Frame

__all__ = [
    "DecodeLimits",
    "DecodeResult",
    "decode",
    "encode_frame",
    "encode_message",
    "telemetry_json_schema",
]

#: Reasons that reject a whole message, in the order they are checked.
WHOLE_MESSAGE_REASONS: Final = (
    "wrong_topic",
    "payload_too_large",
    "malformed_json",
    "wrong_schema",
    "missing_field",
    "unexpected_field",
    "invalid_field",
    "ragged_values",
    "device_mismatch",
    "unknown_device",
    "site_mismatch",
    "unknown_profile",
    "duplicate_sensor",
)
#: Reasons that reject some readings of a message, in the order they are checked.
READING_REASONS: Final = (
    "unknown_sensor",
    "unknown_unit",
    "wrong_unit",
    "future_timestamp",
    "stale_timestamp",
    "duplicate_timestamp",
    "out_of_order",
    "non_finite",
    "out_of_range",
)

_EXAMPLES = 3  # examples per reason in a dead letter's detail
# Timestamps outside this many ms from the epoch cannot become int64 microseconds;
# they are far outside any sane clock skew, so they are clamped before numpy sees them.
_TS_CLAMP_MS = 2**62 // 1000
# What pumpops lets pint parse: unit names joined by * or / (or spaces), with
# single-digit powers. pint evaluates numbers in unit strings, so an input such
# as "m**9**9**9" from the network could otherwise keep it busy for a very long time.
_UNIT_EXPR = re.compile(
    r"^[A-Za-z_°µΩ%]+(?:(?:\*\*|\^)-?[1-9])?(?:\s*[*/ ]\s*[A-Za-z_°µΩ%]+(?:(?:\*\*|\^)-?[1-9])?)*$"
)
# Mistakes seen in the field, and what to write instead.
_UNIT_HINTS: Final[Mapping[str, str]] = {
    "g": "gn (standard gravity; in pint 'g' is the gram)",
    "G": "gn (standard gravity)",
    "psig": "psi (pumpops stores gauge pressure)",
    "psia": "psi, as gauge pressure (pumpops stores gauge pressure)",
    "barg": "bar (pumpops stores gauge pressure)",
    "RPM": "rpm",
    "rev/min": "rpm",
    "gpm": "gallon/minute",
    "GPM": "gallon/minute",
    "m3/h": "m**3/hour",
    "m3/hr": "m**3/hour",
    "lpm": "L/min",
    "C": "degC (in pint 'C' is the coulomb)",
    "F": "degF (in pint 'F' is the farad)",
}


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Bounds a message must respect; see :class:`pumpops.settings.IngestSettings`.

    Attributes:
        max_payload_bytes: larger payloads are rejected before parsing (bytes).
        max_future_skew_s: readings further ahead of the hub's clock are rejected (seconds).
        max_past_age_s: readings older than this are rejected (seconds).
    """

    max_payload_bytes: int = 256 * 1024  # bytes
    max_future_skew_s: float = 300.0  # seconds
    max_past_age_s: float = 5 * 365 * 86_400.0  # seconds

    @classmethod
    def from_settings(cls, ingest: IngestSettings) -> DecodeLimits:
        """Take the limits from the ingest settings."""
        return cls(
            max_payload_bytes=ingest.max_payload_bytes,
            max_future_skew_s=ingest.max_future_skew_s,
            max_past_age_s=ingest.max_past_age_s,
        )


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """What :func:`decode` decided about one message.

    Exactly one of these holds: the message is ``ignored`` (a well-formed topic
    of another kind, such as ``alarms``, which ingest does not own), it was
    rejected whole (``batch is None`` and one dead letter), or it has a batch to
    store (and, if some readings were rejected, one dead letter listing why).

    Attributes:
        topic: the topic the message arrived on.
        batch: readings to store, or None.
        dead_letters: rejections to record (at most one per message).
        readings_in: readings (non-null cells) the message carried; 0 if it
            was rejected before they could be counted.
        readings_rejected: how many of those were rejected.
        ignored: the topic is a device topic of another kind.
    """

    topic: str
    batch: ReadingBatch | None
    dead_letters: tuple[DeadLetter, ...] = ()
    readings_in: int = 0
    readings_rejected: int = 0
    ignored: bool = False

    @property
    def rejected_whole(self) -> bool:
        """True if nothing of the message is to be stored because of a rejection."""
        return self.batch is None and bool(self.dead_letters)

    @property
    def reason(self) -> str | None:
        """The reason code of the dead letter, if any."""
        return self.dead_letters[0].reason if self.dead_letters else None


_DEFAULT_LIMITS = DecodeLimits()

# ----------------------------------------------------------------------------- encoding


def encode_message(
    *,
    msg_id: str,
    device_id: str,
    sensors: Sequence[tuple[str, str]] | Sequence[Channel],
    ts_ms: Sequence[int] | np.ndarray,
    values: Sequence[Sequence[float | None]] | np.ndarray,
    sent_at_ms: int | None = None,
) -> bytes:
    """Serialise readings to a telemetry message (compact JSON, UTF-8).

    Args:
        msg_id: the message id; unique per device, and the same when the same
            readings are sent again (it is the idempotency key).
        device_id: the sending device.
        sensors: ``(name, unit)`` pairs or :class:`~pumpops.sources.Channel` s.
        ts_ms: ``M`` timestamps, ms since the Unix epoch, increasing.
        values: ``M x N`` values; NaN (or None) is sent as ``null`` (not sampled).
        sent_at_ms: when the device sent it, if it knows.

    Returns:
        The payload bytes. Non-finite values become ``null``: a finite reading
        is the only kind the protocol carries.

    >>> encode_message(msg_id="m-1", device_id="p-1", sensors=[("p_in", "bar")], ts_ms=[1000], values=[[1.5]])
    b'{"schema":"pumpops.telemetry/1","msg_id":"m-1","device_id":"p-1","sent_at_ms":null,"sensors":[{"name":"p_in","unit":"bar"}],"ts_ms":[1000],"values":[[1.5]]}'
    """
    sensor_list = [
        {"name": s.name, "unit": s.unit} if not isinstance(s, tuple) else {"name": s[0], "unit": s[1]}
        for s in sensors
    ]
    ts = np.ascontiguousarray(ts_ms, dtype=np.int64)
    # object arrays (lists with None) become float64 with NaN; orjson writes NaN as null
    vals = np.ascontiguousarray(np.asarray(values, dtype=np.float64))
    if vals.ndim != 2 or vals.shape != (ts.shape[0], len(sensor_list)):
        raise ValueError(
            f"values of shape {vals.shape} do not fit {ts.shape[0]} timestamps and {len(sensor_list)} sensors"
        )
    return orjson.dumps(
        {
            "schema": SCHEMA_ID,
            "msg_id": msg_id,
            "device_id": device_id,
            "sent_at_ms": sent_at_ms,
            "sensors": sensor_list,
            "ts_ms": ts,
            "values": vals,
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def encode_frame(frame: Frame, msg_id: str, *, sent_at_ms: int | None = None) -> bytes:
    """Serialise a source :class:`~pumpops.sources.Frame` as one telemetry message.

    Args:
        frame: readings in the device's own names and units.
        msg_id: the message id (see :func:`encode_message`).
        sent_at_ms: when the device sent it, if it knows.
    """
    return encode_message(
        msg_id=msg_id,
        device_id=frame.device_id,
        sensors=frame.channels,
        ts_ms=frame.ts_ms,
        values=frame.values,
        sent_at_ms=sent_at_ms,
    )


def telemetry_json_schema() -> dict[str, Any]:
    """Return the JSON Schema of the telemetry message (shipped as ``telemetry.schema.json``).

    It is generated from :class:`~pumpops.schema.TelemetryMessage`; what JSON
    Schema cannot say (every row has one value per sensor, one row per
    timestamp, timestamps increase) is in the descriptions and in ``docs/protocol.md``.
    """
    schema = TelemetryMessage.model_json_schema(by_alias=True, mode="validation")
    props = schema["properties"]
    props["schema"]["description"] = f"Schema id; always {SCHEMA_ID!r}."
    props["msg_id"]["description"] = (
        "Unique per device; the same id for the same readings when re-sent (the idempotency key)."
    )
    props["device_id"]["description"] = "The sending device; must equal the <device_id> segment of the topic."
    props["sent_at_ms"]["description"] = "When the device sent the message, ms since the Unix epoch (UTC)."
    props["sensors"]["description"] = (
        "The columns: native (manufacturer profile) or canonical sensor names with the unit "
        "their values are in (a pint unit string such as 'psi', 'degC', 'm**3/hour', 'gn')."
    )
    props["ts_ms"]["description"] = "Timestamps in ms since the Unix epoch (UTC), strictly increasing."
    props["values"]["description"] = (
        "One row per timestamp, one value per sensor, in the declared unit; null = not sampled. "
        "NaN and Infinity are not JSON and are rejected."
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://pumpops.example/schemas/pumpops.telemetry-1.schema.json",
        **schema,
        "title": "pumpops telemetry message (pumpops.telemetry/1)",
    }


# ----------------------------------------------------------------------------- decoding


@dataclass(slots=True)
class _Incoming:
    """One message on its way through :func:`decode`, and what is known about it so far."""

    topic: str
    payload: bytes
    now_us: int
    limits: DecodeLimits
    device_id: str | None = None
    msg_id: str | None = None

    def dead_letter(self, reason: str, detail: str) -> DeadLetter:
        payload = self.payload
        if len(payload) > self.limits.max_payload_bytes:
            # keeping all of a payload refused for its size would defeat the limit
            payload = payload[: self.limits.max_payload_bytes]
        return DeadLetter(
            topic=self.topic,
            payload=payload,
            reason=reason,
            detail=detail,
            received_at_us=self.now_us,
            device_id=self.device_id,
            msg_id=self.msg_id,
        )


def decode(
    topic: str,
    payload: bytes,
    *,
    device_lookup: Callable[[str], Device | None],
    profiles: Mapping[str, ManufacturerProfile],
    now_us: int,
    limits: DecodeLimits = _DEFAULT_LIMITS,
    prefix: str = DEFAULT_PREFIX,
) -> DecodeResult:
    """Validate one telemetry message and convert its readings to canonical SI units.

    Args:
        topic: the MQTT topic it arrived on.
        payload: the raw bytes.
        device_lookup: returns the registered device for an id, or None.
            Whatever it raises (a store outage) propagates: that is not the
            message's fault and must not dead-letter it.
        profiles: manufacturer profiles by id.
        now_us: the hub's clock, µs since the Unix epoch (UTC).
        limits: size and time bounds.
        prefix: the topic prefix.

    Returns:
        The decision; see :class:`DecodeResult`. It raises for no topic or payload.

    >>> from pumpops.fleet import Device, load_profiles
    >>> pump = Device("p-1", "s1", "nordhav-multistage", "g")
    >>> body = encode_message(msg_id="m-1", device_id="p-1", sensors=[("p_in", "bar"), ("T_brg", "degC")],
    ...                       ts_ms=[1_000, 2_000], values=[[1.5, 40.0], [1.6, 9999.0]])
    >>> result = decode("pumpops/v1/s1/p-1/telemetry", body, device_lookup={"p-1": pump}.get,
    ...                 profiles=load_profiles(), now_us=3_000_000, limits=DecodeLimits(max_past_age_s=60))
    >>> result.batch.sensors, result.batch.values.tolist()
    (('suction_pressure', 'bearing_temperature'), [[150000.0, 313.15], [160000.0, nan]])
    >>> result.reason, result.readings_in, result.readings_rejected
    ('out_of_range', 4, 1)
    """
    msg = _Incoming(topic, payload, now_us, limits)
    try:
        return _decode(msg, device_lookup, profiles, prefix)
    except MessageRejected as exc:
        return DecodeResult(topic=topic, batch=None, dead_letters=(msg.dead_letter(exc.reason, exc.detail),))


def _decode(
    msg: _Incoming,
    device_lookup: Callable[[str], Device | None],
    profiles: Mapping[str, ManufacturerProfile],
    prefix: str,
) -> DecodeResult:
    if is_hub_topic(msg.topic, prefix=prefix):
        return DecodeResult(topic=msg.topic, batch=None, ignored=True)
    where = parse_topic(msg.topic, prefix=prefix)
    msg.device_id = where.device_id
    if where.kind != "telemetry":
        return DecodeResult(topic=msg.topic, batch=None, ignored=True)
    if len(msg.payload) > msg.limits.max_payload_bytes:
        raise MessageRejected(
            "payload_too_large",
            f"payload of {len(msg.payload)} bytes exceeds the limit of {msg.limits.max_payload_bytes} "
            f"bytes (ingest.max_payload_bytes); split it into several messages. The dead letter keeps "
            f"the first {msg.limits.max_payload_bytes} bytes.",
        )
    obj, has_non_finite = _parse_json(msg.payload)
    wire = _validate(obj, msg)
    profile = _check_sender(wire, where, device_lookup, profiles)
    columns = [_resolve_column(s.name, s.unit, profile) for s in wire.sensors]
    _check_columns_unique(columns)
    return _judge_readings(msg, wire, columns, has_non_finite)


def _parse_json(payload: bytes) -> tuple[Any, bool]:
    """Parse with orjson; fall back to the stdlib only to accept NaN/Infinity literals.

    Returns the object and whether it holds non-finite numbers (which orjson
    refuses but which are a reading-level fault, not a malformed message).
    """
    try:
        return orjson.loads(payload), False
    except orjson.JSONDecodeError as exc:
        first_error = exc
    seen_non_finite = False

    def non_finite(text: str) -> float:
        nonlocal seen_non_finite
        seen_non_finite = True
        return float(text)

    def number(text: str) -> float:
        nonlocal seen_non_finite
        value = float(text)
        if not math.isfinite(value):  # 1e999 overflows to inf
            seen_non_finite = True
        return value

    try:
        obj = json.loads(payload.decode("utf-8"), parse_constant=non_finite, parse_float=number)
    except (UnicodeDecodeError, ValueError, RecursionError):
        obj, seen_non_finite = None, False
    if not seen_non_finite:
        # the stdlib accepts more than JSON (lone surrogates, ...): only NaN/Infinity earn the fallback
        raise MessageRejected("malformed_json", _json_detail(payload, first_error)) from None
    return obj, True


def _json_detail(payload: bytes, exc: orjson.JSONDecodeError) -> str:
    pos = max(0, min(getattr(exc, "pos", 0) or 0, len(payload)))
    before = payload[max(0, pos - 24) : pos].decode("utf-8", errors="replace")
    after = payload[pos : pos + 24].decode("utf-8", errors="replace")
    return f"the payload is not valid JSON: {exc.msg} at byte {pos}: ...{before}⟨here⟩{after}..."


def _validate(obj: Any, msg: _Incoming) -> TelemetryMessage:
    if not isinstance(obj, dict):
        kind = type(obj).__name__ if obj is not None else "null"
        raise MessageRejected(
            "wrong_schema", f'the payload is a JSON {kind}, not an object with "schema": {SCHEMA_ID!r}'
        )
    if isinstance(obj.get("msg_id"), str):
        msg.msg_id = obj["msg_id"][:128]
    if isinstance(obj.get("device_id"), str):
        msg.device_id = obj["device_id"][:64]
    if obj.get("schema") != SCHEMA_ID:
        if "schema" not in obj:
            detail = f'the message has no "schema" field; this hub reads "schema": {SCHEMA_ID!r}'
        else:
            detail = f'"schema" is {_cut(obj["schema"])}; this hub reads {SCHEMA_ID!r}'
        raise MessageRejected("wrong_schema", detail)
    try:
        # strict: JSON types as the JSON Schema says (no "12" for 12, no true for 1.0)
        wire = TelemetryMessage.model_validate(obj, strict=True)
    except ValidationError as exc:
        raise _field_rejection(exc) from None
    m, n = len(wire.ts_ms), len(wire.sensors)
    if len(wire.values) != m:
        raise MessageRejected(
            "ragged_values", f"the message has {m} timestamp(s) but {len(wire.values)} row(s) of values"
        )
    for i, row in enumerate(wire.values):
        if len(row) != n:
            raise MessageRejected(
                "ragged_values", f"row {i} of values has {len(row)} value(s) for {n} sensor(s)"
            )
    return wire


def _cut(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the message"


_FIELD_RANK = {"missing": 0, "extra_forbidden": 1}


def _field_rejection(exc: ValidationError) -> MessageRejected:
    """Rewrite pydantic's errors into one sentence that names the fields."""
    errors = sorted(exc.errors(include_url=False), key=lambda e: _FIELD_RANK.get(e["type"], 2))
    first = errors[0]["type"]
    reason = {"missing": "missing_field", "extra_forbidden": "unexpected_field"}.get(first, "invalid_field")
    parts = []
    for err in errors[:3]:
        where = _loc(tuple(err["loc"]))
        if err["type"] == "missing":
            parts.append(f"field {where!r} is missing")
        elif err["type"] == "extra_forbidden":
            parts.append(f"field {where!r} is not part of {SCHEMA_ID}")
        else:
            text = str(err["msg"])
            parts.append(f"field {where!r}: {text[0].lower() + text[1:]} (got {_cut(err.get('input'))})")
    more = f" (and {len(errors) - 3} more problem(s))" if len(errors) > 3 else ""
    if reason == "missing_field":
        more += f" ({SCHEMA_ID} requires schema, msg_id, device_id, sensors, ts_ms and values)"
    return MessageRejected(reason, "; ".join(parts) + more)


def _check_sender(
    wire: TelemetryMessage,
    where: DeviceTopic,
    device_lookup: Callable[[str], Device | None],
    profiles: Mapping[str, ManufacturerProfile],
) -> ManufacturerProfile:
    if wire.device_id != where.device_id:
        raise MessageRejected(
            "device_mismatch",
            f"device_id {wire.device_id!r} in the payload differs from {where.device_id!r} in the topic; "
            f"a device publishes only on its own topic",
        )
    device = device_lookup(wire.device_id)
    if device is None:
        raise MessageRejected(
            "unknown_device",
            f"device {wire.device_id!r} is not registered; register it (with its site and manufacturer "
            f"profile) and replay this dead letter",
        )
    if device.site != where.site:
        raise MessageRejected(
            "site_mismatch",
            f"device {wire.device_id!r} is registered at site {device.site!r} but published under "
            f"site {where.site!r}; fix the device's topic or its registration",
        )
    profile = profiles.get(device.profile_id)
    if profile is None:
        raise MessageRejected(
            "unknown_profile",
            f"device {wire.device_id!r} is registered with manufacturer profile {device.profile_id!r}, "
            f"which this hub does not have (known: {', '.join(sorted(profiles)) or 'none'})",
        )
    return profile


@dataclass(slots=True)
class _Column:
    name: str
    unit: str
    sensor: CanonicalSensor | None = None
    scale: float = 1.0
    offset: float = 0.0
    reason: str | None = None
    detail: str = ""


def _resolve_column(name: str, unit: str, profile: ManufacturerProfile) -> _Column:
    col = _Column(name, unit)
    declared = profile.sensor(name)
    if declared is None:
        col.reason = "unknown_sensor"
        natives = ", ".join(s.native for s in profile.sensors)
        col.detail = (
            f"sensor {name!r} is not in profile {profile.id!r} (its sensors: {natives}; canonical names "
            f"are accepted too) — fix the device's configuration or the profile"
        )
        return col
    sensor = CANONICAL_SENSORS[declared.canonical]
    col.sensor = sensor
    outcome = _unit_map(unit, sensor.unit)
    if isinstance(outcome, tuple):
        col.scale, col.offset = outcome
        return col
    col.reason = outcome.reason
    as_in = f"; profile {profile.id!r} declares {declared.unit!r} for {declared.native!r}"
    col.detail = f"column {name!r} ({sensor.name}): {outcome.detail}{as_in}"
    return col


def _check_columns_unique(columns: list[_Column]) -> None:
    seen: dict[str, str] = {}
    for col in columns:
        key = col.sensor.name if col.sensor is not None else col.name
        if key in seen:
            same = f" (both are {key})" if seen[key] != col.name else ""
            raise MessageRejected(
                "duplicate_sensor",
                f"columns {seen[key]!r} and {col.name!r} name the same sensor{same}; send each sensor once",
            )
        seen[key] = col.name


@dataclass(frozen=True, slots=True)
class _UnitProblem:
    reason: str
    detail: str


@lru_cache(maxsize=1024)
def _unit_map(unit: str, target: str) -> tuple[float, float] | _UnitProblem:
    """The affine map from ``unit`` to ``target``, or why there is none (cached either way)."""
    hint = _UNIT_HINTS.get(unit)
    did_you_mean = f"; did you mean {hint}?" if hint else ""
    if not _UNIT_EXPR.match(unit):
        return _UnitProblem(
            "unknown_unit",
            f"unit {unit!r} is not a unit expression pumpops reads (unit names joined by * or /, "
            f"powers like m**3){did_you_mean}",
        )
    try:
        affine_to(unit, unit)
    except UnitError:
        return _UnitProblem("unknown_unit", f"unit {unit!r} is unknown{did_you_mean}")
    try:
        scale, offset = affine_to(unit, target)
    except UnitError as exc:
        return _UnitProblem("wrong_unit", f"{exc}{did_you_mean}")
    return scale, offset


@dataclass(slots=True)
class _Tally:
    """Rejected readings per reason, with a few examples each."""

    counts: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def add(self, reason: str, count: int, examples: list[str], *, rows: int = 0, note: str = "") -> None:
        if count <= 0:
            return
        self.counts[reason] = self.counts.get(reason, 0) + count
        self.rows[reason] = self.rows.get(reason, 0) + rows
        got = self.examples.setdefault(reason, [])
        got.extend(examples[: _EXAMPLES - len(got)])
        if note and reason not in self.notes:
            self.notes[reason] = note

    def rejections(self) -> tuple[Rejection, ...]:
        out = []
        for reason, count in self.counts.items():
            rows = f" in {self.rows[reason]} row(s)" if self.rows[reason] else ""
            text = f"{count} reading(s){rows}, e.g. " + ", ".join(self.examples[reason])
            note = self.notes.get(reason)
            out.append(Rejection(reason=reason, detail=f"{text} ({note})" if note else text, count=count))
        return tuple(out)


def _iso(ts_ms: int) -> str:
    try:
        when = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return f"ts_ms={ts_ms}"
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _judge_readings(
    msg: _Incoming, wire: TelemetryMessage, columns: list[_Column], has_non_finite: bool
) -> DecodeResult:
    m, n = len(wire.ts_ms), len(wire.sensors)
    ts = _timestamps(wire.ts_ms)
    raw = _values(wire.values, m, n)
    # null cells are "not sampled"; only NaN/Infinity literals (fallback parser) are non-finite readings
    present = ~(_null_mask(wire.values, m, n) if has_non_finite else np.isnan(raw))
    rejected = np.zeros((m, n), dtype=bool)
    tally = _Tally()

    # columns first: a sensor the profile lacks, or a unit that is unknown or of the wrong dimension
    for j, col in enumerate(columns):
        if col.reason is not None:
            tally.add(col.reason, int(np.count_nonzero(present[:, j])), [col.detail])
            rejected[:, j] |= present[:, j]

    # then rows: timestamps too far ahead or behind, repeated, or stepping back
    for reason, rows, note in _bad_rows(ts, msg.now_us, msg.limits):
        cells = present & rows[:, None] & ~rejected
        examples = [f"row {i} at {_iso(int(ts[i]))}" for i in np.flatnonzero(rows)[:_EXAMPLES]]
        tally.add(reason, int(np.count_nonzero(cells)), examples, rows=int(np.count_nonzero(rows)), note=note)
        rejected |= cells

    # then cells: non-finite, then physically impossible once in SI units
    scale = np.array([c.scale for c in columns], dtype=np.float64)
    offset = np.array([c.offset for c in columns], dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        si = raw * scale + offset
    bad = present & ~np.isfinite(raw) & ~rejected
    if bad.any():
        tally.add("non_finite", int(np.count_nonzero(bad)), _cell_examples(bad, columns, ts, raw, None))
        rejected |= bad
    lo = np.array([c.sensor.minimum if c.sensor else -np.inf for c in columns])
    hi = np.array([c.sensor.maximum if c.sensor else np.inf for c in columns])
    with np.errstate(invalid="ignore"):
        outside = present & ~rejected & ~((si >= lo) & (si <= hi))
    if outside.any():
        examples = _cell_examples(outside, columns, ts, raw, si)
        tally.add("out_of_range", int(np.count_nonzero(outside)), examples)
        rejected |= outside

    keep_cells = present & ~rejected
    kept = np.where(keep_cells, si, np.nan)
    return _result(msg, wire=wire, columns=columns, ts=ts, kept=kept, present=present, tally=tally)


def _bad_rows(ts: np.ndarray, now_us: int, limits: DecodeLimits) -> list[tuple[str, np.ndarray, str]]:
    """Rows to reject for their timestamp, per reason, with a note on what to do."""
    now_ms = now_us // 1000
    future = ts > now_ms + int(limits.max_future_skew_s * 1000)
    stale = ts < now_ms - int(limits.max_past_age_s * 1000)
    in_window = ~(future | stale)
    lowest = np.iinfo(np.int64).min
    prev_max = np.full(ts.shape[0], lowest, dtype=np.int64)
    if ts.shape[0] > 1:
        # the latest timestamp among the earlier rows that are in the window
        prev_max[1:] = np.maximum.accumulate(np.where(in_window, ts, lowest))[:-1]
    return [
        (
            "future_timestamp",
            future,
            f"the hub's clock is {_iso(now_ms)}; allowed {_span(limits.max_future_skew_s)} ahead "
            f"(ingest.max_future_skew_s) — check the device's clock (NTP)",
        ),
        (
            "stale_timestamp",
            stale,
            f"the hub's clock is {_iso(now_ms)}; readings older than {_span(limits.max_past_age_s)} "
            f"(ingest.max_past_age_s) are refused — check the device's clock, or raise the limit to backfill",
        ),
        (
            "duplicate_timestamp",
            in_window & (ts == prev_max),
            "a timestamp may appear once per message; the first row with it is kept",
        ),
        (
            "out_of_order",
            in_window & (ts < prev_max),
            "timestamps must increase within a message; rows behind an earlier row are rejected",
        ),
    ]


def _span(seconds: float) -> str:
    """A duration for people.

    >>> _span(300), _span(2_592_000), _span(5400)
    ('300 s', '30 days', '1.5 h')
    """
    if seconds >= 2 * 86_400:
        return f"{seconds / 86_400:g} days"
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds:g} s"


def _timestamps(ts_ms: list[int]) -> np.ndarray:
    if ts_ms and (max(ts_ms) > _TS_CLAMP_MS or min(ts_ms) < -_TS_CLAMP_MS):
        ts_ms = [min(max(t, -_TS_CLAMP_MS), _TS_CLAMP_MS) for t in ts_ms]
    return np.array(ts_ms, dtype=np.int64)


def _values(values: list[list[float | None]], m: int, n: int) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float64).reshape(m, n)
    except OverflowError:  # only the stdlib fallback parser hands over ints beyond float range
        return np.array([[_as_float(v) for v in row] for row in values], dtype=np.float64).reshape(m, n)


def _as_float(value: float | None) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _null_mask(values: list[list[float | None]], m: int, n: int) -> np.ndarray:
    return np.array([[v is None for v in row] for row in values], dtype=bool).reshape(m, n)


def _json_number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _cell_examples(
    mask: np.ndarray, columns: list[_Column], ts: np.ndarray, raw: np.ndarray, si: np.ndarray | None
) -> list[str]:
    out = []
    for i, j in zip(*np.nonzero(mask), strict=True):
        col = columns[int(j)]
        where = f"{col.name} at {_iso(int(ts[i]))}"
        if si is None or col.sensor is None:
            out.append(f"{where}: {_json_number(float(raw[i, j]))}")
        else:
            s = col.sensor
            # name the value in both units, unless it was sent in the SI unit already
            same = (col.scale, col.offset) == (1.0, 0.0) and col.unit == s.unit
            value = (
                f"{raw[i, j]:.6g} {s.unit}"
                if same
                else f"{raw[i, j]:.6g} {col.unit} = {si[i, j]:.6g} {s.unit}"
            )
            out.append(
                f"{where}: {value}, outside the physical range "
                f"[{s.minimum:.6g}, {s.maximum:.6g}] {s.unit} of {s.name}"
            )
        if len(out) == _EXAMPLES:
            break
    return out


def _result(
    msg: _Incoming,
    *,
    wire: TelemetryMessage,
    columns: list[_Column],
    ts: np.ndarray,
    kept: np.ndarray,
    present: np.ndarray,
    tally: _Tally,
) -> DecodeResult:
    """Assemble the batch (kept cells only; NaN elsewhere) and the one dead letter, if any."""
    readings_in = int(np.count_nonzero(present))
    n_kept = int(np.count_nonzero(~np.isnan(kept)))
    n_rejected = readings_in - n_kept
    rejections = tally.rejections()
    letters: tuple[DeadLetter, ...] = ()
    if rejections:
        # the reason covering most readings names the dead letter; its detail lists them all
        main = max(rejections, key=lambda r: r.count)
        listed = "; ".join(f"{r.reason} ×{r.count}: {r.detail}" for r in rejections)
        summary = f"stored {n_kept} of {readings_in} readings, rejected {n_rejected}: {listed}"
        letters = (msg.dead_letter(main.reason, summary),)
    if readings_in > 0 and n_kept == 0:
        return DecodeResult(msg.topic, None, letters, readings_in, n_rejected)
    keep_rows = ~np.isnan(kept).all(axis=1)
    keep_cols = np.array([c.reason is None for c in columns], dtype=bool)
    batch = ReadingBatch(
        device_id=wire.device_id,
        msg_id=wire.msg_id,
        payload_sha256=hashlib.sha256(msg.payload).hexdigest(),
        ts_us=ts[keep_rows] * 1000,
        sensors=tuple(c.sensor.name for c, keep in zip(columns, keep_cols, strict=True) if keep and c.sensor),
        values=np.ascontiguousarray(kept[np.ix_(keep_rows, keep_cols)]),
        received_at_us=msg.now_us,
        rejections=rejections,
    )
    return DecodeResult(msg.topic, batch, letters, readings_in, n_rejected)
