"""What the agent process costs the device: resident memory and CPU share, from ``/proc`` and ``os.times``.

The state report carries them (``process``), and the agent warns in its log when its
resident memory exceeds the memory budget of its target profile
(``budgets.max_peak_memory_mb``, e.g. 64 MB for ``armv7-controller``). Linux only
for memory (``/proc/self/status``); elsewhere the figures are None.
May import: the stdlib.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["CpuMeter", "memory_mib", "release_library_pages", "trim_heap"]

#: ``madvise`` advice: reclaim these pages now (Linux 5.4+).
MADV_PAGEOUT = 21


def memory_mib(status: Path = Path("/proc/self/status")) -> tuple[float | None, float | None]:
    """``(VmRSS, VmHWM)`` of this process in MiB (now, and the peak since it started); None if unknown.

    >>> rss, peak = memory_mib()
    >>> rss is None or 0 < rss <= peak
    True
    """
    try:
        text = status.read_text()
    except OSError:
        return None, None
    found: dict[str, float] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(rest.split()[0]) / 1024
    return found.get("VmRSS"), found.get("VmHWM")


def trim_heap() -> bool:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim``); False where there is none.

    Loading a model and calibrating it allocate and free batches of windows; glibc keeps
    freed heap pages resident (its mmap threshold grows after the first large free), so
    the agent calls this once after each model load and calibration.
    """
    try:
        import ctypes  # noqa: PLC0415 - only here; about 1.5 MiB resident

        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return False
    trim.argtypes = [ctypes.c_size_t]
    return bool(trim(0))


def release_library_pages(
    library: str = "onnxruntime", maps: Path = Path("/proc/self/maps")
) -> tuple[int, int]:
    """Let the kernel reclaim the resident code pages of ``library``'s shared objects now.

    Opening an onnxruntime session runs about 10 MiB of onnxruntime's code once (every CPU
    kernel registered, the graph optimisers); scoring afterwards runs a few hundred kB of
    it. Those pages are clean and file-backed, so the kernel could drop them under memory
    pressure anyway, but until it does they count in the process's resident memory. This
    asks for it at once (``madvise(MADV_PAGEOUT)`` on the library's read-only file mappings),
    after a model is opened; the pages scoring needs are read back on first use
    (``benchmarks/agent.py``: about 3 MiB). Nothing changes in what runs or what it computes.
    The kernel leaves pages alone that another process maps too (several processes using one
    onnxruntime install), and does nothing before Linux 5.4.

    Returns:
        ``(mappings advised, mappings refused)``; ``(0, 0)`` where there is no ``/proc`` or libc.
    """
    try:
        import ctypes  # noqa: PLC0415 - only here (trim_heap loads it as well)

        text = maps.read_text()
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):
        return 0, 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    advised = refused = 0
    for line in text.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or "w" in fields[1] or library not in Path(fields[5]).name:
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if madvise(start, end - start, MADV_PAGEOUT) == 0:
            advised += 1
        else:
            refused += 1
    return advised, refused


class CpuMeter:
    """This process's CPU time (all its threads, not its children) as a share of one core.

    :meth:`share` gives the percentage since the previous call (the first call: since
    the meter was made).
    """

    def __init__(self) -> None:
        self._at = time.monotonic()
        self._cpu = self._used()

    @staticmethod
    def _used() -> float:
        t = os.times()
        return t.user + t.system

    def share(self) -> float | None:
        """Percent of one core used since the last call; None if no time has passed."""
        now, cpu = time.monotonic(), self._used()
        wall = now - self._at
        if wall <= 0:
            return None
        percent = (cpu - self._cpu) / wall * 100.0
        self._at, self._cpu = now, cpu
        return round(percent, 2)
