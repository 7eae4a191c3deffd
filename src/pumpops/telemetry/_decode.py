"""Decoding one telemetry message: :func:`decode`, the whole-message checks, and its result.

Pure (see ``_codec``'s docstring for the reasons and their order); the
reading-level checks are in ``_decode_readings``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from pydantic import ValidationError

from pumpops.errors import MessageRejected
from pumpops.fleet import Device, ManufacturerProfile
from pumpops.schema import (
    SCHEMA_ID,
    TelemetryMessage,
)
from pumpops.telemetry._codec import DecodeLimits, DecodeResult
from pumpops.telemetry._decode_readings import (
    _check_columns_unique,
    _Incoming,
    _judge_readings,
    column_plan,
)
from pumpops.telemetry._topics import DEFAULT_PREFIX, DeviceTopic, is_hub_topic, parse_topic

__all__ = ["decode"]

_DEFAULT_LIMITS = DecodeLimits()


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
    >>> from pumpops.telemetry import encode_message
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
    _check_identity(wire, where, msg)
    profile = _check_sender(wire, where, device_lookup, profiles)
    plan = column_plan(profile, tuple((s.name, s.unit) for s in wire.sensors))
    _check_columns_unique(plan.columns)
    return _judge_readings(msg, wire, plan, has_non_finite)


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


def _check_identity(wire: TelemetryMessage, where: DeviceTopic, msg: _Incoming) -> None:
    """Refuse a payload that speaks for another device than the topic's.

    The broker's access rules let an identity publish only under its own device's
    topic, so the topic names the sender; the dead letter names it too.
    """
    if wire.device_id != where.device_id:
        msg.device_id = where.device_id
        raise MessageRejected(
            "wrong_identity",
            f"device_id {wire.device_id!r} in the payload differs from {where.device_id!r} in the topic, "
            f"which only the identity of device {where.device_id!r} may publish on; a device speaks only "
            f"for itself (check which credentials this device was given)",
        )


def _check_sender(
    wire: TelemetryMessage,
    where: DeviceTopic,
    device_lookup: Callable[[str], Device | None],
    profiles: Mapping[str, ManufacturerProfile],
) -> ManufacturerProfile:
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
