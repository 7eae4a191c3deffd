"""The root of the ``pumpops`` command: global options, the parts' commands, exit codes.

Every command lives in this package, one module per part (``pumpops.cli.<part>``,
each with ``register(app)``); this module builds the root, handles global
options and turns pumpops errors into a clear message and a non-zero exit code
instead of a traceback (:func:`run`).

The root starts on the edge install too (``pip install "pumpops[edge]"``, no
hub library): there the hub's commands are listed under their own heading,
and running one says which install it needs (see :mod:`pumpops._install`).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import typer
from rich.markup import escape
from rich.text import Text
from typer.models import CommandInfo, TyperInfo

from pumpops import __version__
from pumpops._install import HUB_INSTALL, hub_library, missing_hub_libraries
from pumpops.cli._support import EXIT_CODES_HELP, ExitCode, WorkspaceOption, err_console
from pumpops.errors import (
    CheckFailed,
    ConfigError,
    InputError,
    IntegrityError,
    NotFoundError,
    PumpopsError,
    ServiceError,
)

app = typer.Typer(
    name="pumpops",
    help="MLOps for predictive maintenance on IoT edge fleets of pumps.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
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
    # Resolved once, here: every command and every child process sees the same absolute folder.
    ctx.obj = {"workspace": workspace.resolve() if workspace is not None else None}


@app.command("init")
def init_cmd(
    folder: Path = typer.Argument(Path("."), help="Folder to create the workspace in."),
    database_url: str = typer.Option("", help="Database URL (default: SQLite in the workspace)."),
    broker_url: str = typer.Option("embedded", help="'embedded' or mqtt://host:port."),
) -> None:
    """Create a workspace: a folder with a pumpops.toml, and its database schema."""
    from pumpops.settings import init_workspace, load_settings
    from pumpops.store import open_store

    folder = folder.resolve()
    path = init_workspace(folder, database_url=database_url, broker_url=broker_url)
    settings = load_settings(folder)
    with open_store(settings.resolved_database_url) as store:
        store.upgrade()
    typer.echo(f"created {path}; database {settings.resolved_database_url} is at the newest schema")


#: Each part's command-line module (it has ``register(app)``), and whether its
#: commands need the hub install; the edge install has only the others.
_PARTS: tuple[tuple[str, bool], ...] = (
    ("pumpops.cli.demo", True),
    ("pumpops.cli.store", True),
    ("pumpops.cli.telemetry", True),
    ("pumpops.cli.sim", False),
    ("pumpops.cli.sources", False),
    ("pumpops.cli.agent", False),
    ("pumpops.cli.pipeline", True),
    ("pumpops.cli.pipeline_groups", True),  # after pipeline: it adds run-groups to that group
    ("pumpops.cli.benchmark", True),
    ("pumpops.cli.tune", True),
    ("pumpops.cli.registry", True),
    ("pumpops.cli.validation", True),
    ("pumpops.cli.audit", True),
    ("pumpops.cli.release", True),
    ("pumpops.cli.release_tuf", True),
    ("pumpops.cli.rollout", True),
    ("pumpops.cli.hub", True),
    ("pumpops.cli.tokens", True),
    ("pumpops.cli.monitoring", True),
    ("pumpops.cli.retrain", True),
    ("pumpops.cli.devices", True),
    ("pumpops.cli.broker", True),
)

#: The help heading of the hub's commands when the hub libraries are not installed.
HUB_PANEL = f"Hub commands (need {escape(HUB_INSTALL)})"  # escaped: the heading is rich markup


def _registered() -> list[CommandInfo | TyperInfo]:
    return [*app.registered_commands, *app.registered_groups]


def _register_parts() -> None:
    edge_ids: set[int] = set()
    for module_name, needs_hub in _PARTS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if needs_hub and hub_library(exc) is not None:
                continue  # an edge install: this part's commands are absent
            raise
        known = {id(info) for info in _registered()}
        module.register(app)
        if not needs_hub:
            edge_ids |= {id(info) for info in _registered()} - known
    if missing_hub_libraries():
        for info in _registered():
            if id(info) not in edge_ids:  # init, demo and the hub parts' commands
                info.rich_help_panel = HUB_PANEL


_register_parts()

_EXIT_CODES: tuple[tuple[type[PumpopsError], ExitCode], ...] = (
    (ConfigError, ExitCode.USAGE),
    (InputError, ExitCode.BAD_INPUT),
    (NotFoundError, ExitCode.NOT_FOUND),
    (ServiceError, ExitCode.UNREACHABLE),
    (CheckFailed, ExitCode.FAILED),
    (IntegrityError, ExitCode.FAILED),
    (PumpopsError, ExitCode.FAILED),
)


def _install_sigterm() -> None:
    """SIGTERM ends a command like Ctrl-C does: cleanup runs, exit code 130."""
    import signal

    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise)


def _say_interrupted() -> None:
    err_console.print(Text.assemble(("interrupted", "bold red"), ": the command stopped (exit 130)"))


def run(command: typer.Typer) -> None:
    """Run ``command`` (the root app); pumpops errors become a message and an exit code."""
    _install_sigterm()
    try:
        try:
            command()
        except ModuleNotFoundError as exc:
            library = hub_library(exc)
            if library is None:
                raise
            # a hub command run on the edge install: its imports load inside the command
            raise ConfigError(
                f"this command needs the hub install: {HUB_INSTALL} ({library} is not installed)"
            ) from exc
    except KeyboardInterrupt:
        # Ctrl-C (and SIGTERM, see _install_sigterm) stops any command; commands register
        # and release only at their end, so nothing half-done is left behind.
        _say_interrupted()
        raise SystemExit(ExitCode.INTERRUPTED) from None
    except SystemExit as exc:
        if exc.code == ExitCode.INTERRUPTED:  # typer turns an interrupt inside a command into exit 130
            _say_interrupted()
        raise
    except PumpopsError as exc:
        code = next(code for kind, code in _EXIT_CODES if isinstance(exc, kind))
        # Text, not markup: messages quote units such as "[length]" that rich would eat
        err_console.print(Text.assemble(("error: ", "bold red"), str(exc)), highlight=False)
        raise SystemExit(code) from None
