"""How fast the command line answers (issue 11, friction 8): ``--help``, usage errors, a missing folder.

Run: ``.venv/bin/python benchmarks/cli_startup.py [--runs 7]`` (or ``make bench``); about 30 s.

Each case is a fresh ``python -m pumpops ...`` process (what a user waits
for), run ``--runs`` times; the table prints the median and the worst wall
time, and the ratio of the median to a bare interpreter that imports nothing
(``python -c pass``), measured in the same run as the baseline. A workspace is
created first in a temporary folder so that workspace commands get past the
workspace check.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

CASES: tuple[tuple[str, list[str]], ...] = (
    ("pumpops --help", ["--help"]),
    ("pumpops models list --help", ["models", "list", "--help"]),
    ("usage error: pumpops models show (no ref)", ["models", "show"]),
    ("validate x/1 --data <missing folder>", ["validate", "x/1", "--data", "/nonexistent/skab"]),
    ("not a workspace: models list in /", ["-w", "/", "models", "list"]),
    ("pumpops agent --help", ["agent", "--help"]),
)


def _time(argv: list[str], cwd: Path) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, check=False)
    return time.perf_counter() - start, proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        subprocess.run([sys.executable, "-m", "pumpops", "init", str(ws)], check=True, capture_output=True)
        base = [_time([sys.executable, "-c", "pass"], ws)[0] for _ in range(args.runs)]
        baseline = statistics.median(base)
        cpu = platform.processor() or platform.machine()
        print(f"# CLI start-up, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {cpu}")
        print(f"baseline `python -c pass`: median {baseline * 1000:.0f} ms over {args.runs} runs\n")
        print("| case | exit | median ms | worst ms | median / baseline |")
        print("|---|---|---|---|---|")
        for name, extra in CASES:
            times, codes = [], set()
            for _ in range(args.runs):
                seconds, code = _time([sys.executable, "-m", "pumpops", *extra], ws)
                times.append(seconds)
                codes.add(code)
            median = statistics.median(times)
            print(
                f"| {name} | {','.join(map(str, sorted(codes)))} | {median * 1000:.0f} | "
                f"{max(times) * 1000:.0f} | {median / baseline:.1f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
