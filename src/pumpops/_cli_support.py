"""Small helpers shared by the parts' command-line modules (``<part>/_cli.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from pumpops.errors import ConfigError
from pumpops.settings import Settings, load_settings

console = Console()
err_console = Console(stderr=True)

WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace folder (default: $PUMPOPS_WORKSPACE or the current directory).",
        show_default=False,
    ),
]


def settings_from(ctx: typer.Context, **overrides: Any) -> Settings:
    """Load settings for the workspace given to the root command, with overrides."""
    workspace = (ctx.obj or {}).get("workspace") if ctx is not None else None
    root = ctx.find_root() if ctx is not None else None
    if workspace is None and root is not None:
        workspace = (root.obj or {}).get("workspace")
    settings = load_settings(workspace, **overrides)
    if not settings.workspace.is_dir():
        raise ConfigError(
            f"workspace folder {settings.workspace} does not exist; "
            f"create it with `pumpops init {settings.workspace}`"
        )
    return settings
