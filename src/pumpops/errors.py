"""Every error pumpops raises, grouped by who is at fault.

Callers catch these, never the exceptions of the libraries underneath
(pydantic, pint, SQLAlchemy, paho-mqtt, ...): those are converted at the
boundary with ``raise ... from exc`` so the cause stays visible.

    PumpopsError
    ├── ConfigError         the operator's settings, profile or command line is wrong
    ├── InputError          data that arrived is wrong (a person or device must fix it)
    │   ├── UnitError       unknown unit, or a unit of the wrong dimension
    │   └── MessageRejected a telemetry message failed validation (has .reason)
    ├── NotFoundError       something asked for does not exist (device, sensor, ...)
    ├── IntegrityError      stored or received bytes do not match what they claim
    └── ServiceError        infrastructure failed: retrying later may succeed
        ├── StoreError      the database
        └── BrokerError     the MQTT broker
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "ConfigError",
    "InputError",
    "IntegrityError",
    "MessageRejected",
    "NotFoundError",
    "PumpopsError",
    "ServiceError",
    "StoreError",
    "UnitError",
]


class PumpopsError(Exception):
    """Base of every pumpops error."""


class ConfigError(PumpopsError):
    """Settings, a profile file or a command-line value is invalid."""


class InputError(PumpopsError):
    """Data that arrived (a message, a file, a reading) is invalid."""


class UnitError(InputError):
    """A unit is unknown, or its dimension does not fit the quantity."""


class MessageRejected(InputError):  # noqa: N818 - reads as a verdict: "except MessageRejected"
    """A telemetry message was rejected as a whole.

    Attributes:
        reason: a short, stable code (``malformed_json``, ``unknown_device``, ...)
            that dashboards and tests can match on.
        detail: a sentence a person can act on.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class NotFoundError(PumpopsError):
    """A device, sensor, profile or record that was asked for does not exist."""


class IntegrityError(PumpopsError):
    """Bytes do not match their recorded hash, signature or identity."""


class ServiceError(PumpopsError):
    """An external service failed; the operation may succeed if retried."""


class StoreError(ServiceError):
    """The database failed or is not reachable."""


class BrokerError(ServiceError):
    """The MQTT broker failed or is not reachable."""
