"""``pumpops tokens create|list|revoke``: printed once, stored hashed, audited; a revoked token is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pumpops.cli import app
from pumpops.errors import ConfigError, InputError, NotFoundError
from pumpops.settings import load_settings
from pumpops.store import open_store
from pumpops.web import hash_token


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    folder = tmp_path / "ws"
    assert CliRunner().invoke(app, ["init", str(folder)]).exit_code == 0
    return folder


_CODES = ((ConfigError, 2), (InputError, 3), (NotFoundError, 4))


def _run(ws: Path, *args: str) -> tuple[int, str]:
    """Exit code and output; a pumpops error as ``pumpops.cli.main`` reports it (its code, its message)."""
    result = CliRunner().invoke(app, ["-w", str(ws), *args])
    exc = result.exception
    if exc is None or isinstance(exc, SystemExit):
        return result.exit_code, result.output
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code, result.output + str(exc)
    raise exc


def test_tokens_create_prints_once_stores_only_the_hash_and_audits(ws: Path) -> None:
    code, out = _run(ws, "tokens", "create", "--name", "alice", "--role", "operator", "--actor", "admin@hq")
    assert code == 0, out
    token = out.strip().splitlines()[-1]
    assert token.startswith("pumpops_")
    with open_store(load_settings(ws).resolved_database_url) as store:
        (record,) = store.api_tokens()
        assert record.token_sha256 == hash_token(token)
        assert (record.name, record.role, record.created_by) == ("alice", "operator", "admin@hq")
        (entry,) = store.audit_entries()
        assert (entry.actor, entry.action, entry.subject) == (
            "admin@hq",
            "token.created",
            f"token/{record.token_id}",
        )
        assert token not in entry.payload_json
    code, listing = _run(ws, "tokens", "list", "--json")
    assert code == 0
    rows = json.loads(listing)
    assert rows[0]["state"] == "active"
    assert token not in listing
    assert token.split("_", 2)[2] not in listing


def test_tokens_revoke_by_id_then_again_is_not_found(ws: Path) -> None:
    _, out = _run(ws, "tokens", "create", "--name", "bob", "--json")
    created = json.loads(out)
    assert created["role"] == "viewer"
    code, out = _run(ws, "tokens", "revoke", created["token_id"])
    assert code == 0, out
    assert f"revoked token {created['token_id']} of bob" in out
    code, out = _run(ws, "tokens", "revoke", created["token_id"])
    assert code == 4
    assert "none active" in out
    _, listing = _run(ws, "tokens", "list", "--json")
    assert json.loads(listing)[0]["state"] == "revoked"


def test_tokens_revoke_by_name_revokes_every_token_of_the_owner(ws: Path) -> None:
    for _ in range(2):
        _run(ws, "tokens", "create", "--name", "carol")
    _run(ws, "tokens", "create", "--name", "dave")
    code, out = _run(ws, "tokens", "revoke", "--name", "carol")
    assert code == 0
    assert out.count("revoked token") == 2
    _, listing = _run(ws, "tokens", "list", "--json")
    states = {(r["name"], r["state"]) for r in json.loads(listing)}
    assert states == {("carol", "revoked"), ("dave", "active")}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["create", "--name", "eve", "--role", "root"], "--role root"),
        (["create", "--name", "eve", "--expires", "0s"], "--expires 0s"),
        (["create", "--name", "eve", "--expires", "soon"], "--expires soon"),
        (["create", "--name", "has space"], "token name"),
        (["revoke"], "token id or --name"),
    ],
)
def test_tokens_bad_input_is_refused_with_the_option_named(ws: Path, args: list[str], says: str) -> None:
    code, out = _run(ws, "tokens", *args)
    assert code in (2, 3), out
    assert says in out
    _, listing = _run(ws, "tokens", "list", "--json")
    assert json.loads(listing) == []


def test_tokens_expiring_token_lists_its_expiry(ws: Path) -> None:
    code, out = _run(ws, "tokens", "create", "--name", "fay", "--expires", "2h", "--json")
    assert code == 0, out
    assert json.loads(out)["expires"] is not None
