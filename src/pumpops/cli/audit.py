"""Command-line commands of ``pumpops.audit``: ``audit verify``, ``audit export`` and ``audit show``.

The thin shell around the chain: read entries from the store or an export
file, hand them to :func:`pumpops.audit.verify_chain`, print. Tampering is an
:class:`~pumpops.errors.IntegrityError`, which ``pumpops.cli.main`` turns into
a message and exit code 1.

The export format and its offline check are :mod:`pumpops.audit`'s
(:func:`~pumpops.audit.export_header`, :func:`~pumpops.audit.write_export`,
:func:`~pumpops.audit.verify_export`); ``verify --file`` refuses an export
filtered by ``--subject`` (not a chain): verify the full export instead.
``audit show`` and ``audit verify`` print a table, JSON or CSV (``--output``).
Only typer, the standard library, ``pumpops.cli._support`` and the pure chain
load with this module (the other command modules import :data:`ActorOption` from here); the
store and settings load inside the commands.
May import: typer, ``pumpops.cli._support``, store, settings, errors and this package.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pumpops.audit import (
    VerifyReport,
    export_header,
    verify_chain,
    verify_export,
    write_export,
)
from pumpops.cli._support import (
    DatabaseUrlOption,
    JsonFlag,
    OutputFormat,
    OutputOption,
    console,
    emit_record,
    emit_rows,
    format_time,
    output_format,
    parse_time_us,
    settings_from,
)
from pumpops.errors import ConfigError, IntegrityError
from pumpops.hub import open_workspace_store

if TYPE_CHECKING:
    from pumpops.store import TelemetryStore

audit_app = typer.Typer(
    help="The audit trail: verify the hash chain, export it, show the newest entries.",
    no_args_is_help=True,
)

#: For commands (of any part) that write audit entries: who is acting.
ActorOption = Annotated[
    str | None,
    typer.Option(
        "--actor", help="Who is acting, for the audit trail (default: settings' actor).", show_default=False
    ),
]


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root ``pumpops`` command."""
    app.add_typer(audit_app, name="audit")


@contextmanager
def _store(ctx: typer.Context, db: str | None) -> Iterator[TelemetryStore]:
    settings = settings_from(ctx, database_url=db)
    with open_workspace_store(settings) as store:
        yield store


def _format_time(time_us: int) -> str:
    return format_time(time_us, timespec="milliseconds")


def _report_record(report: VerifyReport, where: str) -> dict[str, Any]:
    return {
        "where": where,
        "ok": report.ok,
        "count": report.count,
        "head_seq": report.head_seq,
        "head_hash": report.head_hash,
        "bad_seq": report.bad_seq,
        "kind": report.kind,
        "detail": report.detail,
        "summary": report.summary(),
    }


@audit_app.command("verify")
def audit_verify(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    db: DatabaseUrlOption = None,
    file: Path | None = typer.Option(
        None, "--file", help="Check an export file offline instead of the database.", show_default=False
    ),
    head: str | None = typer.Option(
        None,
        "--head",
        help="A head hash recorded earlier (e.g. printed by a past verify); it must still be in the chain.",
        show_default=False,
    ),
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Walk the audit chain and name the first entry modified, deleted, inserted or reordered.

    Prints OK with the number of entries and the head hash (record it
    elsewhere: a later `--head` then also detects a rewritten or cut tail).
    Exits 1 when the chain is broken (3 when --file is not an audit export).
    """
    fmt = output_format(output, as_json)
    if file is not None:
        report = verify_export(file, expected_head=head)
        where = str(file)
    else:
        with _store(ctx, db) as store:
            report = verify_chain(store.audit_entries(), expected_head=head)
        where = "the database"
    if fmt is not OutputFormat.TABLE:
        emit_record(_report_record(report, where), output=fmt)
    if not report.ok:
        raise IntegrityError(f"audit chain in {where}: {report.summary()}")
    if fmt is OutputFormat.TABLE:
        empty = " (the audit trail is empty: nothing was recorded yet)" if report.count == 0 else ""
        console.print(report.summary() + empty, highlight=False, soft_wrap=True)


@audit_app.command("export")
def audit_export(
    ctx: typer.Context,
    db: DatabaseUrlOption = None,
    since: str | None = typer.Option(
        None,
        "--since",
        help="Only entries from this time on: ISO 8601 (naive = UTC) or a duration before now (1h, 2d).",
        show_default=False,
    ),
    subject: str | None = typer.Option(
        None,
        "--subject",
        help="Only entries about this subject (not verifiable as a chain).",
        show_default=False,
    ),
    out: Path | None = typer.Option(
        None, "--out", help="File to write (default: standard output).", show_default=False
    ),
) -> None:
    """Write the audit chain as JSON Lines: a header line, then one entry per line with its hashes."""
    since_us = None if since is None else parse_time_us(since, option="--since")
    with _store(ctx, db) as store:
        entries = store.audit_entries(since_us=since_us, subject=subject)
        tail = store.audit_entries(limit=1)
    header = export_header(entries, since_us=since_us, subject=subject, chain_head=tail[0] if tail else None)
    if out is None:
        write_export(sys.stdout, header, entries)
        return
    try:
        with out.open("w", encoding="utf-8", newline="\n") as handle:
            write_export(handle, header, entries)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write: {exc}") from exc
    console.print(
        f"wrote {len(entries)} audit entries to {out} (chain head seq {header['chain_head_seq']} "
        f"hash {header['chain_head_hash']})",
        highlight=False,
        soft_wrap=True,
    )


@audit_app.command("show")
def audit_show(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    db: DatabaseUrlOption = None,
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many of the newest entries."),
    since: str | None = typer.Option(
        None,
        "--since",
        help="Only entries from this time on: ISO 8601 (naive = UTC) or a duration before now (1h, 2d).",
        show_default=False,
    ),
    subject: str | None = typer.Option(
        None, "--subject", help="Only entries about this subject.", show_default=False
    ),
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """List the newest audit entries, oldest of them first (seq, time, actor, action, subject, payload, hash).

    Shows what is stored; it does not verify it (``pumpops audit verify`` does).
    """
    fmt = output_format(output, as_json)
    since_us = None if since is None else parse_time_us(since, option="--since")
    with _store(ctx, db) as store:
        if since_us is None and subject is None:
            entries = store.audit_entries(limit=limit)
        else:
            entries = store.audit_entries(since_us=since_us, subject=subject)[-limit:]
    rows = [
        {
            "seq": e.seq,
            "time": _format_time(e.time_us),
            "actor": e.actor,
            "action": e.action,
            "subject": e.subject,
            "payload": json.loads(e.payload_json) if fmt is OutputFormat.JSON else e.payload_json,
            "hash": e.hash,
        }
        for e in entries
    ]
    emit_rows(
        rows,
        output=fmt,
        columns=("seq", "time", "actor", "action", "subject", "payload", "hash"),
        title="Audit trail (newest last)",
        empty="the audit trail is empty",
    )
