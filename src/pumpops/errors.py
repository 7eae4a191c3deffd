"""Every error pumpops raises, grouped by who is at fault.

Callers catch these, never the exceptions of the libraries underneath
(pydantic, pint, SQLAlchemy, paho-mqtt, ...): those are converted at the
boundary with ``raise ... from exc`` so the cause stays visible.

    PumpopsError
    ├── ConfigError         the operator's settings, profile or command line is wrong
    ├── InputError          data that arrived is wrong (a person or device must fix it)
    │   ├── UnitError       unknown unit, or a unit of the wrong dimension
    │   ├── MessageRejected a telemetry message failed validation (has .reason)
    │   └── IncompatibleBundleError a verified bundle this device cannot run (agent too old)
    ├── NotFoundError       something asked for does not exist (device, sensor, ...)
    ├── CheckFailed         a check ran and found failures (validation gates, audit chain)
    ├── IntegrityError      stored or received bytes do not match what they claim
    │   ├── TamperedArtifactError   a downloaded file's length or hash is not the signed one
    │   ├── UntrustedSignatureError metadata lacks a threshold of signatures by trusted keys
    │   ├── RollbackError           the repository offers older metadata than already seen
    │   ├── MixAndMatchError        metadata files from different moments of the repository
    │   ├── StaleMetadataError      signed metadata has expired (freeze, or a stopped publisher)
    │   ├── OversizedDownloadError  the repository sent more bytes than allowed (endless data)
    │   └── BundleMismatchError     a signed bundle's manifest contradicts its path or its files
    └── ServiceError        infrastructure failed: retrying later may succeed
        ├── StoreError      the database
        ├── BrokerError     the MQTT broker
        └── DownloadError   the update repository could not be reached or read
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "BundleMismatchError",
    "CheckFailed",
    "ConfigError",
    "DownloadError",
    "IncompatibleBundleError",
    "InputError",
    "IntegrityError",
    "MessageRejected",
    "MixAndMatchError",
    "NotFoundError",
    "OversizedDownloadError",
    "PumpopsError",
    "RollbackError",
    "ServiceError",
    "StaleMetadataError",
    "StoreError",
    "TamperedArtifactError",
    "UnitError",
    "UntrustedSignatureError",
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


class CheckFailed(PumpopsError):  # noqa: N818 - reads as a verdict: "except CheckFailed"
    """A check ran to its end and found failures (a validation gate, the audit chain)."""


class IntegrityError(PumpopsError):
    """Bytes do not match their recorded hash, signature or identity."""


class ServiceError(PumpopsError):
    """An external service failed; the operation may succeed if retried."""


class StoreError(ServiceError):
    """The database failed or is not reachable."""


class BrokerError(ServiceError):
    """The MQTT broker failed or is not reachable."""


# Update distribution (TUF). The repository is at fault:


class TamperedArtifactError(IntegrityError):
    """A downloaded target or metadata file does not have its signed length and hashes."""


class UntrustedSignatureError(IntegrityError):
    """Metadata is not signed by a threshold of the keys the trusted root names."""


class RollbackError(IntegrityError):
    """The repository offers metadata older than what this device has already seen."""


class MixAndMatchError(IntegrityError):
    """Metadata files come from different moments of the repository (versions do not agree)."""


class StaleMetadataError(IntegrityError):
    """Signed metadata has expired: a freeze attack, or a hub that stopped re-signing."""


class OversizedDownloadError(IntegrityError):
    """The repository sent more bytes than the signed or configured length allows."""


class BundleMismatchError(IntegrityError):
    """A signed bundle's manifest contradicts its path (group, target, version) or its files."""


# The device is at fault (too old for the bundle):


class IncompatibleBundleError(InputError):
    """A verified bundle needs a newer agent (or other target) than this device has."""


# The network or the mirror is at fault:


class DownloadError(ServiceError):
    """The update repository (URL or folder) could not be reached or a file could not be read."""
