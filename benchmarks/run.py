"""Run every benchmark in this folder, one after the other, printing their tables.

``make bench`` calls this. Each ``benchmarks/<figure>.py`` is also runnable alone.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    scripts = sorted(p for p in HERE.glob("*.py") if not p.name.startswith(("_", "run")))
    failed = 0
    for script in scripts:
        print(f"\n## {script.name}\n", flush=True)
        failed += subprocess.call([sys.executable, str(script), *sys.argv[1:]]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
