"""Signed recalibration orders: the hub's word that one device should recommission (tier 1 of issue 15).

A device-local level shift (a sensor recalibrated on site, a pump moved to a
new operating point) is answered by recalibrating that device, not by
retraining its group. The hub signs the order into the group's TUF targets
role, beside the update intent, as the custom field ``x-pumpops-recalibrate``
(:data:`RECALIBRATE_FIELD`): ``{"<group>": {"<device>": {order, issued,
expires, reason, evidence}}}``. The agent reads it from metadata it has
verified at its update check and recommissions (gathers a new normal period)
only when the order names it, is newer than the last one it followed, and has
not expired (``pumpops.edge._recalibration``): an MQTT message alone never
makes it recalibrate, a replayed or expired order is refused with its reason.

``order`` counts per device (1, 2, ...): it is how the agent tells a new order
from one it already followed. ``expires`` bounds how long an order stays
good, so a device set up later (no memory of orders) does not act on an old one.
May import: errors, settings, ``_tuf``, ``_publish`` (keys, audit), the stdlib.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pumpops.errors import ConfigError, IntegrityError, NotFoundError

if TYPE_CHECKING:
    from securesystemslib.signer import Signer

    from pumpops.release._tuf import TufRepository
    from pumpops.settings import Settings

__all__ = [
    "RECALIBRATE_FIELD",
    "RecalibrationOrder",
    "recalibration_orders",
    "set_recalibration",
    "sign_recalibration",
]

#: The custom field of a group's targets role carrying the signed recalibration orders (the edge reads it).
RECALIBRATE_FIELD = "x-pumpops-recalibrate"

_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


@dataclass(frozen=True)
class RecalibrationOrder:
    """One signed order for one device.

    Attributes:
        device_id: the device that recommissions.
        order: its number for this device (1, 2, ...): the agent follows each number once.
        issued: when the hub signed it (ISO 8601, UTC).
        expires: after this the agent refuses it (ISO 8601, UTC).
        reason: why, for whoever reads the metadata.
        evidence: what chose it (the shift verdict: sensors, sizes, since), JSON-able; stored
            in canonical JSON, which has no floats: a fraction is kept as its text (``"8.25"``).

    >>> RecalibrationOrder("p-1", 2, "2026-12-07T05:00:00Z", "2026-12-08T05:00:00Z").to_dict()["order"]
    2
    """

    device_id: str
    order: int
    issued: str
    expires: str
    reason: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored under the device's id."""
        return {
            "order": self.order,
            "issued": self.issued,
            "expires": self.expires,
            "reason": self.reason,
            "evidence": _canonical(dict(self.evidence)),
        }

    @classmethod
    def from_dict(cls, device_id: str, data: object) -> RecalibrationOrder:
        """Read a stored order.

        Raises:
            IntegrityError: not an order object.
        """
        if not isinstance(data, Mapping):
            raise IntegrityError(f"the signed recalibration order for {device_id} is not an object: {data!r}")
        order = data.get("order")
        if not isinstance(order, int) or isinstance(order, bool) or order < 1:
            raise IntegrityError(f"the signed recalibration order for {device_id} has no order number >= 1")
        evidence = data.get("evidence")
        return cls(
            device_id,
            order,
            str(data.get("issued", "")),
            str(data.get("expires", "")),
            str(data.get("reason", "")),
            dict(evidence) if isinstance(evidence, Mapping) else {},
        )


def _canonical(value: Any) -> Any:
    """``value`` as TUF's canonical JSON takes it: floats as their text, non-finite ones as None.

    >>> _canonical({"shift_sd": {"flow": 8.25}, "n": 3, "bad": float("nan")})
    {'shift_sd': {'flow': '8.25'}, 'n': 3, 'bad': None}
    """
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def _stored(repo: TufRepository, group: str) -> tuple[Any, Any, str, dict[str, Any]]:
    top, md, role = repo._intent_role(group)  # the same role the group's intent lives in
    stored = md.signed.unrecognized_fields.get(RECALIBRATE_FIELD) or {}
    if not isinstance(stored, dict):
        raise IntegrityError(f"the role {role} holds a malformed {RECALIBRATE_FIELD}: {stored!r}")
    return top, md, role, stored


def recalibration_orders(repo: TufRepository, group: str) -> dict[str, RecalibrationOrder]:
    """The signed orders of ``group``'s devices, by device id (empty: none signed).

    Raises:
        ConfigError: the group's name is invalid.
        IntegrityError: the stored field is malformed.
    """
    _, _, _, stored = _stored(repo, group)
    per_device = stored.get(group) or {}
    if not isinstance(per_device, dict):
        raise IntegrityError(f"{RECALIBRATE_FIELD} for group {group} is not an object: {per_device!r}")
    return {d: RecalibrationOrder.from_dict(d, v) for d, v in per_device.items()}


def set_recalibration(
    repo: TufRepository,
    group: str,
    device_ids: Sequence[str],
    signers: Mapping[str, Sequence[Signer]],
    *,
    reason: str,
    evidence: Mapping[str, Mapping[str, Any]] | None = None,
    ttl_s: float = 86_400.0,
) -> dict[str, RecalibrationOrder]:
    """Sign a new order for each of ``device_ids`` into ``group``'s role, then snapshot and timestamp.

    Each device's order number is one more than its last; the other devices' orders stay.

    Args:
        repo: the hub's repository.
        group: the devices' group.
        device_ids: the devices to recalibrate (at least one).
        signers: the online signers per role (targets, snapshot, timestamp).
        reason: why (stored in the order).
        evidence: per device, what chose it (stored in its order).
        ttl_s: the orders expire this long after signing.

    Returns:
        The orders as signed, by device id.

    Raises:
        ConfigError: no device, a malformed device id, or a bad group name.
    """
    if not device_ids:
        raise ConfigError("name at least one device to recalibrate")
    for device in device_ids:
        if not _DEVICE.match(device):
            raise ConfigError(f"device id {device!r} is not a device id (letters, digits, . _ : -)")
    if ttl_s <= 0:
        raise ConfigError(f"a recalibration order must live a positive time, not {ttl_s:g} s")
    top, md, role, stored = _stored(repo, group)
    fields = dict(stored)
    per_device = dict(fields.get(group) or {})
    now = repo._clock()
    issued = now.isoformat().replace("+00:00", "Z")
    expires = (now + timedelta(seconds=ttl_s)).isoformat().replace("+00:00", "Z")
    signed: dict[str, RecalibrationOrder] = {}
    for device in sorted(set(device_ids)):
        last = per_device.get(device)
        number = 1 if last is None else RecalibrationOrder.from_dict(device, last).order + 1
        order = RecalibrationOrder(
            device, number, issued, expires, reason, dict((evidence or {}).get(device, {}))
        )
        per_device[device] = order.to_dict()
        signed[device] = order
    fields[group] = per_device
    md.signed.unrecognized_fields[RECALIBRATE_FIELD] = fields
    changed = {role: md}
    if role != "targets":
        delegations = top.signed.delegations
        if delegations is None or delegations.roles is None or group not in delegations.roles:
            repo._delegate(top, group, signers["targets"])
            changed["targets"] = top
    repo._commit(changed, signers)
    return signed


def sign_recalibration(
    settings: Settings,
    group: str,
    device_ids: Sequence[str],
    *,
    reason: str,
    actor: str,
    evidence: Mapping[str, Mapping[str, Any]] | None = None,
    store: Any | None = None,
) -> dict[str, RecalibrationOrder]:
    """Sign recalibration orders with the workspace's online keys; audit each one.

    The audit entry is ``release.recalibration_signed`` on ``device/<id>`` with the order and its evidence.

    Every device must be registered in ``group`` when a store is at hand (a typo
    never signs an order nobody follows). The order lives
    ``retrain.recalibration_ttl_s``.

    Raises:
        NotFoundError: no repository, or a device is not registered in the group.
        ConfigError: a bad group name or device id.
    """
    from pumpops.release._publish import (  # noqa: PLC0415 - python-tuf on first use
        _record,
        keystore,
        online_signers,
        open_repository,
    )

    if store is not None:
        known = {d.device_id for d in store.devices() if d.group == group}
        missing = sorted(set(device_ids) - known)
        if missing:
            raise NotFoundError(f"device(s) {missing} are not registered in group {group!r}")
    repo = open_repository(settings)
    signed = set_recalibration(
        repo,
        group,
        device_ids,
        online_signers(keystore(settings)),
        reason=reason,
        evidence=evidence,
        ttl_s=settings.retrain.recalibration_ttl_s,
    )
    snapshot = repo.timestamp().signed.snapshot_meta.version
    for device, order in signed.items():
        payload = {**order.to_dict(), "group": group, "snapshot_version": snapshot}
        _record(settings, store, actor, f"device/{device}", payload, action="release.recalibration_signed")
    return signed
