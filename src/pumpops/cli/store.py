"""Command-line commands of ``pumpops.store``: ``db``, ``devices`` and the query side of ``telemetry``.

``telemetry_app`` is module-level so that ``pumpops.telemetry`` can add its
own commands (``ingest``) to the same ``pumpops telemetry`` group.
May import: typer, rich, ``pumpops.cli._support``, ``pumpops.fleet``,
``pumpops.schema``, ``pumpops.errors``, ``pumpops.audit`` and ``pumpops.hub``
(``db prune`` opens the workspace's store with its audit signer), and this package.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pumpops.cli._support import (
    DatabaseUrlOption,
    JsonFlag,
    OutputFormat,
    OutputOption,
    console,
    emit_record,
    emit_rows,
    err_console,
    format_time,
    output_format,
    parse_time_us,
    settings_from,
)
from pumpops.cli.audit import ActorOption

if TYPE_CHECKING:
    from pumpops.store import SqlTelemetryStore

db_app = typer.Typer(help="The hub database: schema migrations and status.", no_args_is_help=True)
devices_app = typer.Typer(
    help="Pumps: the hub's register (list, register) and broker identities (provision, revoke, identities).",
    no_args_is_help=True,
)
telemetry_app = typer.Typer(
    help="Telemetry: query stored readings, inspect dead letters.", no_args_is_help=True
)

_TABLE_ROWS = 1000  # default --limit for table output; CSV and JSON print everything unless limited
_PAYLOAD_PREVIEW = 120  # bytes of a dead letter's payload shown

DbOption = DatabaseUrlOption

#: ``telemetry query`` had ``--format/-f``; it stays an alias of ``--output/-o``.
QueryOutputOption = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", "--format", "-f", help="table, json or csv.", case_sensitive=False),
]


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root ``pumpops`` command."""
    app.add_typer(db_app, name="db")
    app.add_typer(devices_app, name="devices")
    app.add_typer(telemetry_app, name="telemetry")


@contextmanager
def _store(ctx: typer.Context, db: str | None) -> Iterator[SqlTelemetryStore]:
    if importlib.util.find_spec("sqlalchemy") is None:  # the edge install: name the hub install first
        import sqlalchemy  # noqa: F401 - raises ModuleNotFoundError, which cli.main explains
    settings = settings_from(ctx, database_url=db)  # a missing workspace is refused before SQLAlchemy loads
    from pumpops.store import open_sql_store

    store = open_sql_store(settings.resolved_database_url)
    try:
        yield store
    finally:
        store.close()


# -- db ----------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, database_url: DbOption = None) -> None:
    """Create the database schema or migrate it to this version of pumpops (safe to repeat)."""
    with _store(ctx, database_url) as store:
        before = store.current_revision()
        store.upgrade()
        after = store.current_revision()
        if before == after:
            console.print(f"{store.url}: already at revision {after}", highlight=False, soft_wrap=True)
        else:
            console.print(
                f"{store.url}: upgraded from {before or 'empty'} to revision {after}",
                highlight=False,
                soft_wrap=True,
            )


@db_app.command("status")
def db_status(
    ctx: typer.Context,
    database_url: DbOption = None,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Show the database's schema revision and how many rows each table holds."""
    fmt = output_format(output, as_json)
    with _store(ctx, database_url) as store:
        current, head = store.current_revision(), store.head_revision()
        counts = store.counts() if current is not None else {}
        url = str(store.url)
    if fmt is not OutputFormat.TABLE:
        record: dict[str, Any] = {
            "database": url,
            "revision": current,
            "newest_revision": head,
            "up_to_date": current == head,
            **{f"rows_{name}": count for name, count in counts.items()},
        }
        emit_record(record, output=fmt)
        return
    console.print(f"database: {url}", highlight=False, soft_wrap=True)
    if current is None:
        console.print(f"schema:   not created (newest is {head}); run `pumpops db upgrade`", highlight=False)
        return
    state = "up to date" if current == head else f"behind {head}: run `pumpops db upgrade`"
    console.print(f"schema:   revision {current} ({state})", highlight=False)
    emit_rows(
        [{"table": name, "rows": f"{count:,}"} for name, count in counts.items()],
        output=fmt,
        columns=("table", "rows"),
    )


@db_app.command("prune")
def db_prune(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be removed; remove nothing.")
    ] = False,
    database_url: DbOption = None,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
    actor: ActorOption = None,
) -> None:
    """Remove stored data past its retention horizon (``[retention]``), per kind; the audit trail never.

    Prints per kind what it removed (or, with --dry-run, would remove): rows and,
    on PostgreSQL, the daily partitions dropped; also the partitions created
    ahead. Audited as one ``store.pruned`` entry when anything was removed.
    """
    fmt = output_format(output, as_json)
    settings = settings_from(ctx, database_url=database_url)
    from pumpops.audit import resolve_actor
    from pumpops.hub import open_workspace_store
    from pumpops.store import RetentionPolicy

    who = resolve_actor(settings, actor)
    policy = RetentionPolicy(**settings.retention.model_dump(exclude={"interval_s"}))
    with open_workspace_store(settings, upgrade=not dry_run, sign_audit=not dry_run) as store:
        report = store.prune(policy, actor=who, dry_run=dry_run)
    rows = [
        {
            "kind": k.kind,
            "horizon": "keep forever" if k.horizon_us is None else format_time(k.horizon_us),
            "rows": k.rows,
            "partitions_dropped": len(k.partitions),
        }
        for k in report.kinds
    ]
    if fmt is not OutputFormat.TABLE:
        record = {
            "dry_run": report.dry_run,
            "now_us": report.now_us,
            "kinds": [
                {
                    "kind": k.kind,
                    "horizon_us": k.horizon_us,
                    "rows": k.rows,
                    "partitions_dropped": list(k.partitions),
                }
                for k in report.kinds
            ],
            "partitions_created": list(report.partitions_created),
            "audit_seq": report.audit_seq,
        }
        if fmt is OutputFormat.JSON:
            emit_record(record, output=fmt)
        else:
            emit_rows(rows, output=fmt, columns=("kind", "horizon", "rows", "partitions_dropped"))
        return
    verb = "would remove" if dry_run else "removed"
    emit_rows(
        [{**row, "rows": f"{row['rows']:,}"} for row in rows],
        output=fmt,
        columns=("kind", "horizon", "rows", "partitions_dropped"),
        title=f"{verb} (audit: never)",
    )
    if report.partitions_created:
        created = "would create" if dry_run else "created"
        console.print(f"partitions {created} ahead: {', '.join(report.partitions_created)}", highlight=False)
    if report.audit_seq is not None:
        console.print(f"audited as store.pruned, entry {report.audit_seq}", highlight=False)


# -- devices -----------------------------------------------------------------------------------


@devices_app.command("list")
def devices_list(
    ctx: typer.Context,
    database_url: DbOption = None,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """List registered devices with their site, manufacturer profile and group."""
    fmt = output_format(output, as_json)
    with _store(ctx, database_url) as store:
        devices = store.devices()
    if not devices and fmt is OutputFormat.TABLE:
        err_console.print("no devices registered; add one with `pumpops devices register`", highlight=False)
        return
    emit_rows(
        [{"device": d.device_id, "site": d.site, "profile": d.profile_id, "group": d.group} for d in devices],
        output=fmt,
        columns=("device", "site", "profile", "group"),
    )


@devices_app.command("register")
def devices_register(
    ctx: typer.Context,
    *,
    device_id: Annotated[str, typer.Option("--device-id", help="The device's id, as in its MQTT topic.")],
    site: Annotated[str, typer.Option("--site", help="The site it is installed at, as in its MQTT topic.")],
    profile: Annotated[str, typer.Option("--profile", help="Its manufacturer profile id (e.g. acme-ansi).")],
    group: Annotated[
        str, typer.Option("--group", help="The device group models are rolled out to.")
    ] = "default",
    database_url: DbOption = None,
) -> None:
    """Register a device, or update the site, profile and group of a registered one."""
    settings = settings_from(ctx, database_url=database_url)
    from pumpops.fleet import Device, get_profile

    get_profile(profile, settings.profiles_dirs)  # NotFoundError lists the known profiles
    with _store(ctx, database_url) as store:
        new = store.register_devices([Device(device_id, site, profile, group)])
    console.print(
        f"{'registered' if new else 'updated'} {device_id} ({profile}, {site}, group {group})",
        highlight=False,
    )


# -- telemetry ---------------------------------------------------------------------------------


def _time_us(text: str | None, option: str) -> int | None:
    """ISO-8601 (no zone = UTC) or a duration before now (``1h``), in microseconds since the epoch."""
    return None if text is None else parse_time_us(text, option=option)


def _format_time(ts_us: int) -> str:
    return format_time(ts_us, timespec="auto", zulu=True)


def _unit_label(unit: str) -> str:
    """Pint's unit string, readable: ``m**3/s`` -> ``m³/s``."""
    return unit.replace("**3", "³").replace("**2", "²").replace("*", "·")


def _header(sensor: str) -> str:
    from pumpops.schema import CANONICAL_SENSORS

    known = CANONICAL_SENSORS.get(sensor)
    return f"{sensor} [{_unit_label(known.unit)}]" if known else sensor


@telemetry_app.command("query")
def telemetry_query(
    ctx: typer.Context,
    *,
    device: Annotated[str, typer.Option("--device", "-d", help="The device to read.")],
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="First instant: ISO-8601 (no zone = UTC) or a duration before now (1h, 2d).",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            help="End instant, excluded: ISO-8601 (no zone = UTC) or a duration before now.",
            show_default=False,
        ),
    ] = None,
    sensor: Annotated[
        list[str] | None,
        typer.Option(
            "--sensor",
            "-s",
            help="A canonical sensor to show; repeat for more (default: all).",
            show_default=False,
        ),
    ] = None,
    output: QueryOutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            "-n",
            min=1,
            help=f"Print at most N rows (default: {_TABLE_ROWS} for table, all for csv and json).",
            show_default=False,
        ),
    ] = None,
    database_url: DbOption = None,
) -> None:
    """Print a device's stored readings in SI units, one row per instant (blank: no reading)."""
    fmt = output_format(output, as_json)
    since_us, until_us = _time_us(since, "--since"), _time_us(until, "--until")
    from pumpops.schema import canonical_sensor

    for name in sensor or []:
        canonical_sensor(name)  # NotFoundError lists the canonical names
    with _store(ctx, database_url) as store:
        frame = store.query(device, sensors=sensor or None, since_us=since_us, until_us=until_us)
    import numpy as np

    rows = frame.ts_us.shape[0]
    shown = limit if limit is not None else (_TABLE_ROWS if fmt is OutputFormat.TABLE else rows)
    if fmt is OutputFormat.CSV:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["time (UTC)", *(_header(name) for name in frame.sensors)])
        for i in range(min(rows, shown)):
            writer.writerow(
                [
                    _format_time(int(frame.ts_us[i])),
                    *("" if np.isnan(v) else repr(float(v)) for v in frame.values[i]),
                ]
            )
        return
    if fmt is OutputFormat.JSON:
        records = [
            {
                "time": _format_time(int(frame.ts_us[i])),
                **{
                    name: None if np.isnan(v) else float(v)
                    for name, v in zip(frame.sensors, frame.values[i], strict=True)
                },
            }
            for i in range(min(rows, shown))
        ]
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
        return
    if rows == 0:
        err_console.print(f"no readings of {device} in the interval", highlight=False)
        return
    _print_query_table(device, frame, rows, shown)


def _print_query_table(device: str, frame: Any, rows: int, shown: int) -> None:
    import numpy as np
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{device}: {rows:,} instants", title_justify="left")
    count = min(rows, shown)
    times = [_format_time(int(t)) for t in frame.ts_us[:count]]
    cells = [
        ["" if np.isnan(v) else f"{v:.6g}" for v in frame.values[:count, j]]
        for j in range(len(frame.sensors))
    ]
    # Headers may fold to fit the terminal; a column is never narrower than its
    # longest value, so numbers are never cut (use --output csv for wide output).
    table.add_column("time (UTC)", min_width=max(map(len, times)), overflow="fold")
    for name, column in zip(frame.sensors, cells, strict=True):
        table.add_column(
            Text(_header(name).replace(" [", "\n[")),  # Text: "[m³/s]" is not Rich markup
            justify="right",
            overflow="fold",
            min_width=max(map(len, column)),
        )
    for i in range(count):
        table.add_row(times[i], *(column[i] for column in cells))
    # Never crop: a table wider than the terminal is printed whole.
    console.print(table, crop=False)
    # Each column takes its content plus 2 of padding and 1 of border, plus the closing border.
    needed = sum(column.min_width or 0 for column in table.columns) + 3 * len(table.columns) + 1
    if needed > console.width:
        err_console.print(
            "the table is wider than the terminal: choose --sensor, or --output csv", highlight=False
        )
    if shown < rows:
        err_console.print(f"showing {shown:,} of {rows:,} rows; use --limit or --output csv", highlight=False)


@telemetry_app.command("dead-letters")
def telemetry_dead_letters(  # noqa: PLR0917 - typer passes options by keyword
    ctx: typer.Context,
    reason: Annotated[
        str | None,
        typer.Option("--reason", "-r", help="Only this reason (e.g. unknown_device).", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most N, newest first.")] = 50,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
    database_url: DbOption = None,
) -> None:
    """List rejected messages, newest first, with the reason and a preview of the raw payload.

    JSON and CSV carry the whole payload (as text, undecodable bytes escaped).
    """
    fmt = output_format(output, as_json)
    with _store(ctx, database_url) as store:
        letters = store.dead_letters(limit=limit, reason=reason)
    if fmt is not OutputFormat.TABLE:
        emit_rows(
            [
                {
                    "received": _format_time(letter.received_at_us),
                    "reason": letter.reason,
                    "device": letter.device_id,
                    "msg_id": letter.msg_id,
                    "topic": letter.topic,
                    "detail": letter.detail,
                    "payload_bytes": len(letter.payload),
                    "payload": letter.payload.decode("utf-8", errors="backslashreplace"),
                }
                for letter in letters
            ],
            output=fmt,
            columns=("received", "reason", "device", "msg_id", "topic", "detail", "payload_bytes", "payload"),
        )
        return
    if not letters:
        err_console.print("no dead letters" + (f" with reason {reason}" if reason else ""), highlight=False)
        return
    from rich.text import Text

    # One block per letter rather than a table: details and payloads are long,
    # and each line stays greppable at any terminal width.
    for letter in letters:
        preview = repr(letter.payload[:_PAYLOAD_PREVIEW])[2:-1]
        if len(letter.payload) > _PAYLOAD_PREVIEW:
            preview += "…"
        block = Text()
        block.append(_format_time(letter.received_at_us))
        block.append(f"  {letter.reason}", style="bold red")
        block.append(f"  device={letter.device_id or '-'} msg={letter.msg_id or '-'}\n")
        block.append(f"  topic:   {letter.topic}\n")
        block.append(f"  detail:  {letter.detail}\n")
        block.append(f"  payload: {len(letter.payload):,} B: {preview}")
        console.print(block, soft_wrap=True)
