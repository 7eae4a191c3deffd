"""The ``pumpops`` command: one entry point with a sub-command for every part.

Each part adds its own commands in ``pumpops/<part>/_cli.py``; this module
only builds the root, handles global options and turns pumpops errors into a
clear message and a non-zero exit code instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.text import Text

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
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
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


@app.command("demo")
def demo_cmd(
    workspace: Path = typer.Option(Path("demo-workspace"), help="Folder for the demo's database and files."),
    devices: int = typer.Option(9, min=3, max=300, help="Pumps in the fleet (the makes take turns)."),
    hours: float = typer.Option(6.0, min=0.1, max=72.0, help="Simulated hours of telemetry, ending now."),
    seed: int = typer.Option(7, min=0, help="Seed of everything random."),
) -> None:
    """Run the telemetry path end to end on embedded defaults and show what was stored.

    Simulated pumps of three makes publish to an in-process MQTT broker; the
    ingest service validates, converts to SI units and stores in SQLite; a few
    bad messages show the dead-letter table. Needs no running service.
    """
    from pumpops._demo import DemoOptions, run_demo

    run_demo(DemoOptions(workspace=workspace, devices=devices, hours=hours, seed=seed))


def _register_parts() -> None:
    from pumpops.audit import _cli as audit_cli
    from pumpops.hub import _cli as hub_cli
    from pumpops.pipeline import _cli as pipeline_cli
    from pumpops.pipeline import _cli_benchmark as benchmark_cli
    from pumpops.registry import _cli as registry_cli
    from pumpops.release import _cli as release_cli
    from pumpops.release import _cli_tuf as tuf_cli
    from pumpops.sim import _cli as sim_cli
    from pumpops.sources import _cli as sources_cli
    from pumpops.store import _cli as store_cli
    from pumpops.telemetry import _cli as telemetry_cli
    from pumpops.validation import _cli as validation_cli

    parts = (
        store_cli,
        telemetry_cli,
        sim_cli,
        sources_cli,
        pipeline_cli,
        benchmark_cli,
        registry_cli,
        validation_cli,
        audit_cli,
        release_cli,
        tuf_cli,
        hub_cli,
    )
    for module in parts:
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
        # Text, not markup: messages quote units such as "[length]" that rich would eat
        err_console.print(Text.assemble(("error: ", "bold red"), str(exc)), highlight=False)
        raise SystemExit(code) from None
