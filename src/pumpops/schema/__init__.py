"""Canonical telemetry: sensor names, SI units, readings, batches, and the wire message.

May import: ``pumpops.errors``, pydantic, pint, numpy. Edge-safe.
"""

from pumpops.schema._sensors import CANONICAL_SENSORS, CanonicalSensor, canonical_sensor
from pumpops.schema._units import affine_to, check_unit, convert
from pumpops.schema._wire import (
    IDENT_PATTERN,
    MAX_ROWS_PER_MESSAGE,
    MAX_SENSORS_PER_MESSAGE,
    SCHEMA_ID,
    DeadLetter,
    ReadingBatch,
    Rejection,
    TelemetryMessage,
    WireSensor,
)

__all__ = [
    "CANONICAL_SENSORS",
    "IDENT_PATTERN",
    "MAX_ROWS_PER_MESSAGE",
    "MAX_SENSORS_PER_MESSAGE",
    "SCHEMA_ID",
    "CanonicalSensor",
    "DeadLetter",
    "ReadingBatch",
    "Rejection",
    "TelemetryMessage",
    "WireSensor",
    "affine_to",
    "canonical_sensor",
    "check_unit",
    "convert",
]
