"""The process's resident memory and its resettable high-water mark, read from ``/proc`` (Linux).

Validation and packaging both measure the peak memory of a fresh onnxruntime
session: reset the high-water mark (:func:`reset_peak_rss`), build and run
the session, read ``VmHWM`` (:func:`rss_kib`). Elsewhere both return "not
available" and the callers fall back.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["reset_peak_rss", "rss_kib"]


def rss_kib(field_name: str) -> int | None:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in KiB, or None where unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the process's ``VmHWM`` to its current RSS; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True
