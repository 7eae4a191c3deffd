"""Command-line commands of the device agent: ``pumpops agent run|recalibrate|status``.

May import: typer, ``pumpops.edge`` and its edge-safe dependencies only (the
agent's install has no hub libraries); heavy modules load inside commands.
"""

from __future__ import annotations

import typer

__all__ = ["agent_app", "register"]

agent_app = typer.Typer(
    help="The device agent: detects faults on the pump, updates itself, works offline.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add ``agent`` to the root ``pumpops`` command."""
    app.add_typer(agent_app, name="agent")
