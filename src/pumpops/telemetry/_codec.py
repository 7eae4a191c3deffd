"""The telemetry wire codec: ``encode`` for publishers, ``decode`` for the hub, and the JSON Schema.

:func:`decode` is a pure decision function: it takes the topic, the raw payload
bytes, a way to look a device up, the manufacturer profiles, the clock and the
limits, and returns what to store (a :class:`~pumpops.schema.ReadingBatch` in
canonical SI units) and what to dead-letter, with reasons a person can act on.
It does no I/O, so every rule below is tested without a broker or a database.

Two levels of rejection:

- **Whole message** (nothing stored, the raw payload is dead-lettered):
  ``wrong_topic``, ``payload_too_large``, ``malformed_json``, ``wrong_schema``,
  ``missing_field``, ``unexpected_field``, ``invalid_field``,
  ``ragged_values``, ``wrong_identity``, ``unknown_device``,
  ``site_mismatch``, ``unknown_profile``, ``duplicate_sensor``.
- **Readings** (the rest is stored; ONE dead letter for the message lists every
  reason with counts and examples): ``unknown_sensor``, ``unknown_unit``,
  ``wrong_unit``, ``non_finite``, ``out_of_range``, ``future_timestamp``,
  ``stale_timestamp``, ``duplicate_timestamp``, ``out_of_order``.

A reading is a non-null cell. Each rejected reading is counted under the first
reason that applies, in the order column (sensor, unit), row (timestamp), cell
(non-finite, range), so ``stored + rejected == readings in the message``.
``docs/protocol.md`` lists every code with an example.

Where it lives: encoding, the JSON Schema, the reason codes and the decode
types here; :func:`decode` and the message-level checks in ``_decode``; the
reading-level checks (columns, units, timestamps, ranges) in ``_decode_readings``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import orjson

from pumpops.schema import (
    SCHEMA_ID,
    DeadLetter,
    ReadingBatch,
    TelemetryMessage,
)

if TYPE_CHECKING:
    from pumpops.settings import IngestSettings
    from pumpops.sources import Channel, Frame

__all__ = [
    "READING_REASONS",
    "WHOLE_MESSAGE_REASONS",
    "DecodeLimits",
    "DecodeResult",
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
    "wrong_identity",
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


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Bounds a message must respect; see :class:`pumpops.settings.IngestSettings`.

    Attributes:
        max_payload_bytes: larger payloads are rejected before parsing (bytes).
        max_future_skew_s: readings further ahead of the hub's clock are rejected (seconds).
        max_past_age_s: readings older than this are rejected (seconds).
        max_seq_jump: an agent message's sequence number may exceed its device's
            stored maximum by at most this much (sequence numbers).
    """

    max_payload_bytes: int = 256 * 1024  # bytes
    max_future_skew_s: float = 300.0  # seconds
    max_past_age_s: float = 5 * 365 * 86_400.0  # seconds
    max_seq_jump: int = 1_000_000  # sequence numbers

    @classmethod
    def from_settings(cls, ingest: IngestSettings) -> DecodeLimits:
        """Take the limits from the ingest settings."""
        return cls(
            max_payload_bytes=ingest.max_payload_bytes,
            max_future_skew_s=ingest.max_future_skew_s,
            max_past_age_s=ingest.max_past_age_s,
            max_seq_jump=ingest.max_seq_jump,
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
