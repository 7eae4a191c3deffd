"""Command-line commands of ``pumpops.sources``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root ``pumpops`` command."""
