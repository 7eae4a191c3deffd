"""``pumpops fleet status|evaluate``, ``drift status`` and ``feedback`` on a SQLite workspace."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pumpops._cli_support import console
from pumpops.cli import app
from pumpops.errors import NotFoundError
from pumpops.settings import init_workspace
from pumpops.store import open_store

from ._monitoring_records import FLEET, HOUR_MS, MINUTE_MS, T0_MS, Agent

NOW_MS = T0_MS + 24 * HOUR_MS
NOW = "2026-01-02T00:00:00"
STARTED_MS = NOW_MS - HOUR_MS


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as wide as they need: cells are not folded in the assertions."""
    monkeypatch.setattr(console, "width", 220)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace whose g1 has two of four devices drifting, g2 none; g1-1 raised an alarm."""
    folder = tmp_path / "ws"
    init_workspace(folder)
    agents = {d.device_id: Agent(d.device_id, d.site) for d in FLEET}
    records = []
    for name, agent in agents.items():
        drifting = name in ("g1-1", "g1-2")
        records.append(agent.state(NOW_MS - MINUTE_MS, drift="drift" if drifting else "ok"))
        records.append(agent.summary(NOW_MS - 2 * MINUTE_MS, alarms=1 if name == "g1-1" else 0))
        records.append(
            agent.drift(NOW_MS - 3 * MINUTE_MS, alert=drifting, psi={"flow_rate": 0.6 if drifting else 0.01})
        )
    records.append(agents["g1-1"].alarm(STARTED_MS))
    with open_store(f"sqlite:///{folder / 'pumpops.db'}") as store:
        store.upgrade()
        store.register_devices(FLEET)
        store.put_agent_messages(records)
    return folder


def run(workspace: Path, *args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, ["--workspace", str(workspace), *args])
    return result.exit_code, result.output, result.exception


def test_cli_fleet_status_table_per_group(workspace: Path) -> None:
    code, out, _ = run(workspace, "fleet", "status", "--now", NOW)
    assert code == 0, out
    assert "g1" in out
    assert "g2" in out
    assert "pumpops-g1/1 ×4" in out
    assert "2 DRIFT" in out  # two drifting devices, the group drifts (no alert until evaluate)


def test_cli_fleet_status_json_and_group_filter(workspace: Path) -> None:
    code, out, _ = run(workspace, "fleet", "status", "--now", NOW, "--json", "--group", "g1")
    assert code == 0, out
    data = json.loads(out)
    assert [g["group"] for g in data["groups"]] == ["g1"]
    (g1,) = data["groups"]
    assert (g1["reporting"], g1["healthy"], g1["open_alerts"]) == (4, 4, [])
    assert g1["alarms"]["alarms_raised"] == 1
    assert {d["device_id"] for d in data["devices"]} == {"g1-1", "g1-2", "g1-3", "g1-4"}
    code, out, _ = run(workspace, "fleet", "status", "--now", NOW, "--group", "g1")
    assert code == 0, out
    assert "Devices of g1" in out
    assert "g1-4" in out


def test_cli_fleet_status_unknown_group_is_not_found(workspace: Path) -> None:
    code, _, exc = run(workspace, "fleet", "status", "--group", "nope")
    assert code != 0
    assert isinstance(exc, NotFoundError)
    assert "'nope'" in str(exc)


def test_cli_fleet_evaluate_opens_once_and_status_shows_the_alert(workspace: Path) -> None:
    code, out, _ = run(workspace, "fleet", "evaluate", "--now", NOW, "--actor", "cron@hub")
    assert code == 0, out
    alert_id = f"drift:g1:{NOW_MS}"
    assert f"opened {alert_id}: 2 of 4 reporting device(s) drift" in out
    code, out, _ = run(workspace, "fleet", "evaluate", "--now", NOW, "--json")
    assert code == 0, out
    assert json.loads(out)["changes"] == []
    code, out, _ = run(workspace, "fleet", "status", "--now", NOW, "--json")
    groups = {g["group"]: g for g in json.loads(out)["groups"]}
    assert [a["alert_id"] for a in groups["g1"]["open_alerts"]] == [alert_id]
    assert groups["g2"]["open_alerts"] == []
    with open_store(f"sqlite:///{workspace / 'pumpops.db'}") as store:
        (entry,) = store.audit_entries()
        assert (entry.actor, entry.action, entry.subject) == ("cron@hub", "fleet.drift_detected", alert_id)
        assert [e.kind for e in store.events()] == ["fleet.drift_detected"]


def test_cli_drift_status_per_device_and_group(workspace: Path) -> None:
    run(workspace, "fleet", "evaluate", "--now", NOW)
    code, out, _ = run(workspace, "drift", "status", "--now", NOW, "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["policy"] == {"window_s": 21600.0, "min_fraction": 0.3, "min_devices": 2}
    devices = {d["device_id"]: d for d in data["devices"]}
    assert devices["g1-1"]["top_psi"] == [{"sensor": "flow_rate", "psi": 0.6}]
    assert (devices["g1-1"]["drifting"], devices["g1-3"]["drifting"]) == (True, False)
    groups = {g["group"]: g for g in data["groups"]}
    assert groups["g1"]["drifting"] is True
    assert [a["alert_id"] for a in groups["g1"]["open_alerts"]] == [f"drift:g1:{NOW_MS}"]
    assert groups["g2"]["drifting"] is False
    code, out, _ = run(workspace, "drift", "status", "--now", NOW, "--group", "g1")
    assert code == 0, out
    assert "flow_rate 0.60" in out
    assert f"drift:g1:{NOW_MS}" in out
    assert "g2-1" not in out


def test_cli_feedback_records_the_verdict(workspace: Path) -> None:
    alarm_id = f"g1-1:{STARTED_MS}"
    code, out, _ = run(
        workspace, "feedback", alarm_id, "--false-alarm", "--note", "valve test", "--actor", "ann"
    )
    assert code == 0, out
    assert f"{alarm_id}: false_alarm (by ann)" in out
    code, out, _ = run(workspace, "feedback", alarm_id, "--confirmed", "--json")
    assert code == 0, out
    assert json.loads(out)["verdict"] == "confirmed"
    with open_store(f"sqlite:///{workspace / 'pumpops.db'}") as store:
        assert [f.verdict for f in store.feedback()] == ["confirmed"]
        assert [e.action for e in store.audit_entries()] == ["alarm.feedback", "alarm.feedback"]


@pytest.mark.parametrize("flags", [[], ["--confirmed", "--false-alarm"]])
def test_cli_feedback_needs_exactly_one_verdict(workspace: Path, flags: list[str]) -> None:
    code, out, _ = run(workspace, "feedback", f"g1-1:{STARTED_MS}", *flags)
    assert code == 2
    assert "exactly one of --confirmed and --false-alarm" in out


def test_cli_feedback_unknown_alarm_exits_with_its_name(workspace: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pumpops",
            "--workspace",
            str(workspace),
            "feedback",
            "g1-1:42",
            "--confirmed",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 4, out.stderr  # not found
    assert "alarm 'g1-1:42': the hub never received an alarm message with this id" in out.stderr
