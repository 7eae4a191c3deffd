"""No blind minutes after a restart: the last window and alarm state, saved and restored.

A model scores only full windows (``window_rows`` rows: 30 s to 2 min at 1 Hz for the
shipped recipes), so an agent that restarts with an empty window is blind until it has
refilled. The agent saves its window, the alarm logic's memory and the time of the last
row every ``agent.resume_save_interval_s`` (one small JSON file, ``resume.json``,
replaced atomically: about 20 kB for 120 rows x 8 sensors) and at a clean stop. On the
first row after a start it restores them when :func:`resume_refusal` finds nothing
against it: the same model (manifest hash) and calibration threshold, the same window
shape, and a gap between the saved last row and the new first row of at most
``agent.resume_max_age_s`` (in the readings' time). Otherwise it says why in its log
and reports ``warming_up`` until the window has refilled.
May import: ``_atomic``, the stdlib.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pumpops._atomic import write_atomic

__all__ = ["RESUME_FILE", "Resume", "load_resume", "resume_refusal", "save_resume"]

RESUME_FILE = "resume.json"
_FORMAT = "pumpops.resume/1"


@dataclass(frozen=True)
class Resume:
    """A saved window.

    Attributes:
        manifest_sha256: the model it was scored with.
        threshold: the calibration threshold in force.
        ts_ms: the time of its last row (the readings' clock).
        rows: the window, oldest row first, in the model's sensors and units.
        alarm: the alarm logic's state (``AlarmLogic.state``).
    """

    manifest_sha256: str
    threshold: float
    ts_ms: int
    rows: tuple[tuple[float, ...], ...]
    alarm: dict[str, Any]


def save_resume(folder: Path, resume: Resume) -> None:
    """Write ``resume.json`` atomically (fsynced)."""
    doc = {
        "format": _FORMAT,
        "manifest_sha256": resume.manifest_sha256,
        "threshold": resume.threshold,
        "ts_ms": resume.ts_ms,
        "rows": [list(r) for r in resume.rows],
        "alarm": resume.alarm,
    }
    write_atomic(folder / RESUME_FILE, json.dumps(doc, separators=(",", ":"), allow_nan=False).encode())


def load_resume(folder: Path) -> tuple[Resume | None, str | None]:
    """``(the saved window, None)``, or ``(None, why not)`` (no file, unreadable, malformed)."""
    path = folder / RESUME_FILE
    if not path.is_file():
        return None, "no saved window"
    try:
        doc = json.loads(path.read_bytes())
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise ValueError("not a pumpops.resume/1 file")
        rows = tuple(tuple(float(x) for x in row) for row in doc["rows"])
        if not rows or len({len(r) for r in rows}) != 1 or not all(math.isfinite(x) for r in rows for x in r):
            raise ValueError("rows are not a finite rectangle")
        alarm = doc["alarm"]
        if not isinstance(alarm, dict):
            raise ValueError("alarm is not an object")
        resume = Resume(str(doc["manifest_sha256"]), float(doc["threshold"]), int(doc["ts_ms"]), rows, alarm)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"{path} is unreadable ({exc})"
    return resume, None


def resume_refusal(
    resume: Resume,
    *,
    manifest_sha256: str,
    threshold: float,
    window_rows: int,
    n_sensors: int,
    first_ts_ms: int,
    max_age_s: float,
) -> str | None:
    """Why the saved window must not be used for the running model, or None when it may.

    >>> r = Resume("m", 1.0, 10_000, ((1.0, 2.0),) * 3, {})
    >>> ok = dict(manifest_sha256="m", threshold=1.0, window_rows=3, n_sensors=2, max_age_s=60)
    >>> resume_refusal(r, first_ts_ms=11_000, **ok) is None
    True
    >>> resume_refusal(r, first_ts_ms=80_000, **ok)
    'saved 70 s before the first new reading (more than agent.resume_max_age_s = 60 s)'
    """
    gap_ms = first_ts_ms - resume.ts_ms
    shape = (len(resume.rows), len(resume.rows[0]))
    rules = (
        (max_age_s <= 0, "agent.resume_max_age_s is 0 (never restore)"),
        (resume.manifest_sha256 != manifest_sha256, "saved with another model"),
        (not math.isclose(resume.threshold, threshold, rel_tol=1e-12), "saved with another calibration"),
        (
            shape != (window_rows, n_sensors),
            f"the saved window is {shape[0]} x {shape[1]}, the model's {window_rows} x {n_sensors}",
        ),
        (gap_ms <= 0, "the saved window is not older than the first new reading (clock went back)"),
        (
            gap_ms > max_age_s * 1000,
            f"saved {gap_ms / 1000:.0f} s before the first new reading "
            f"(more than agent.resume_max_age_s = {max_age_s:g} s)",
        ),
    )
    return next((reason for broken, reason in rules if broken), None)
