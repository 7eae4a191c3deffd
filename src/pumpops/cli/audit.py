"""Command-line commands of ``pumpops.audit``: ``audit verify``, ``audit export`` and ``audit show``.

The thin shell around the chain: read entries from the store or an export
file, hand them to :func:`pumpops.audit.verify_chain`, print. Tampering is an
:class:`~pumpops.errors.IntegrityError`, which ``pumpops.cli.main`` turns into
a message and exit code 1.

Export format (``audit export``): JSON Lines, UTF-8. The first line is a header
object describing the export (``{"pumpops_audit_export": 1, ...}``, see
:func:`export_header`); every further line is one entry, all fields and both
hashes, keys sorted (:meth:`AuditEntry.to_json`). ``verify --file`` checks a
full export as a chain from entry 1, and an export ``--since`` as a segment
(its first entry's link to the entries before it cannot be checked offline).
An export filtered by ``--subject`` is not a chain (the entries between are
left out, so a deletion could not be told from the filter) and ``verify
--file`` refuses it: verify the full export instead.
``audit show`` and ``audit verify`` print a table, JSON or CSV (``--output``).
Only typer, the standard library, ``pumpops.cli._support`` and the pure chain
load with this module (other parts import :data:`ActorOption` from here); the
store and settings load inside the commands.
May import: typer, ``pumpops.cli._support``, store, settings, errors and this package.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from pumpops.audit._chain import GENESIS_HASH, AuditEntry, VerifyReport, verify_chain
from pumpops.cli._support import (
    DatabaseUrlOption,
    JsonFlag,
    OutputFormat,
    OutputOption,
    console,
    emit_record,
    emit_rows,
    output_format,
    parse_time_us,
    settings_from,
)
from pumpops.errors import ConfigError, InputError, IntegrityError

if TYPE_CHECKING:
    from pumpops.settings import Settings
    from pumpops.store import TelemetryStore

audit_app = typer.Typer(
    help="The audit trail: verify the hash chain, export it, show the newest entries.",
    no_args_is_help=True,
)

EXPORT_FORMAT = 1
_HEADER_KEY = "pumpops_audit_export"

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


def resolve_actor(settings: Settings, flag: str | None) -> str:
    """The actor of a writing command: the ``--actor`` flag, else the settings' actor.

    Raises:
        ConfigError: the flag is given but blank.

    >>> from pumpops.settings import Settings
    >>> resolve_actor(Settings(actor="ops@hq"), None), resolve_actor(Settings(actor="ops@hq"), "ann")
    ('ops@hq', 'ann')
    """
    if flag is None:
        return settings.actor
    if not flag.strip():
        raise ConfigError("--actor must not be empty")
    return flag


@contextmanager
def _store(ctx: typer.Context, db: str | None) -> Iterator[TelemetryStore]:
    from pumpops.store import open_store

    settings = settings_from(ctx, database_url=db)
    store = open_store(settings.resolved_database_url)
    try:
        yield store
    finally:
        store.close()


def _format_time(time_us: int) -> str:
    return datetime.fromtimestamp(time_us / 1_000_000, tz=UTC).isoformat(timespec="milliseconds")


def export_header(
    entries: list[AuditEntry], *, since_us: int | None, subject: str | None, chain_head: AuditEntry | None
) -> dict[str, Any]:
    """The first line of an export: what it holds and the chain's head when it was written.

    Keys: ``pumpops_audit_export`` (format version, 1), ``since_us`` and
    ``subject`` (the filters, null if none), ``count``, ``first_seq`` and
    ``last_hash`` (of the entries exported), ``chain_head_seq`` and
    ``chain_head_hash`` (of the whole chain at export time: record them
    elsewhere to detect a later rewrite).
    """
    return {
        _HEADER_KEY: EXPORT_FORMAT,
        "since_us": since_us,
        "subject": subject,
        "count": len(entries),
        "first_seq": entries[0].seq if entries else None,
        "last_hash": entries[-1].hash if entries else None,
        "chain_head_seq": chain_head.seq if chain_head else 0,
        "chain_head_hash": chain_head.hash if chain_head else GENESIS_HASH,
    }


def write_export(out: TextIO, header: dict[str, Any], entries: list[AuditEntry]) -> None:
    """Write an export: the header line, then one entry per line."""
    out.write(json.dumps(header, sort_keys=True, separators=(",", ":")) + "\n")
    for entry in entries:
        out.write(entry.to_json() + "\n")


def verify_export(path: Path, *, expected_head: str | None = None) -> VerifyReport:
    """Check an export file offline (see the module docstring for what is checked).

    Raises:
        InputError: the file is not an audit export, or is filtered by subject.
        IntegrityError: a line is not an audit entry any more (edited by hand).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    try:
        header = json.loads(lines[0]) if lines else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get(_HEADER_KEY) != EXPORT_FORMAT:
        raise InputError(f"{path} is not a pumpops audit export (no header line); use `pumpops audit export`")
    if header.get("subject") is not None:
        raise InputError(
            f"{path} is filtered by subject {header['subject']!r}: it is not a chain, so deletions "
            "cannot be told from the filter; verify a full export (without --subject)"
        )
    entries = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            entries.append(AuditEntry.from_json(line))
        except InputError as exc:
            raise IntegrityError(
                f"{path}, line {number}: not an audit entry any more ({exc}): modified"
            ) from exc
    first_seq = header.get("first_seq")
    segment = isinstance(first_seq, int) and first_seq > 1  # an export --since: a tail of the chain
    last_hash = header.get("last_hash")
    count = header.get("count")

    def walk(head: str | None) -> VerifyReport:
        return verify_chain(
            entries,
            first_seq=first_seq if segment else 1,
            first_prev_hash=None if segment else GENESIS_HASH,
            expected_head=head,
        )

    report = walk(last_hash)
    if report.ok and expected_head is not None:
        report = walk(expected_head)
    if report.ok and isinstance(count, int) and len(entries) > count:
        # Entries appended to the file after the one the header names as the last.
        return VerifyReport(
            report.count,
            report.head_seq,
            report.head_hash,
            bad_seq=entries[count].seq,
            bad_index=count,
            kind="inserted",
            detail=f"the export held {count} entries; the ones from here on were added",
        )
    return report


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
