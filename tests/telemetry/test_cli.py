"""``pumpops ingest`` and ``pumpops simulate`` as an operator runs them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pumpops.cli import app
from pumpops.cli.telemetry import parse_duration
from pumpops.errors import ConfigError
from pumpops.settings import load_settings
from pumpops.store import open_store

from .conftest import OwnMosquitto, free_port, wait_until


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("30m", 1800.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1.5h", 5400.0),
        ("500ms", 0.5),
    ],
)
def test_parse_duration_accepts(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "-1s", "0", "2 weeks", "1y"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    result = CliRunner().invoke(app, ["init", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    return tmp_path / "ws"


def test_cli_simulate_with_embedded_broker_is_refused_with_advice(workspace: Path) -> None:
    result = CliRunner().invoke(app, ["-w", str(workspace), "simulate", "--broker", "embedded"])
    assert isinstance(result.exception, ConfigError)
    assert "pumpops demo" in str(result.exception)
    port = load_settings(workspace).embedded_broker_port  # 1884 by default since issue 11
    assert f"--broker mqtt://127.0.0.1:{port}" in str(result.exception)


def test_cli_ingest_shared_group_on_embedded_broker_is_refused(workspace: Path) -> None:
    result = CliRunner().invoke(
        app, ["-w", str(workspace), "ingest", "--shared-group", "g", "--duration", "1"]
    )
    assert isinstance(result.exception, ConfigError)
    assert "shared subscriptions" in str(result.exception)


def test_cli_ingest_runs_the_embedded_broker_for_its_duration(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUMPOPS_EMBEDDED_BROKER_PORT", str(free_port()))
    result = CliRunner().invoke(
        app, ["-w", str(workspace), "ingest", "--duration", "1", "--client-id", "cli-t"]
    )
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout[result.stdout.index("{") :])
    assert stats["connects"] == 1
    assert stats["received"] == 0


class _Lines:
    """Collects a subprocess's stderr lines on a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stderr is not None
        self._thread = threading.Thread(target=self._read, args=(proc.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line)

    def __contains__(self, text: str) -> bool:
        return any(text in line for line in self.lines)


@pytest.fixture
def ingest_proc(workspace: Path, own_mosquitto: OwnMosquitto, prefix: str) -> Iterator[subprocess.Popen[str]]:
    env = dict(os.environ, PUMPOPS_TOPIC_PREFIX=prefix, PUMPOPS_INGEST__BATCH_MAX_WAIT_S="0.02")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pumpops",
            "-w",
            str(workspace),
            "ingest",
            "--broker",
            own_mosquitto.address.url,
            "--client-id",
            f"cli-{prefix.split('/', maxsplit=1)[0]}",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = _Lines(proc)
    wait_until(lambda: "subscribed" in lines, timeout_s=30, what="ingest to subscribe")
    yield proc
    if proc.poll() is None:
        proc.terminate()
    proc.communicate(timeout=30)


def test_cli_simulate_publishes_a_mixed_fleet_that_ingest_stores(
    workspace: Path, own_mosquitto: OwnMosquitto, prefix: str, ingest_proc: subprocess.Popen[str]
) -> None:
    env = dict(os.environ, PUMPOPS_TOPIC_PREFIX=prefix)
    sim = subprocess.run(
        [
            sys.executable,
            "-m",
            "pumpops",
            "-w",
            str(workspace),
            "simulate",
            "--devices",
            "6",
            "--seed",
            "3",
            "--duration",
            "15m",
            "--speed",
            "max",
            "--broker",
            own_mosquitto.address.url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert sim.returncode == 0, sim.stderr
    sent = json.loads(sim.stdout)
    truth = json.loads((workspace / "ground-truth.json").read_text())
    fleet = json.loads((workspace / "fleet.json").read_text())
    assert truth["seed"] == 3
    assert len(fleet["devices"]) == 6
    assert {d["profile_id"] for d in fleet["devices"]} == {"acme-ansi", "nordhav-multistage", "sakura-esp"}
    with open_store(f"sqlite:///{workspace / 'pumpops.db'}") as store:
        assert len(store.devices()) == 6
        wait_until(lambda: store.counts()["messages"] >= sent["messages"], timeout_s=60, what="ingest")
        counts = store.counts()
        assert (counts["messages"], counts["readings"], counts["dead_letters"]) == (
            sent["messages"],
            sent["readings"],
            0,
        )
    ingest_proc.send_signal(2)  # Ctrl-C: graceful
    out, _ = ingest_proc.communicate(timeout=30)
    assert ingest_proc.returncode == 0
    assert json.loads(out[out.index("{") :])["stored_messages"] == sent["messages"]


def test_cli_simulate_no_register_leaves_the_database_alone(
    workspace: Path, own_mosquitto: OwnMosquitto, prefix: str, tmp_path: Path
) -> None:
    truth = tmp_path / "elsewhere" / "truth.json"
    env = dict(os.environ, PUMPOPS_TOPIC_PREFIX=prefix)
    sim = subprocess.run(
        [
            sys.executable,
            "-m",
            "pumpops",
            "-w",
            str(workspace),
            "simulate",
            "--devices",
            "2",
            "--duration",
            "2m",
            "--speed",
            "max",
            "--broker",
            own_mosquitto.address.url,
            "--no-register",
            "--ground-truth",
            str(truth),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert sim.returncode == 0, sim.stderr
    assert truth.is_file()
    assert (truth.parent / "fleet.json").is_file()
    with open_store(f"sqlite:///{workspace / 'pumpops.db'}") as store:
        assert store.devices() == []


def test_cli_replay_skab_files_are_stored_as_devices_of_the_testbed_profile(
    workspace: Path,
    own_mosquitto: OwnMosquitto,
    prefix: str,
    ingest_proc: subprocess.Popen[str],
    skab_dir: Path,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "skab" / "valve2"
    folder.mkdir(parents=True)
    for name in ("0.csv", "1.csv"):
        (folder / name).write_bytes((skab_dir / "valve2" / name).read_bytes())
    env = dict(os.environ, PUMPOPS_TOPIC_PREFIX=prefix)
    replay = subprocess.run(
        [
            sys.executable,
            "-m",
            "pumpops",
            "-w",
            str(workspace),
            "replay",
            str(tmp_path / "skab"),
            "--broker",
            own_mosquitto.address.url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert replay.returncode == 0, replay.stderr
    sent = json.loads(replay.stdout)
    assert sent["devices"] == 2
    # valve2/0 has 1125 rows and valve2/1 has 1063, of 8 sensors each (SKAB README)
    assert sent["readings"] == (1125 + 1063) * 8
    with open_store(f"sqlite:///{workspace / 'pumpops.db'}") as store:
        wait_until(lambda: store.counts()["messages"] >= sent["messages"], timeout_s=60, what="ingest")
        devices = {d.device_id: d for d in store.devices()}
        assert devices["skab-valve2-0"].profile_id == "skab-testbed"
        frame = store.query("skab-valve2-0", sensors=["discharge_pressure", "motor_temperature"])
        assert frame.ts_us.size == 1125
        # stored in SI: SKAB's bar and degC become Pa and K
        assert 200 < float(frame.values[0, 1]) < 400
        counts = store.counts()
        # a reading the hub refuses (e.g. a gauge pressure below vacuum) is dead-lettered, never lost
        rejected = sent["readings"] - counts["readings"]
        assert rejected == 0 or counts["dead_letters"] > 0


# -- issue 11: truth kept on failure, exit codes, statistics printed on change ------------------


def pumpops(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the ``pumpops`` command as a user does (exit codes come from ``pumpops.cli.main``)."""
    return subprocess.run(
        [sys.executable, "-m", "pumpops", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def test_cli_simulate_broker_down_keeps_the_previous_truth_and_exits_5(workspace: Path) -> None:
    before_truth = '{"previous": "run"}\n'
    before_fleet = '{"previous": "fleet"}\n'
    (workspace / "ground-truth.json").write_text(before_truth)
    (workspace / "fleet.json").write_text(before_fleet)
    closed = f"mqtt://127.0.0.1:{free_port()}"
    sim = pumpops("-w", str(workspace), "simulate", "--devices", "2", "--duration", "2m", "--broker", closed)
    assert sim.returncode == 5, sim.stderr
    assert closed in sim.stderr
    assert (workspace / "ground-truth.json").read_text() == before_truth
    assert (workspace / "fleet.json").read_text() == before_fleet
    assert not list(workspace.glob("runs/*/ground-truth.json"))


def test_cli_simulate_writes_the_truth_per_run_and_the_latest_copy(
    workspace: Path, own_mosquitto: OwnMosquitto, prefix: str
) -> None:
    env = dict(os.environ, PUMPOPS_TOPIC_PREFIX=prefix)
    args = ("-w", str(workspace), "simulate", "--devices", "2", "--duration", "2m", "--speed", "max")
    first = pumpops(*args, "--seed", "1", "--broker", own_mosquitto.address.url, env=env)
    assert first.returncode == 0, first.stderr
    second = pumpops(*args, "--seed", "2", "--broker", own_mosquitto.address.url, env=env)
    assert second.returncode == 0, second.stderr
    runs = sorted(workspace.glob("runs/*/ground-truth.json"))
    assert [json.loads(p.read_text())["seed"] for p in runs] == [1, 2]
    assert all((p.parent / "fleet.json").is_file() for p in runs)
    assert json.loads((workspace / "ground-truth.json").read_text())["seed"] == 2
    assert json.loads(second.stdout)["run"] == str(runs[1].parent)
    assert not list(workspace.rglob(".tmp-*"))


def test_cli_ingest_never_reaching_its_broker_exits_5_naming_the_url(workspace: Path) -> None:
    closed = f"mqtt://127.0.0.1:{free_port()}"
    ingest = pumpops("-w", str(workspace), "ingest", "--broker", closed, "--duration", "2s")
    assert ingest.returncode == 5, ingest.stderr
    assert closed in ingest.stderr.split("error:", 1)[1]


@pytest.mark.parametrize(
    ("make", "code"),
    [
        ("malformed", 3),
        ("missing", 4),
    ],
)
def test_cli_replay_bad_csv_exits_3_and_missing_path_4(
    workspace: Path, tmp_path: Path, make: str, code: int
) -> None:
    path = tmp_path / "skab"
    if make == "malformed":
        path.mkdir()
        (path / "0.csv").write_text("datetime;Accelerometer1RMS\n2020-01-01 00:00:00;not-a-number\n")
    replay = pumpops("-w", str(workspace), "replay", str(path), "--broker", f"mqtt://127.0.0.1:{free_port()}")
    assert replay.returncode == code, replay.stderr
    assert str(path) in replay.stderr


def test_ingest_stats_line_unchanged_prints_nothing() -> None:
    from pumpops.cli.telemetry import ingest_stats_line
    from pumpops.telemetry._ingest import IngestStats

    first = ingest_stats_line(IngestStats(received=3, stored_messages=3, connected=True))
    assert first is not None
    assert "received 3" in first
    assert ingest_stats_line(IngestStats(received=3, stored_messages=3, connected=True), first) is None
    changed = ingest_stats_line(IngestStats(received=4, stored_messages=4, connected=True), first)
    assert changed is not None
    assert "received 4" in changed
    down = ingest_stats_line(IngestStats(received=3, stored_messages=3, connected=False), first)
    assert down is not None
    assert "not connected" in down


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["ingest", "--duration", "2 weeks"], "--duration"),
        (["simulate", "--broker", "mqtt://127.0.0.1:9", "--duration", "forever"], "--duration"),
        (["simulate", "--broker", "mqtt://127.0.0.1:9", "--speed", "fast"], "--speed"),
        (["simulate", "--broker", "mqtt://127.0.0.1:9", "--start", "yesterday"], "--start"),
    ],
)
def test_cli_bad_flag_value_is_a_usage_error_naming_the_flag(
    workspace: Path, args: list[str], flag: str
) -> None:
    result = CliRunner().invoke(app, ["-w", str(workspace), *args])
    assert result.exit_code == 2, result.output
    words = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())  # typer's error box, unwrapped
    assert f"Invalid value for {flag}:" in words
