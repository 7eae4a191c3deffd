"""The ``pumpops`` command: one entry point with a sub-command for every part.

Each part adds its own commands in ``pumpops/<part>/_cli.py``; this module
only builds the root, handles global options and turns pumpops errors into a
clear message and a non-zero exit code instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pumpops import __version__
from pumpops._cli_support import WorkspaceOption, err_console
from pumpops.errors import ConfigError, InputError, PumpopsError, ServiceError
from pumpops.settings import EMBEDDED_BROKER, init_workspace, load_settings

app = typer.Typer(
    name="pumpops",
    help="MLOps for predictive maintenance on IoT edge fleets of pumps.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pumpops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    workspace: WorkspaceOption = None,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """MLOps for predictive maintenance on IoT edge fleets of pumps."""
    ctx.obj = {"workspace": workspace}


@app.command("init")
def init_cmd(
    folder: Path = typer.Argument(Path("."), help="Folder to create the workspace in."),
    database_url: str = typer.Option("", help="Database URL (default: SQLite in the workspace)."),
    broker_url: str = typer.Option(EMBEDDED_BROKER, help="'embedded' or mqtt://host:port."),
) -> None:
    """Create a workspace: a folder with a pumpops.toml, and its database schema."""
    from pumpops.store import open_store

    path = init_workspace(folder, database_url=database_url, broker_url=broker_url)
    settings = load_settings(folder)
    with open_store(settings.resolved_database_url) as store:
        store.upgrade()
    typer.echo(f"created {path}; database {settings.resolved_database_url} is at the newest schema")


def _register_parts() -> None:
    from pumpops.sim import _cli as sim_cli
    from pumpops.sources import _cli as sources_cli
    from pumpops.store import _cli as store_cli
    from pumpops.telemetry import _cli as telemetry_cli

    for module in (store_cli, telemetry_cli, sim_cli, sources_cli):
        module.register(app)


_register_parts()

_EXIT_CODES: tuple[tuple[type[PumpopsError], int], ...] = (
    (ConfigError, 2),
    (InputError, 3),
    (ServiceError, 4),
    (PumpopsError, 1),
)


def main() -> None:
    """Run the command line; pumpops errors become a message and an exit code."""
    try:
        app()
    except PumpopsError as exc:
        code = next(code for kind, code in _EXIT_CODES if isinstance(exc, kind))
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        raise SystemExit(code) from None
