"""``pumpops demo``: the whole loop on embedded defaults, and its report.

``_loop`` runs the loop demo (the story: train, release, roll out, drift, retrain,
block a bad candidate, verify the audit), ``_telemetry`` the telemetry-only demo,
``_report`` writes the offline HTML report. Uses only the parts' public APIs
(their ``__init__`` names); the command is ``pumpops.cli.demo``.
"""

from __future__ import annotations

from pumpops.demo._loop import LoopOptions, loop_verdict, run_loop_demo
from pumpops.demo._telemetry import DemoOptions, run_demo

__all__ = ["DemoOptions", "LoopOptions", "loop_verdict", "run_demo", "run_loop_demo"]
