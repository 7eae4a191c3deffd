"""Small helpers shared by the command modules (``pumpops/cli/<part>.py``).

One vocabulary for every command (issue 11):

- ``--output table|json|csv`` (``-o``) on every read command, ``--json`` as a
  flag meaning ``--output json``; :func:`emit_rows` / :func:`emit_record` print.
  Off a terminal, tables are printed at their full width, never cut to 80 columns.
- ``--database-url`` (alias ``--db``) and ``--tracking-uri`` wherever a command
  opens the store or the registry (:data:`DatabaseUrlOption`, :data:`TrackingUriOption`).
- Durations as ``90s``, ``10m``, ``1h``, ``1d`` (:func:`parse_duration`); times as
  ISO 8601 or relative to now (``--since 1h``: :func:`parse_since`).
- One exit-code scheme (:class:`ExitCode`), shown in ``pumpops --help`` and ``docs/cli.md``.
- Every command but ``init`` (and the ones that need no workspace) refuses a
  folder without ``pumpops.toml`` (:func:`settings_from`).

This module imports only typer, rich and the settings: a command's heavy
libraries are imported inside the command, so that ``--help`` and usage
errors answer quickly.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pumpops.errors import ConfigError

if TYPE_CHECKING:
    from pumpops.settings import Settings

#: Width of the consoles when output is not a terminal: wide enough that no
#: table column is ever cut (rich would otherwise assume 80 columns).
_OFF_TERMINAL_WIDTH = 100_000


def _console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=_OFF_TERMINAL_WIDTH, soft_wrap=True)


console = _console()
err_console = _console(stderr=True)


class ExitCode(IntEnum):
    """What a ``pumpops`` command's exit status means (the same for every command)."""

    OK = 0  #: done; a check passed
    FAILED = 1  #: a check ran and found something failing (validation, audit chain, integrity)
    USAGE = 2  #: usage or configuration error (a flag, pumpops.toml, a missing workspace)
    BAD_INPUT = 3  #: input data is malformed (a CSV, a message, a bundle's contents)
    NOT_FOUND = 4  #: what was asked for does not exist (model, release, device, folder)
    UNREACHABLE = 5  #: a service could not be reached (database, broker, repository)
    INTERRUPTED = 130  #: stopped by Ctrl-C or SIGTERM; nothing was registered or released


EXIT_CODES_HELP = (
    "Exit codes: 0 ok · 1 a check found failures · 2 usage or configuration error · "
    "3 bad input data · 4 not found · 5 service unreachable · 130 interrupted."
)


# ------------------------------------------------------------------------------ options


WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace folder (default: $PUMPOPS_WORKSPACE or the current directory).",
        show_default=False,
    ),
]

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        "--db",
        help="Database URL (default: the workspace's, pumpops.toml or $PUMPOPS_DATABASE_URL).",
        show_default=False,
    ),
]

TrackingUriOption = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (default: the workspace's, pumpops.toml or $PUMPOPS_TRACKING_URI).",
        show_default=False,
    ),
]


class OutputFormat(StrEnum):
    """How a read command prints its result."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"


OutputOption = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", help="table, json or csv.", case_sensitive=False),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Same as --output json.", show_default=False)]

#: Search spaces the held-out protocol chooses between per split (inner split of the training side);
#: the same as ``pumpops.pipeline.tuning.DEFAULT_CANDIDATES`` (not imported: the CLI starts without it).
DEFAULT_SPACES = "base,flow_floor,flow_window,flow_both"

SpacesOption = Annotated[
    str,
    typer.Option(
        "--spaces",
        help="Candidate search spaces, comma-separated (pumpops.pipeline.tuning.CANDIDATE_SPACES); "
        "with several, each split picks one by an inner split of its training side; "
        "'' = the default space.",
    ),
]
TrialsOption = Annotated[int, typer.Option("--trials", min=1, help="Search trials per split.")]


def space_names(text: str) -> tuple[str, ...]:
    """The names in a ``--spaces`` value.

    >>> space_names(" base, flow_floor,,"), space_names("")
    (('base', 'flow_floor'), ())
    """
    return tuple(n.strip() for n in text.split(",") if n.strip())


def output_format(output: OutputFormat, as_json: bool = False) -> OutputFormat:
    """The format asked for: ``--json`` wins over ``--output``."""
    return OutputFormat.JSON if as_json else output


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=str, sort_keys=True)
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def emit_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    output: OutputFormat,
    columns: Sequence[str] | None = None,
    title: str | None = None,
    empty: str = "nothing to show",
) -> None:
    """Print records as a table, a JSON array or CSV, with the same columns in each.

    Args:
        rows: one mapping a record; values may be numbers, strings, None or JSON-able.
        output: the format.
        columns: the columns and their order (default: the keys of the first row).
        title: the table's title (table format only).
        empty: what the table format says when there is no row.
    """
    cols = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    if output is OutputFormat.JSON:
        data = [{c: row.get(c) for c in cols} for row in rows] if columns is not None else list(rows)
        sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")
        return
    if output is OutputFormat.CSV:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(cols)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in cols])
        sys.stdout.write(buffer.getvalue())
        return
    if not rows:
        console.print(empty)
        return
    table = Table(title=title)
    for col in cols:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in cols))
    console.print(table)


def emit_record(record: Mapping[str, Any], *, output: OutputFormat, title: str | None = None) -> None:
    """Print one record: a key/value table, a JSON object or a two-column CSV."""
    if output is OutputFormat.JSON:
        sys.stdout.write(json.dumps(record, indent=2, default=_json_default) + "\n")
        return
    rows = [{"field": k, "value": v} for k, v in record.items()]
    emit_rows(rows, output=output, columns=("field", "value"), title=title)


# ------------------------------------------------------------------------------ durations, times

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_time(time_us: int, *, timespec: str = "seconds", zulu: bool = False) -> str:
    """An instant (microseconds since the epoch) as ISO 8601 in UTC: ``+00:00``, or ``Z`` with ``zulu``.

    >>> t = 1_767_225_600_123_456
    >>> format_time(t), format_time(t, timespec="milliseconds", zulu=True)
    ('2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00.123Z')
    """
    text = (_EPOCH + timedelta(microseconds=time_us)).isoformat(timespec=timespec)
    return text.replace("+00:00", "Z") if zulu else text


_DURATION = re.compile(r"^\s*(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|min|h|d)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86_400.0}


def parse_duration(text: str) -> float:
    """Parse ``90``, ``90s``, ``30m``, ``2h``, ``1d`` or ``1.5h`` into seconds.

    Raises:
        ConfigError: anything else, or not positive.

    >>> parse_duration("2h"), parse_duration("90"), parse_duration("1.5m")
    (7200.0, 90.0, 90.0)
    """
    match = _DURATION.match(text)
    if match is None:
        raise ConfigError(
            f"duration {text!r} must be a number with an optional unit (ms, s, m, h, d), e.g. 2h"
        )
    seconds = float(match["num"]) * _SECONDS[match["unit"] or "s"]
    if seconds <= 0:
        raise ConfigError(f"duration {text!r} must be positive")
    return seconds


def format_duration(seconds: float) -> str:
    """``6 h``, ``90 min`` or ``45 s`` (how commands show a window or a period).

    >>> format_duration(21600), format_duration(5400), format_duration(45)
    ('6 h', '90 min', '45 s')
    """
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def parse_time_us(text: str, *, option: str, now_s: float | None = None) -> int:
    """Parse a time given on the command line into microseconds since the epoch (UTC).

    Accepts ISO 8601 (a naive time is UTC) or a duration meaning "that long
    before now" (``1h``, ``30m``, ``2d``), as in ``--since 1h``.

    Args:
        text: what the user typed.
        option: the flag as typed, for the error message (``--since``).
        now_s: the current time (default: the wall clock).

    Raises:
        ConfigError: neither form; the message names the flag.

    >>> parse_time_us("2026-01-01T00:00:00Z", option="--since")
    1767225600000000
    >>> parse_time_us("1h", option="--since", now_s=7200.0)
    3600000000
    """
    if _DURATION.match(text):
        now = time.time() if now_s is None else now_s
        return round((now - parse_duration(text)) * 1_000_000)
    try:
        stamp = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            f"{option} {text!r} is neither an ISO 8601 time (2026-01-31T12:00Z) "
            "nor a duration before now (90s, 10m, 1h, 2d)"
        ) from exc
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return round(stamp.timestamp() * 1_000_000)


# ------------------------------------------------------------------------------ workspace


def workspace_of(ctx: typer.Context | None) -> Path | None:
    """The ``-w/--workspace`` given to the root command, if any (an absolute path)."""
    workspace = (ctx.obj or {}).get("workspace") if ctx is not None else None
    root = ctx.find_root() if ctx is not None else None
    if workspace is None and root is not None:
        workspace = (root.obj or {}).get("workspace")
    return Path(workspace).resolve() if workspace is not None else None


def settings_from(ctx: typer.Context | None, *, require_workspace: bool = True, **overrides: Any) -> Settings:
    """Load settings for the workspace given to the root command, with overrides.

    Args:
        ctx: the command's context (its root holds ``-w``).
        require_workspace: refuse a folder without ``pumpops.toml`` (every command
            but ``init`` and the ones that do not use a workspace).
        **overrides: values from the command line (``database_url``, ``tracking_uri``, ...).

    Raises:
        ConfigError: the folder does not exist or is not a workspace; a setting is invalid.
    """
    from pumpops.settings import SETTINGS_FILE, load_settings, workspace_folder

    folder = workspace_folder(workspace_of(ctx))
    if not folder.is_dir():
        raise ConfigError(
            f"workspace folder {folder} does not exist; create it with `pumpops init {folder}` "
            "or name another with -w/--workspace"
        )
    if require_workspace and not (folder / SETTINGS_FILE).is_file():
        raise ConfigError(
            f"{folder} is not a pumpops workspace (no {SETTINGS_FILE}); create one with "
            f"`pumpops init {folder}` or name an existing one with -w/--workspace "
            "(or $PUMPOPS_WORKSPACE)"
        )
    return load_settings(folder, **overrides)
