"""The telemetry wire message and its decoded, canonical form.

On the wire (JSON, QoS 1, topic ``pumpops/v1/<site>/<device_id>/telemetry``) a
message is columnar: one list of sensors with their declared units, one list of
timestamps, and one row of values per timestamp. Sensor names may be the
device's native names (mapped through its manufacturer profile) or canonical
names. ``docs/protocol.md`` and ``telemetry/telemetry.schema.json`` describe it
for people and for other languages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pumpops.schema._sensors import IDENT_PATTERN

SCHEMA_ID = "pumpops.telemetry/1"

#: Identifiers allowed for devices, sites and message ids (``IDENT_PATTERN``, defined in ``_sensors``
#: so that the device agent has it without pydantic): safe in MQTT topics, file names and SQL.

Ident = Annotated[str, StringConstraints(pattern=IDENT_PATTERN)]
MsgId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]

MAX_SENSORS_PER_MESSAGE = 64
MAX_ROWS_PER_MESSAGE = 10_000


class WireSensor(BaseModel):
    """One column of a message: a sensor name and the unit its values are in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    unit: Annotated[str, StringConstraints(min_length=1, max_length=32)]


class TelemetryMessage(BaseModel):
    """A batch of readings from one device, as sent on the wire.

    ``values[i][j]`` is the reading of ``sensors[j]`` at ``ts_ms[i]``;
    ``null`` means the sensor was not sampled at that instant.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_id: Literal["pumpops.telemetry/1"] = Field(alias="schema")
    msg_id: MsgId
    device_id: Ident
    sent_at_ms: int | None = None
    sensors: list[WireSensor] = Field(min_length=1, max_length=MAX_SENSORS_PER_MESSAGE)
    ts_ms: list[int] = Field(min_length=1, max_length=MAX_ROWS_PER_MESSAGE)
    values: list[list[float | None]] = Field(min_length=1, max_length=MAX_ROWS_PER_MESSAGE)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why some readings, or a whole message, were not stored.

    Attributes:
        reason: a short, stable code (``nan_value``, ``out_of_range``, ...).
        detail: a sentence a person can act on.
        count: how many readings it concerns (0 for a whole-message reason).
    """

    reason: str
    detail: str
    count: int = 0


@dataclass(frozen=True, slots=True)
class ReadingBatch:
    """Validated readings of one message, in canonical sensors and SI units.

    Attributes:
        device_id: the device that sent them.
        msg_id: the message id, unique per device (the idempotency key).
        payload_sha256: hex digest of the raw payload, to tell a redelivery
            from a different message that reuses an id.
        ts_us: shape ``(M,)`` int64, microseconds since the Unix epoch (UTC).
        sensors: ``N`` canonical sensor names, all different.
        values: shape ``(M, N)`` float64 in SI units; NaN means "no reading".
        received_at_us: when the hub received the message.
    """

    device_id: str
    msg_id: str
    payload_sha256: str
    ts_us: np.ndarray
    sensors: tuple[str, ...]
    values: np.ndarray
    received_at_us: int
    rejections: tuple[Rejection, ...] = field(default=())

    @property
    def n_readings(self) -> int:
        """Number of readings present (cells that are not NaN)."""
        return int(np.count_nonzero(~np.isnan(self.values)))


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message, or part of one, that was not stored, with the reason why.

    The raw payload is kept byte for byte so the message can be replayed once
    the cause (a missing device registration, a wrong profile) is fixed.
    """

    topic: str
    payload: bytes
    reason: str
    detail: str
    received_at_us: int
    device_id: str | None = None
    msg_id: str | None = None
