"""Command-line commands of ``pumpops.audit``: ``audit verify``, ``export``, ``anchor`` and ``show``.

The thin shell around the chain: read entries from the store or an export
file, gather the signed heads kept outside the database (the workspace's
anchors file, the TUF repository's targets metadata, a ``--head`` file), hand
them with the workspace's audit key to :func:`pumpops.audit.verify_trail`,
print. Tampering is an :class:`~pumpops.errors.IntegrityError`, which
``pumpops.cli.main`` turns into a message and exit code 1.

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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pumpops.audit import (
    ANCHORS_FILE,
    VerifyReport,
    export_header,
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
from pumpops.errors import ConfigError, InputError, IntegrityError, NotFoundError
from pumpops.hub import open_workspace_store

if TYPE_CHECKING:
    from pumpops.audit import Anchor, AuditKey
    from pumpops.settings import Settings
    from pumpops.store import TelemetryStore

audit_app = typer.Typer(
    help="The audit trail: verify its chain, signatures and anchors, export it, anchor its head, show it.",
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
    """The workspace's store, for reading: these commands append nothing and never create a key."""
    settings = settings_from(ctx, database_url=db)
    with open_workspace_store(settings, sign_audit=False) as store:
        yield store


def _key(settings: Settings, public_key: str | None) -> AuditKey | None:
    """The key signatures are checked with: ``--public-key``, else the workspace's (None if it has none)."""
    from pumpops.audit import AuditKey, workspace_key

    if public_key is not None:
        return AuditKey.from_public_hex(public_key)
    return workspace_key(settings.workspace)


def _tuf_anchors(settings: Settings) -> list[Anchor]:
    """The audit heads signed into the workspace's TUF repository at each publish (custom ``audit_head``)."""
    from pumpops.audit import Anchor
    from pumpops.release import open_repository

    try:
        repo = open_repository(settings)
    except NotFoundError:  # no repository yet: nothing published, nothing anchored there
        return []
    found: dict[tuple[int, str, str], Anchor] = {}
    for path, info in sorted(repo.list_targets().items()):
        head = (info.custom or {}).get("audit_head") if isinstance(info.custom, dict) else None
        if head is None:
            continue
        try:
            anchor = Anchor.from_dict(head, f"the TUF repository (target {path})")
        except InputError as exc:
            raise IntegrityError(f"the audit head in TUF target {path} is not one: {exc}") from exc
        found.setdefault((anchor.seq, anchor.hash, anchor.signature), anchor)
    return list(found.values())


def _head_option(value: str | None) -> tuple[str | None, list[Anchor]]:
    """``--head``: a head hash, or a file holding a signed head (``audit anchor --out``, an export)."""
    if value is None:
        return None, []
    path = Path(value)
    if len(value) == 64 and all(c in "0123456789abcdef" for c in value.lower()) and not path.exists():
        return value.lower(), []
    from pumpops.audit import Anchor

    try:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        data = json.loads(first)
    except (OSError, UnicodeDecodeError, ValueError, IndexError) as exc:
        raise ConfigError(
            f"--head {value}: neither a head hash (64 hex digits) nor a signed head file: {exc}"
        ) from exc
    if isinstance(data, dict) and "signed_head" in data:  # an export's header line
        data = data["signed_head"]
    try:
        return None, [Anchor.from_dict(data, f"--head {value}")]
    except InputError as exc:
        raise IntegrityError(f"--head {value}: {exc}") from exc


def _now_us() -> int:
    return time.time_ns() // 1000


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
        "signed": report.signed,
        "legacy": report.legacy,
        "anchors": report.anchors,
        "key_id": report.key_id,
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
        help="A head hash recorded earlier (it must still be in the chain), or a file with a signed head "
        "(from `audit anchor --out` or an export): the chain must still hold it.",
        show_default=False,
    ),
    public_key: str | None = typer.Option(
        None,
        "--public-key",
        help="The audit public key (64 hex digits, printed by `audit export`) instead of the workspace's.",
        show_default=False,
    ),
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Check the audit chain, its signatures and every signed head kept outside the database.

    Names the first entry modified, deleted, inserted or reordered; appended
    without the hub's audit key (unsigned); signed by another key or not
    matching its signature (forged); cut off (truncated) or rewritten
    (rehashed) against a signed head in the workspace's anchors file, the TUF
    repository or --head. Unsigned entries before the first signed one are
    reported as legacy. Exits 1 when a check fails (3 when --file is not an audit export).
    """
    fmt = output_format(output, as_json)
    settings = settings_from(ctx, database_url=db)
    key = _key(settings, public_key)
    head_hash, head_anchors = _head_option(head)
    if file is not None:
        report = verify_export(file, expected_head=head_hash, key=key, anchors=head_anchors)
        where = str(file)
    else:
        from pumpops.audit import read_anchors, verify_trail

        anchors = [*read_anchors(settings.workspace / ANCHORS_FILE), *_tuf_anchors(settings), *head_anchors]
        with _store(ctx, db) as store:
            entries = store.audit_entries()
        report = verify_trail(entries, key, anchors, expected_head=head_hash)
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
    """Write the audit chain as JSON Lines: a header line with the signed head, then one entry per line.

    The header's ``signed_head`` is the chain's head signed with the hub's
    audit key: `audit verify --file` fails on a cut, re-hashed or edited export.
    """
    from pumpops.audit import head_anchor, workspace_signer

    since_us = None if since is None else parse_time_us(since, option="--since")
    settings = settings_from(ctx, database_url=db)
    key = workspace_signer(settings.workspace).key
    with _store(ctx, db) as store:
        chain = store.audit_entries()
    entries = [
        e for e in chain if (since_us is None or e.time_us >= since_us) and subject in (None, e.subject)
    ]
    signed = head_anchor(chain, key, time_us=_now_us())
    header = export_header(
        entries,
        since_us=since_us,
        subject=subject,
        chain_head=chain[-1] if chain else None,
        signed_head=signed,
    )
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
        f"hash {header['chain_head_hash']}; head signed by audit key {key.key_id}, public key "
        f"{key.public_hex}: pass it to `audit verify --file --public-key` away from the workspace)",
        highlight=False,
        soft_wrap=True,
    )


@audit_app.command("anchor")
def audit_anchor(
    ctx: typer.Context,
    db: DatabaseUrlOption = None,
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Also write the signed head to this file (keep it off the hub).",
        show_default=False,
    ),
) -> None:
    """Sign the chain's current head into the workspace's anchors file (and --out).

    Every signed append already anchors its head; this anchors a chain of
    legacy entries, or gives a head file to keep elsewhere and pass back as
    `audit verify --head FILE`. Only the part of the chain that verifies is anchored.
    """
    from pumpops.audit import head_anchor, workspace_signer

    settings = settings_from(ctx, database_url=db)
    signer = workspace_signer(settings.workspace)
    with _store(ctx, db) as store:
        chain = store.audit_entries()
    anchor = signer.record(head_anchor(chain, signer.key, time_us=_now_us()))
    text = json.dumps(anchor.to_dict(), sort_keys=True)
    if out is not None:
        try:
            out.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--out {out}: cannot write: {exc}") from exc
    left_out = len(chain) - next((i for i, e in enumerate(chain) if e.seq == anchor.seq), -1) - 1
    note = f" ({left_out} entries after it do not verify and were not anchored)" if chain and left_out else ""
    console.print(
        f"anchored head seq {anchor.seq} hash {anchor.hash} in {signer.anchors_file}{note}",
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
