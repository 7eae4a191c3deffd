"""The hub's signed intent for a device group: a pinned version and a rollback floor.

Signed into the group's TUF targets role as the custom field
``x-pumpops-intent`` (:data:`INTENT_FIELD`) by :meth:`TufRepository.set_intent
<pumpops.release._tuf.TufRepository.set_intent>`. The edge reads the same
field (``pumpops.edge._updater``) from metadata it has verified: an MQTT
``desired`` message is only a hint, this is the hub's word.
May import: errors, the stdlib.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pumpops.errors import ConfigError, IntegrityError

__all__ = ["INTENT_FIELD", "UpdateIntent", "version_key"]

#: The custom field of a targets role carrying the hub's signed intent, per group (the edge reads it).
INTENT_FIELD = "x-pumpops-intent"


def version_key(label: str, text: str) -> tuple[int, ...]:
    """A version as comparable integers; ``label`` names it in the error.

    Raises:
        ConfigError: not dotted whole numbers.

    >>> version_key("pinned version", "1.10") > version_key("pinned version", "1.9")
    True
    """
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        raise ConfigError(f"{label} {text!r} must be dotted whole numbers, e.g. 3 or 1.2") from None


@dataclass(frozen=True)
class UpdateIntent:
    """What the hub chose for a device group, signed into the group's targets metadata.

    Attributes:
        pinned: the group runs exactly this version (a signed rollback or hold), or
            None: the newest signed version (an MQTT ``desired`` may name a newer one).
        rollback_floor: no device of the group installs a version below this one, or None.
        issued: when the hub signed it (ISO 8601, UTC; empty: never signed).
        reason: why, for whoever reads the metadata.

    >>> UpdateIntent(pinned="2", issued="2026-12-07T05:00:00Z").to_dict()["pinned"]
    '2'
    """

    pinned: str | None = None
    rollback_floor: str | None = None
    issued: str = ""
    reason: str = ""

    def __post_init__(self) -> None:
        for label, value in (("pinned version", self.pinned), ("rollback floor", self.rollback_floor)):
            if value is not None:
                version_key(label, value)
        if (
            self.pinned is not None
            and self.rollback_floor is not None
            and version_key("pinned version", self.pinned)
            < version_key("rollback floor", self.rollback_floor)
        ):
            raise ConfigError(
                f"pinned version {self.pinned} is below the rollback floor {self.rollback_floor}: "
                "lower the floor first or pin a newer version"
            )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored in the targets role."""
        return {
            "pinned": self.pinned,
            "rollback_floor": self.rollback_floor,
            "issued": self.issued,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UpdateIntent:
        """Read a stored intent.

        Raises:
            IntegrityError: not an intent object.
        """
        try:
            pinned, floor = data.get("pinned"), data.get("rollback_floor")
            return cls(
                pinned=None if pinned is None else str(pinned),
                rollback_floor=None if floor is None else str(floor),
                issued=str(data.get("issued", "")),
                reason=str(data.get("reason", "")),
            )
        except (AttributeError, ConfigError) as exc:
            raise IntegrityError(f"the signed intent {data!r} is malformed: {exc}") from exc
