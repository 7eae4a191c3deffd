"""The ``pumpops`` command: every command of every part, in one package.

``_root`` builds the root command (global options, the exit-code scheme, the
edge install's hub panel); ``_support`` is the shared vocabulary (output
formats, durations, times, the workspace check); ``pumpops.hub``'s wiring builds the
store, registry, event sink and services from the settings; one module per part holds
that part's commands (``pumpops.cli.<part>``, each with ``register(app)``).
Nothing outside this package imports from it.
"""

from __future__ import annotations

from pumpops.cli._root import app, run

__all__ = ["app", "main"]


def main() -> None:
    """Run the command line (the ``pumpops`` console script, ``python -m pumpops``)."""
    run(app)
