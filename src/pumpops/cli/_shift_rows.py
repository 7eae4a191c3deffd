"""Rows and JSON of the shift verdicts for ``pumpops drift status`` (split from ``monitoring.py``).

May import: ``pumpops.cli._support`` and the standard library (verdicts are read by attribute).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pumpops.cli._support import format_time

if TYPE_CHECKING:
    from pumpops.monitoring import GroupShift

__all__ = ["device_shift_json", "device_shift_row", "group_shift_row", "group_shift_words", "shift_json"]


def _time(ms: int) -> str:
    return format_time(ms * 1000, zulu=True)


def group_shift_words(shift: GroupShift | None) -> dict[str, Any]:
    """The shift verdict's words over the drift-word verdict's, when the group's devices sent shift tests."""
    if shift is None:
        return {}
    return {
        "drifting": shift.verdict == "drift",
        "verdict": shift.verdict,
        "reason": shift.reason,
        "drifting_devices": sorted(d for d, v in shift.devices.items() if v == "group_drift"),
    }


def shift_json(shift: GroupShift | None) -> dict[str, Any] | None:
    return None if shift is None else shift.to_dict()


def group_shift_row(shift: GroupShift | None) -> dict[str, Any]:
    if shift is None:
        return {}

    def having(word: str) -> str:
        return " ".join(sorted(d for d, v in shift.devices.items() if v == word))

    return {
        "verdict": shift.verdict,
        "drifting": having("group_drift"),
        "shared": ", ".join(f"{s} ({len(ids)})" for s, ids in shift.shared.items()),
        "since": ", ".join(f"{s} {_time(ms)}" for s, ms in shift.since_ms.items()),
        "local": having("device_local"),
        "faults": having("fault"),
        "reason": shift.reason,
    }


def device_shift_json(shift: GroupShift | None, device_id: str) -> dict[str, Any] | None:
    if shift is None or device_id not in shift.devices:
        return None
    evidence = shift.evidence.get(device_id)
    return {
        "verdict": shift.devices[device_id],
        "action": shift.action(device_id),
        **(evidence.to_dict() if evidence is not None else {}),
    }


def device_shift_row(shift: GroupShift | None, device_id: str) -> dict[str, Any]:
    if shift is None or device_id not in shift.devices:
        return {"shift": None, "sensors": None, "since": None}
    e = shift.evidence.get(device_id)
    sensors = e.confirmed or e.shifted if e is not None else ()
    sd = e.shift_sd if e is not None else {}
    since = e.since_ms if e is not None else {}
    return {
        "shift": shift.devices[device_id],
        "sensors": ", ".join(f"{s} {sd[s]:+.1f} sd" if s in sd else s for s in sensors),
        "since": _time(min(since.values())) if since else None,
    }
