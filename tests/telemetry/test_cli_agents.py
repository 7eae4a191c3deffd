"""``pumpops agents messages`` as an operator runs it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pumpops.cli import app
from pumpops.settings import load_settings
from pumpops.store import AgentRecord, open_store

T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    result = CliRunner().invoke(app, ["init", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    ws = tmp_path / "ws"
    records = [
        AgentRecord(
            f"{device}:{seq}", device, "site-a", kind, T0_US + seq * 1_000_000, "0.1.0",
            json.dumps({"n": seq}), f"{seq:064x}", T0_US,
        )
        for device, seq, kind in [("p-1", 10, "alarm"), ("p-1", 9, "state"), ("p-2", 1, "summary")]
    ]  # fmt: skip
    with open_store(load_settings(ws).resolved_database_url) as store:
        store.put_agent_messages(records)
    return ws


def run(workspace: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["-w", str(workspace), "agents", "messages", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_agents_messages_json_lists_by_device_then_seq(workspace: Path) -> None:
    listed = json.loads(run(workspace, "--json"))
    assert [m["msg_id"] for m in listed] == ["p-1:9", "p-1:10", "p-2:1"]
    first = listed[0]
    assert first == {
        "msg_id": "p-1:9",
        "device_id": "p-1",
        "site": "site-a",
        "kind": "state",
        "seq": 9,
        "ts_ms": T0_US // 1000 + 9000,
        "received_at_us": T0_US,
        "agent_version": "0.1.0",
        "body": {"n": 9},
    }


def test_cli_agents_messages_filters_and_limits(workspace: Path) -> None:
    assert [m["msg_id"] for m in json.loads(run(workspace, "--json", "--device", "p-1"))] == [
        "p-1:9",
        "p-1:10",
    ]
    assert [m["msg_id"] for m in json.loads(run(workspace, "--json", "--kind", "summary"))] == ["p-2:1"]
    assert [m["msg_id"] for m in json.loads(run(workspace, "--json", "-n", "1"))] == ["p-2:1"]
    since = json.loads(run(workspace, "--json", "--since", "2026-01-01T00:00:09.5"))
    assert [m["msg_id"] for m in since] == ["p-1:10"]


def test_cli_agents_messages_table_shows_one_row_per_message(workspace: Path) -> None:
    output = run(workspace)
    assert "2026-01-01T00:00:10.000Z" in output
    assert output.index("p-1") < output.index("p-2")
    assert output.count("0.1.0") == 3


def test_cli_agents_messages_unknown_kind_is_refused(workspace: Path) -> None:
    result = CliRunner().invoke(app, ["-w", str(workspace), "agents", "messages", "--kind", "alarms"])
    assert result.exit_code == 2


def test_cli_agents_messages_output_json_csv_and_table(workspace: Path) -> None:
    assert [m["msg_id"] for m in json.loads(run(workspace, "--output", "json"))] == [
        "p-1:9",
        "p-1:10",
        "p-2:1",
    ]
    rows = list(csv.reader(io.StringIO(run(workspace, "-o", "csv"))))
    assert rows[0][:4] == ["device_id", "seq", "kind", "produced"]
    assert [r[0] for r in rows[1:]] == ["p-1", "p-1", "p-2"]
    assert json.loads(rows[1][-1]) == {"n": 9}


def test_cli_agents_messages_since_accepts_a_relative_time(workspace: Path) -> None:
    assert json.loads(run(workspace, "--json", "--since", "1h")) == []  # all are of 2026-01-01
    assert len(json.loads(run(workspace, "--json", "--since", "100000d"))) == 3


def test_cli_agents_messages_database_url_option(workspace: Path, tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    with open_store(other) as store:
        store.upgrade()
    assert json.loads(run(workspace, "--json", "--database-url", other)) == []
    assert (
        len(json.loads(run(workspace, "--json", "--db", load_settings(workspace).resolved_database_url))) == 3
    )
