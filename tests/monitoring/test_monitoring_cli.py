"""``pumpops fleet status|evaluate``, ``drift status`` and ``feedback`` on a SQLite workspace."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pumpops.cli import app
from pumpops.errors import ConfigError, NotFoundError
from pumpops.settings import init_workspace
from pumpops.store import open_store

from ._monitoring_records import FLEET, HOUR_MS, MINUTE_MS, T0_MS, Agent

NOW_MS = T0_MS + 24 * HOUR_MS
NOW = "2026-01-02T00:00:00"
STARTED_MS = NOW_MS - HOUR_MS


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
    (g1_line,) = [line for line in out.splitlines() if "│ g1 " in line]
    assert "DRIFT" in g1_line  # two drifting devices, the group drifts (no alert until evaluate)


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


# ---------------------------------------------------------------- friction 7: no verdict without evidence


@pytest.fixture
def silent_workspace(tmp_path: Path) -> Path:
    """A workspace whose fleet is registered; only g1-1 reported, and without a drift word."""
    folder = tmp_path / "silent"
    init_workspace(folder)
    with open_store(f"sqlite:///{folder / 'pumpops.db'}") as store:
        store.upgrade()
        store.register_devices(FLEET)
        store.put_agent_messages([Agent("g1-1").summary(NOW_MS - 2 * MINUTE_MS, alarms=0)])
    return folder


def test_cli_drift_status_no_reports_says_no_data(silent_workspace: Path) -> None:
    code, out, _ = run(silent_workspace, "drift", "status", "--now", NOW, "--json")
    assert code == 0, out
    groups = {g["group"]: g for g in json.loads(out)["groups"]}
    assert groups["g2"]["verdict"] == "no data"  # nobody reported
    assert groups["g1"]["verdict"] == "no data"  # g1-1 reported, but said nothing about drift
    assert "none said whether it drifts" in groups["g1"]["reason"]
    code, out, _ = run(silent_workspace, "drift", "status", "--now", NOW)
    assert code == 0, out
    group_lines = [line for line in out.splitlines() if line.startswith(("│ g1 ", "│ g2 "))]
    assert len(group_lines) == 2, out
    assert all("no data" in line and " ok " not in line for line in group_lines), out


def test_cli_drift_status_reporting_group_says_ok(workspace: Path) -> None:
    code, out, _ = run(workspace, "drift", "status", "--now", NOW, "--json")
    assert code == 0, out
    verdicts = {g["group"]: g["verdict"] for g in json.loads(out)["groups"]}
    assert verdicts == {"g1": "drift", "g2": "ok"}


def test_cli_fleet_status_group_nobody_reports_from_says_no_data(silent_workspace: Path) -> None:
    code, out, _ = run(silent_workspace, "fleet", "status", "--now", NOW, "--output", "csv")
    assert code == 0, out
    rows = {r["group"]: r for r in csv.DictReader(io.StringIO(out))}
    assert (rows["g2"]["reporting"], rows["g2"]["drift"]) == ("0", "no data")
    code, out, _ = run(silent_workspace, "fleet", "status", "--now", NOW, "--devices", "--json")
    devices = {d["device_id"]: d for d in json.loads(out)["devices"]}
    assert devices["g2-1"]["verdict"] == "no data"


def test_cli_fleet_evaluate_no_data_keeps_the_open_alert(workspace: Path) -> None:
    code, out, _ = run(workspace, "fleet", "evaluate", "--now", NOW)
    assert code == 0, out
    later = "2026-01-03T00:00:00"  # a day on: nobody reported since, no evidence the drift ended
    code, out, _ = run(workspace, "fleet", "evaluate", "--now", later, "--json")
    assert code == 0, out
    assert json.loads(out)["changes"] == []
    code, out, _ = run(workspace, "drift", "status", "--now", later, "--group", "g1", "--json")
    (g1,) = json.loads(out)["groups"]
    assert g1["verdict"] == "no data"
    assert [a["alert_id"] for a in g1["open_alerts"]] == [f"drift:g1:{NOW_MS}"]


# ---------------------------------------------------------------- friction 6: --output table|json|csv

READS = [
    pytest.param(["fleet", "status"], id="fleet-status"),
    pytest.param(["fleet", "status", "--devices"], id="fleet-status-devices"),
    pytest.param(["drift", "status"], id="drift-status"),
    pytest.param(["drift", "status", "--devices"], id="drift-status-devices"),
]


@pytest.mark.parametrize("command", READS)
def test_cli_monitoring_reads_output_json_parses(workspace: Path, command: list[str]) -> None:
    code, out, _ = run(workspace, *command, "--now", NOW, "--output", "json")
    assert code == 0, out
    assert json.loads(out)
    code, flag_out, _ = run(workspace, *command, "--now", NOW, "--json")
    assert json.loads(flag_out) == json.loads(out)


@pytest.mark.parametrize("command", READS)
def test_cli_monitoring_reads_output_csv_has_header(workspace: Path, command: list[str]) -> None:
    code, out, _ = run(workspace, *command, "--now", NOW, "-o", "csv")
    assert code == 0, out
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][0] in ("group", "device"), rows[0]
    assert len(rows) > 2
    assert all(len(r) == len(rows[0]) for r in rows)


def test_cli_drift_status_table_shows_long_values_in_full(workspace: Path) -> None:
    code, out, _ = run(workspace, "drift", "status", "--now", NOW)
    assert code == 0, out
    # a reason of ~90 characters on one line: the table is not cut to 80 columns off a terminal
    assert "2 of 4 reporting device(s) drift in the last 6 h: 0.50 >= min_fraction (0.3), at least 2" in out


# ---------------------------------------------------------------- friction 9: one vocabulary


def test_cli_drift_status_now_relative_and_window_duration(workspace: Path) -> None:
    code, out, _ = run(workspace, "drift", "status", "--now", "1h", "--window", "30m", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["policy"]["window_s"] == 1800.0
    assert {g["verdict"] for g in data["groups"]} == {"no data"}  # an hour ago on the wall clock


def test_cli_fleet_status_database_url_option(workspace: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{workspace / 'pumpops.db'}"
    elsewhere = tmp_path / "other"
    init_workspace(elsewhere)
    code, out, _ = run(elsewhere, "fleet", "status", "--now", NOW, "--database-url", url, "--json")
    assert code == 0, out
    assert {g["group"] for g in json.loads(out)["groups"]} == {"g1", "g2"}


@pytest.mark.parametrize(
    ("flags", "named"),
    [(["--now", "yesterday"], "--now"), (["--window", "6 hours"], "--window")],
)
def test_cli_drift_status_bad_time_names_the_flag(workspace: Path, flags: list[str], named: str) -> None:
    code, _, exc = run(workspace, "drift", "status", *flags)
    assert code != 0
    assert isinstance(exc, ConfigError)
    assert named in str(exc)


def test_cli_fleet_alerts_lists_open_then_all(workspace: Path) -> None:
    code, out, _ = run(workspace, "fleet", "alerts")
    assert (code, out.strip()) == (0, "no open fleet alert")
    run(workspace, "fleet", "evaluate", "--now", NOW)
    code, out, _ = run(workspace, "fleet", "alerts", "--output", "json")
    assert code == 0, out
    assert [(a["alert_id"], a["closed_at_us"]) for a in json.loads(out)] == [(f"drift:g1:{NOW_MS}", None)]
    code, out, _ = run(workspace, "fleet", "alerts", "--all", "-o", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["alert"], r["group"], r["closed"]) for r in rows] == [(f"drift:g1:{NOW_MS}", "g1", "")]
    code, out, _ = run(workspace, "fleet", "alerts")
    assert "2 of 4 reporting device(s) drift in the last 6 h: 0.50 >= min_fraction (0.3), at least 2" in out


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_cli_fleet_feedback_lists_verdicts(workspace: Path, fmt: str) -> None:
    alarm_id = f"g1-1:{STARTED_MS}"
    note = "valve exercised by the night shift during the pressure test, not a fault"  # long
    assert run(workspace, "feedback", alarm_id, "--false-alarm", "--note", note, "--actor", "ann")[0] == 0
    code, out, _ = run(workspace, "fleet", "feedback", "--device", "g1-1", "--output", fmt)
    assert code == 0, out
    if fmt == "json":
        assert [(f["alarm_id"], f["verdict"], f["note"]) for f in json.loads(out)] == [
            (alarm_id, "false_alarm", note)
        ]
    elif fmt == "csv":
        (row,) = csv.DictReader(io.StringIO(out))
        assert (row["alarm_id"], row["actor"], row["note"]) == (alarm_id, "ann", note)
    else:
        assert note in out
    code, out, _ = run(workspace, "fleet", "feedback", "--since", "1h", "--json")
    assert code == 0, out
    assert [f["alarm_id"] for f in json.loads(out)] == [alarm_id]  # given just now: within the last hour
    code, out, _ = run(workspace, "fleet", "feedback", "--since", "2099-01-01", "--json")
    assert json.loads(out) == []


@pytest.mark.parametrize(
    "command",
    [
        ["fleet", "status"],
        ["fleet", "status", "--devices"],
        ["drift", "status"],
        ["drift", "status", "--devices"],
        ["fleet", "alerts"],
        ["fleet", "feedback"],
    ],
)
def test_cli_monitoring_reads_csv_header_without_rows(tmp_path: Path, command: list[str]) -> None:
    empty = tmp_path / "empty"
    init_workspace(empty)
    code, out, _ = run(empty, *command, "-o", "csv")
    assert code == 0, out
    header = out.splitlines()[0].split(",")
    assert header[0] in ("group", "device", "alert", "alarm_id"), out
    assert len(header) >= 5


def test_monitoring_cli_module_imports_no_heavy_library() -> None:
    """Friction 8: the command module loads typer and the CLI support only; the rest loads in the commands."""
    import subprocess
    import sys

    code = (
        "import sys, pumpops.cli.monitoring\n"
        "heavy = ('mlflow', 'sklearn', 'sqlalchemy', 'onnx', 'onnxruntime', 'tuf', 'pint', 'numpy',"
        " 'pydantic', 'paho')\n"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""


@pytest.fixture
def shift_workspace(tmp_path: Path) -> Path:
    """g1: g1-1 and g1-2 share a confirmed pressure shift, g1-3 is fault-like; g2: one local shift."""
    folder = tmp_path / "ws"
    init_workspace(folder)
    since = NOW_MS - 2 * HOUR_MS
    dp = "discharge_pressure"

    def body(shifted: list[str], hint: str, **extra: object) -> dict[str, object]:
        return {"alert": hint in ("sensor_shift", "operating_shift"), "hint": hint, "shifted": shifted,
                "confirmed": shifted if hint != "fault_like" else [],
                "since_ms": dict.fromkeys(shifted, since),
                "shift": {s: {"shift_sd": 4.2, "shift": 21000.0} for s in shifted}, **extra}  # fmt: skip

    words = {
        "g1-1": body([dp], "sensor_shift"),
        "g1-2": body([dp], "sensor_shift"),
        "g1-3": body(["vibration_velocity"], "fault_like", fault_signs=["vibration_velocity: noisier x2.4"]),
        "g1-4": body([], "none"),
        "g2-1": body(["flow_rate"], "sensor_shift"),
        "g2-2": body([], "none", score_ratio=float("nan")),  # stored as NaN: read as absent
    }
    agents = {d.device_id: Agent(d.device_id, d.site) for d in FLEET}
    records = [agents[d].record("drift", NOW_MS - 3 * MINUTE_MS, b) for d, b in words.items()]
    with open_store(f"sqlite:///{folder / 'pumpops.db'}") as store:
        store.upgrade()
        store.register_devices(FLEET)
        store.put_agent_messages(records)
    return folder


def test_cli_drift_status_says_what_changed_since_when_and_the_tier(shift_workspace: Path) -> None:
    code, out, _ = run(shift_workspace, "drift", "status", "--now", NOW, "--json")
    assert code == 0, out
    data = json.loads(out)
    groups = {g["group"]: g for g in data["groups"]}
    assert (groups["g1"]["verdict"], groups["g1"]["drifting"]) == ("drift", True)
    assert groups["g1"]["shift"]["shared"] == {"discharge_pressure": ["g1-1", "g1-2"]}
    assert groups["g1"]["drifting_devices"] == ["g1-1", "g1-2"]
    assert groups["g2"]["verdict"] == "ok"
    devices = {d["device_id"]: d["shift"] for d in data["devices"]}
    assert devices["g1-1"]["verdict"] == "group_drift"
    assert devices["g1-1"]["shift_sd"] == {"discharge_pressure": 4.2}
    assert devices["g1-3"]["action"] == "keep alarming"
    assert devices["g2-1"]["action"] == "recalibrate the device"
    assert "score_ratio is not a finite number" in devices["g2-2"]["ignored"]
    code, out, _ = run(shift_workspace, "drift", "status", "--now", NOW, "--devices")
    assert code == 0, out
    (line,) = [row for row in out.splitlines() if "g1-1" in row]
    assert "group_drift" in line
    assert "+4.2 sd" in line
    code, out, _ = run(shift_workspace, "fleet", "evaluate", "--now", NOW)
    assert code == 0, out
    assert f"opened drift:g1:{NOW_MS}: shared shifts on discharge_pressure (2 of 4)" in out
