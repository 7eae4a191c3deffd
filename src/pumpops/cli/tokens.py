"""Command-line commands of the HTTP API's tokens: ``pumpops tokens create|list|revoke``.

A token is printed once, by ``create``, and never again: the store keeps its
SHA-256 only (``pumpops.web``, ADR 0014). ``create`` and ``revoke`` are audit
entries (``token.created``, ``token.revoked``) whose actor is the settings' or
``--actor``; a token's own requests are audited under its ``--name``.
May import: typer, ``pumpops.cli._support``, ``pumpops.cli.audit`` (the actor option), hub (the
store), web (token making), audit, errors.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from pumpops.audit import resolve_actor
from pumpops.cli._support import (
    DatabaseUrlOption,
    JsonFlag,
    OutputFormat,
    OutputOption,
    emit_rows,
    format_time,
    output_format,
    parse_duration,
    settings_from,
)
from pumpops.cli.audit import ActorOption
from pumpops.errors import ConfigError, NotFoundError
from pumpops.hub import open_workspace_store

__all__ = ["register", "tokens_app"]

tokens_app = typer.Typer(
    help="API tokens of the hub's HTTP API: create (printed once), list, revoke.", no_args_is_help=True
)

_ROLES = ("viewer", "operator", "admin")
_COLUMNS = ("token_id", "name", "role", "state", "created", "created_by", "expires", "revoked")


def register(app: typer.Typer) -> None:
    """Add ``tokens`` to the root ``pumpops`` command."""
    app.add_typer(tokens_app, name="tokens")


@tokens_app.command("create")
def create_cmd(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="The owner: the actor of every write made with it.")],
    role: Annotated[
        str,
        typer.Option(
            "--role", help="viewer (read), operator (+ acknowledge, feedback, pause, resume), admin."
        ),
    ] = "viewer",
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires", help="Lifetime: 90d, 12h, ... (default: until revoked).", show_default=False
        ),
    ] = None,
    as_json: JsonFlag = False,
    db: DatabaseUrlOption = None,
    actor: ActorOption = None,
) -> None:
    """Make a token and print it once (it is stored hashed and cannot be shown again)."""
    from pumpops.web import hash_token, new_token

    if role not in _ROLES:
        raise ConfigError(f"--role {role}: must be one of {', '.join(_ROLES)}")
    lifetime_s = None
    if expires is not None:
        try:
            lifetime_s = parse_duration(expires)
        except ConfigError as exc:
            raise ConfigError(f"--expires {expires}: {exc}") from None
        if lifetime_s <= 0:
            raise ConfigError(f"--expires {expires}: must be longer than 0s")
    settings = settings_from(ctx, database_url=db)
    who = resolve_actor(settings, actor)
    token_id, token = new_token()
    with open_workspace_store(settings, upgrade=True) as store:
        now_us = datetime.now(tz=UTC).timestamp() * 1e6
        expires_us = None if lifetime_s is None else int(now_us + lifetime_s * 1e6)
        record = store.add_api_token(
            token_id,
            name=name,
            role=role,
            token_sha256=hash_token(token),
            created_by=who,
            expires_at_us=expires_us,
        )
        store.append_audit(
            who,
            "token.created",
            f"token/{token_id}",
            {"name": name, "role": role, "expires_at_us": expires_us},
        )
    if as_json:
        typer.echo(json.dumps({**_row(record), "token": token}))
        return
    typer.echo(f"token {record.token_id} for {record.name} ({record.role}); shown once, keep it secret:")
    typer.echo(token)


def _row(record: Any, now_us: int | None = None) -> dict[str, Any]:
    when = now_us if now_us is not None else int(datetime.now(tz=UTC).timestamp() * 1e6)
    refusal = record.refusal(when)
    return {
        "token_id": record.token_id,
        "name": record.name,
        "role": record.role,
        "state": "active" if refusal is None else ("revoked" if record.revoked_at_us else "expired"),
        "created": format_time(record.created_at_us),
        "created_by": record.created_by,
        "expires": None if record.expires_at_us is None else format_time(record.expires_at_us),
        "revoked": None if record.revoked_at_us is None else format_time(record.revoked_at_us),
    }


@tokens_app.command("list")
def list_cmd(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--name", help="Only this owner's.", show_default=False)] = None,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
    db: DatabaseUrlOption = None,
) -> None:
    """List tokens (never their secrets), oldest first, with their state: active, expired or revoked."""
    settings = settings_from(ctx, database_url=db)
    with open_workspace_store(settings, upgrade=True) as store:
        rows = [_row(r) for r in store.api_tokens(name=name)]
    emit_rows(
        rows, output=output_format(output, as_json), columns=_COLUMNS, title="API tokens", empty="no tokens"
    )


@tokens_app.command("revoke")
def revoke_cmd(
    ctx: typer.Context,
    token_id: Annotated[str | None, typer.Argument(help="The token's id (see `tokens list`).")] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Revoke every token of this owner instead.", show_default=False),
    ] = None,
    db: DatabaseUrlOption = None,
    actor: ActorOption = None,
) -> None:
    """Revoke a token (or all of an owner's): refused from the next request on. Exits 4 if none was active."""
    if (token_id is None) == (name is None):
        raise typer.BadParameter("give a token id or --name, not both", param_hint="TOKEN_ID")
    settings = settings_from(ctx, database_url=db)
    who = resolve_actor(settings, actor)
    with open_workspace_store(settings, upgrade=True) as store:
        revoked = store.revoke_api_tokens(token_id=token_id, name=name)
        for record in revoked:
            store.append_audit(
                who, "token.revoked", f"token/{record.token_id}", {"name": record.name, "role": record.role}
            )
    if not revoked:
        what = f"token {token_id}" if token_id is not None else f"tokens of {name}"
        raise NotFoundError(f"{what}: none active (see `pumpops tokens list`)")
    for record in revoked:
        typer.echo(f"revoked token {record.token_id} of {record.name} ({record.role})")
