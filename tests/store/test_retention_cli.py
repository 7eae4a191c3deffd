"""``pumpops db prune [--dry-run] [--json]`` on both engines: what it prints, writes and audits."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from pumpops.cli import store as store_cli
from pumpops.fleet import Device
from pumpops.schema import DeadLetter, ReadingBatch
from pumpops.settings import init_workspace
from pumpops.store import open_store

DAY = 86_400_000_000


def _app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def root(ctx: typer.Context) -> None:
        """Test root."""
        ctx.obj = {"workspace": None}

    store_cli.register(app)
    return app


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_app(), list(args))
    return result.exit_code, result.output


@pytest.fixture
def url(store_url: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database with 40-day-old and new readings and dead letters; cwd is its workspace."""
    init_workspace(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PUMPOPS_DATABASE_URL", raising=False)
    monkeypatch.delenv("PUMPOPS_WORKSPACE", raising=False)
    database = store_url()
    now = time.time_ns() // 1000
    with open_store(database) as store:
        store.upgrade()
        store.register_devices([Device("p-1", "north", "acme-ansi", "pilot")])
        ts = np.array([now - 40 * DAY, now - DAY], dtype=np.int64)
        digest = hashlib.sha256(b"m1").hexdigest()
        store.write_batches([ReadingBatch("p-1", "m1", digest, ts, ("motor_speed",), np.ones((2, 1)), now)])
        store.write_dead_letters(
            [DeadLetter("t", b"x", "bad_json", "d", received_at_us=now - 40 * DAY) for _ in range(3)]
        )
    return database


def counts(url: str) -> dict[str, int]:
    with open_store(url) as store:
        return store.counts()


def test_cli_db_prune_dry_run_json_reports_per_kind_and_removes_nothing(url: str) -> None:
    before = counts(url)
    code, output = run("db", "prune", "--dry-run", "--json", "--db", url)
    assert code == 0, output
    report = json.loads(output)
    assert report["dry_run"] is True
    assert report["audit_seq"] is None
    kinds = {k["kind"]: k for k in report["kinds"]}
    assert list(kinds) == [
        "readings",
        "agent_messages",
        "summaries",
        "hour_aggregates",
        "dead_letters",
        "events",
    ]
    assert (kinds["readings"]["rows"], kinds["dead_letters"]["rows"]) == (1, 3)
    assert counts(url) == before
    with open_store(url) as store:
        assert store.audit_entries() == []


def test_cli_db_prune_removes_and_audits_then_finds_nothing(url: str) -> None:
    code, output = run("db", "prune", "--db", url, "--actor", "night-shift")
    assert code == 0, output
    assert "dead_letters" in output
    assert "audited as store.pruned" in output
    assert counts(url)["readings"] == 1
    assert counts(url)["dead_letters"] == 0
    with open_store(url) as store:
        (entry,) = store.audit_entries()
    assert (entry.action, entry.actor) == ("store.pruned", "night-shift")
    assert entry.payload["kinds"]["dead_letters"]["rows"] == 3
    code, output = run("db", "prune", "--db", url, "-o", "csv")
    assert code == 0, output
    table = list(csv.DictReader(io.StringIO(output)))
    assert [row["rows"] for row in table] == ["0"] * 6  # six kinds, hour aggregates included


def test_cli_db_prune_keep_forever_setting_is_honoured(url: str, tmp_path: Path) -> None:
    (tmp_path / "pumpops.toml").write_text("[retention]\nreadings_days = 0\n")
    code, output = run("db", "prune", "--json", "--db", url)
    assert code == 0, output
    kinds = {k["kind"]: k for k in json.loads(output)["kinds"]}
    assert kinds["readings"] == {"kind": "readings", "horizon_us": None, "rows": 0, "partitions_dropped": []}
    assert counts(url)["readings"] == 2


def test_cli_db_prune_refuses_a_retention_below_a_day_with_the_reason(url: str, tmp_path: Path) -> None:
    (tmp_path / "pumpops.toml").write_text("[retention]\nreadings_days = 0.5\n")
    result = CliRunner().invoke(_app(), ["db", "prune", "--db", url])
    assert result.exit_code != 0
    assert "at least 1 day" in str(result.exception)
    assert counts(url)["readings"] == 2
