"""Command-line commands about the agents' messages: ``pumpops agents messages``.

What the ingest service stored from the device agents' ``alarms``,
``summaries``, ``drift`` and ``state`` topics, one row per message id.
May import: typer, rich, ``pumpops.cli._support``, ``pumpops.errors``; ``pumpops.store``
inside the command (``--help`` answers without SQLAlchemy).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pumpops.cli._support import (
    DatabaseUrlOption,
    JsonFlag,
    OutputFormat,
    OutputOption,
    console,
    emit_rows,
    err_console,
    format_time,
    output_format,
    parse_time_us,
    settings_from,
)
from pumpops.hub import open_workspace_store

if TYPE_CHECKING:
    from pumpops.store import AgentRecord

__all__ = ["agents_app", "register"]

agents_app = typer.Typer(
    help="What the device agents reported: alarms, summaries, drift reports, state.",
    no_args_is_help=True,
)

_BODY_PREVIEW = 80  # characters of the body shown in the table
_TABLE_ROWS = 200


class AgentKindChoice(StrEnum):
    """The kinds of agent message (``--kind``)."""

    alarm = "alarm"
    summary = "summary"
    drift = "drift"
    state = "state"


def register(app: typer.Typer) -> None:
    """Add ``agents`` to the root ``pumpops`` command."""
    app.add_typer(agents_app, name="agents")


def _format_time(ts_us: int) -> str:
    return format_time(ts_us, timespec="milliseconds", zulu=True)


def as_json(record: AgentRecord) -> dict[str, Any]:
    """One message as the ``--json`` output shows it (the envelope's fields, plus seq and receipt)."""
    return {
        "msg_id": record.msg_id,
        "device_id": record.device_id,
        "site": record.site,
        "kind": record.kind,
        "seq": record.seq,
        "ts_ms": record.ts_ms,
        "received_at_us": record.received_at_us,
        "agent_version": record.agent_version,
        "body": record.body(),
    }


@agents_app.command("messages")
def agents_messages(
    ctx: typer.Context,
    *,
    device: Annotated[
        str | None, typer.Option("--device", "-d", help="Only this device's.", show_default=False)
    ] = None,
    kind: Annotated[
        AgentKindChoice | None, typer.Option("--kind", "-k", help="Only this kind.", show_default=False)
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only those produced from this instant: ISO-8601 (no zone = UTC) or a duration "
            "before now (1h, 2d).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            "-n",
            min=1,
            help=f"Only the last N in (device, time, seq) order (default: {_TABLE_ROWS} in a table, "
            "all in JSON and CSV).",
            show_default=False,
        ),
    ] = None,
    output: OutputOption = OutputFormat.TABLE,
    as_json_: JsonFlag = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List stored agent messages by device, then time, then sequence number (each message once)."""
    fmt = output_format(output, as_json_)
    since_us = None if since is None else parse_time_us(since, option="--since")
    settings = settings_from(ctx, database_url=database_url)

    shown = limit if limit is not None else (_TABLE_ROWS + 1 if fmt is OutputFormat.TABLE else None)
    with open_workspace_store(settings) as store:
        records = store.agent_messages(
            device_id=device, kind=None if kind is None else kind.value, since_us=since_us, limit=shown
        )
    if fmt is OutputFormat.JSON:
        typer.echo(json.dumps([as_json(r) for r in records], indent=2))
        return
    if fmt is OutputFormat.CSV:
        emit_rows(
            [{**as_json(r), "produced": _format_time(r.ts_us), "body": r.body_json} for r in records],
            output=fmt,
            columns=("device_id", "seq", "kind", "produced", "agent_version", "msg_id", "site", "body"),
        )
        return
    if not records:
        err_console.print("no agent messages" + (f" of {device}" if device else ""), highlight=False)
        return
    from rich.table import Table

    cut = limit is None and len(records) > _TABLE_ROWS
    if cut:
        records = records[1:]
    table = Table()
    for name in ("device", "seq", "kind", "produced (UTC)", "agent"):
        table.add_column(name, no_wrap=True, justify="right" if name == "seq" else "left")
    table.add_column("body", overflow="fold")
    for r in records:
        body = r.body_json if len(r.body_json) <= _BODY_PREVIEW else r.body_json[: _BODY_PREVIEW - 1] + "…"
        table.add_row(r.device_id, str(r.seq), r.kind, _format_time(r.ts_us), r.agent_version, body)
    console.print(table, highlight=False)
    if cut:
        err_console.print(
            f"showing the last {_TABLE_ROWS} messages; use --device, --kind, --limit or --output json",
            highlight=False,
        )
