"""``pumpops rollout ...`` through ``pumpops.cli.app``: a SQLite workspace, Mosquitto on 127.0.0.1:1883."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pumpops.cli import app
from pumpops.cli.rollout import parse_gate
from pumpops.errors import ConfigError, InputError, NotFoundError, PumpopsError
from pumpops.fleet import Device
from pumpops.settings import load_settings
from pumpops.store import open_store

DEVICES = [Device(f"p-{i}", "site-a", "acme-ansi", "g1") for i in range(4)]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def refused(*args: str) -> PumpopsError:
    """The pumpops error a command raises (``pumpops.cli.main`` turns it into a message and exit code)."""
    result = CliRunner().invoke(app, list(args))
    assert isinstance(result.exception, PumpopsError), result.output
    return result.exception


def _mosquitto() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=0.5):
            return True
    except OSError:
        return False


def _clear_retained(prefix: str) -> None:
    """Remove the desired states a test left on the shared broker (an empty retained payload)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-clear-{uuid.uuid4().hex[:8]}")
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    for d in DEVICES:
        topic = f"{prefix}/{d.site}/{d.device_id}/desired"
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A workspace on SQLite with a group of 4 devices and releases 1 and 2; its own topic prefix."""
    monkeypatch.chdir(tmp_path)
    for name in ("PUMPOPS_DATABASE_URL", "PUMPOPS_WORKSPACE", "PUMPOPS_ACTOR", "PUMPOPS_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    prefix = f"test-cli-{uuid.uuid4().hex[:8]}/v1"
    monkeypatch.setenv("PUMPOPS_TOPIC_PREFIX", prefix)
    assert run("init", ".", "--broker-url", "mqtt://127.0.0.1:1883")[0] == 0
    with open_store(load_settings(tmp_path).resolved_database_url) as store:
        store.register_devices(DEVICES)
        for v in (1, 2):
            store.add_release("m", v, "g1", ["x86_64-ipc"], created_by="t", bundle_root="/tmp", record={})
    yield tmp_path
    if _mosquitto():
        _clear_retained(prefix)


@pytest.mark.parametrize(
    ("items", "on_fail", "error"),
    [
        (["min_soak_s"], None, "--gate min_soak_s: give key=value"),
        (["nope=1"], None, "--gate nope: unknown setting"),
        (["on_fail=pause"], None, "--gate on_fail: unknown setting"),
        (["max_crash_loops=1.5"], None, "--gate max_crash_loops=1.5: must be a whole number"),
        (["min_installed_fraction=2"], None, "--gate min_installed_fraction=2: .*fraction"),
        (["deadline=soon"], None, "--gate deadline=soon: must be a duration"),
        (["deadline=1h", "min_soak=2h"], None, "--gate min_soak=2h: .*deadline_s"),
        ([], "explode", "--on-fail explode: must be pause or rollback"),
    ],
)
def test_parse_gate_refuses_bad_options_naming_the_option_as_typed(
    items: list[str], on_fail: str | None, error: str
) -> None:
    with pytest.raises(ConfigError, match=error) as refused_with:
        parse_gate(items, on_fail)
    assert "on_fail=" not in str(refused_with.value)


def test_parse_gate_durations_with_or_without_suffix() -> None:
    policy = parse_gate(["deadline=2h", "min_soak_s=90s", "max_crash_loops=1"], "pause")
    assert (policy.deadline_s, policy.min_soak_s, policy.max_crash_loops, policy.on_fail) == (
        7200.0,
        90.0,
        1,
        "pause",
    )
    assert parse_gate(["deadline_s=600"], None).deadline_s == 600.0  # plain seconds still work


def test_cli_status_without_rollouts_and_refusals_exit_codes(workspace: Path) -> None:
    assert run("rollout", "status") == (0, "no rollouts yet\n")
    assert run("rollout", "status", "--json") == (0, "[]\n")
    assert isinstance(refused("rollout", "pause", "r-nope"), NotFoundError)
    exc = refused("rollout", "start", "m/9", "--group", "g1", "--on-fail", "pause")
    assert isinstance(exc, NotFoundError)
    assert "no release of m/9" in str(exc)
    assert isinstance(refused("rollout", "start", "m/2", "--group", "g1", "--waves", "50,40"), ConfigError)
    assert "tick" in run("rollout", "--help")[1]


def test_cli_start_status_tick_pause_resume_abort(workspace: Path) -> None:
    if not _mosquitto():
        pytest.skip("Mosquitto is not running on 127.0.0.1:1883")
    code, out = run(
        "rollout", "start", "m/2", "--group", "g1", "--waves", "50,100",
        "--gate", "min_soak_s=0", "--gate", "deadline_s=60", "--on-fail", "pause", "--previous", "1",
        "--actor", "ann",
    )  # fmt: skip
    assert code == 0, out
    rid = out.split()[1].rstrip(":")
    code, out = run("rollout", "status", rid, "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert (doc["status"], doc["wave"], doc["wave_sizes"], doc["previous_version"]) == (
        "running",
        1,
        [2, 2],
        "1",
    )
    assert doc["policy"]["on_fail"] == "pause"
    assert doc["gate_now"]["outcome"] == "wait"
    assert [h["action"] for h in doc["history"]] == ["rollout.started"]
    assert run("rollout", "tick") == (0, f"rollout {rid}: running, nothing to do yet\n")
    assert run("rollout", "pause", rid, "--reason", "lunch")[0] == 0
    exc = refused("rollout", "pause", rid)
    assert isinstance(exc, InputError)
    assert "already paused" in str(exc)
    assert run("rollout", "resume", rid) == (0, f"rollout {rid} is running (wave 1/2)\n")
    assert run("rollout", "abort", rid, "--roll-back")[0] == 0
    code, out = run("rollout", "status", "--json")
    assert [(r["rollout_id"], r["status"]) for r in json.loads(out)] == [(rid, "rolling_back")]
    assert "rolling_back" in run("rollout", "status", rid)[1]
    with open_store(load_settings(workspace).resolved_database_url) as store:
        entries = store.audit_entries(subject=f"rollout/{rid}")
    assert [e.actor for e in entries][:1] == ["ann"]
    assert [e.action for e in entries] == [
        "rollout.started", "rollout.paused", "rollout.resumed", "rollout.rolling_back",
    ]  # fmt: skip


def _main(
    *args: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """Run ``pumpops`` as its console script does (errors become exit codes), in this process."""
    import sys

    from pumpops.cli import main

    monkeypatch.setattr(sys, "argv", ["pumpops", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


DOWN = "mqtt://127.0.0.1:9"  # nothing listens there: the broker is unreachable


def test_cli_tick_broker_unreachable_exits_5(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _main(
        *("rollout", "start", "m/2", "--group", "g1", "--on-fail", "pause", "--broker", DOWN),
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert code == 5, err  # stored as pending; the controller starts it once the broker answers
    assert "pending" in err
    code, out, err = _main("rollout", "tick", "--broker", DOWN, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 5, out + err
    assert "step failed" in out


@pytest.mark.parametrize(
    ("args", "code", "named"),
    [
        (["rollout", "pause", "r-nope"], 4, "r-nope"),
        (["rollout", "status", "r-nope"], 4, "r-nope"),
        (["rollout", "start", "m/9", "--group", "g1"], 4, "m/9"),
        (["rollout", "start", "m/2", "--group", "g1", "--on-fail", "pauze"], 2, "--on-fail pauze"),
        (["rollout", "start", "m/2", "--group", "g1"], 2, "--on-fail pause"),  # first rollout: no rollback
        (["rollout", "start", "m/2", "--group", "g1", "--waves", "50,40"], 2, "--waves 50,40"),
        (["rollout", "start", "m/2", "--group", "g1", "--gate", "deadline=soon"], 2, "--gate deadline=soon"),
        (["rollout", "start", "m-2", "--group", "g1"], 2, "m-2"),
        (["rollout", "run", "--interval", "often"], 2, "--interval often"),
    ],
)
def test_cli_rollout_exit_codes_and_messages_name_the_flag(
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    named: str,
) -> None:
    exit_code, out, err = _main(*args, monkeypatch=monkeypatch, capsys=capsys)
    assert exit_code == code, out + err
    assert named in err


def test_cli_start_alias_not_in_registry_is_not_found(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _main(
        "rollout", "start", "m@champion", "--group", "g1", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 4, err
    assert "m" in err


def _pending_rollout(workspace: Path) -> str:
    """A rollout stored as pending (its start could not reach the broker)."""
    start = ["rollout", "start", "m/2", "--group", "g1", "--on-fail", "pause", "--broker", DOWN]
    result = CliRunner().invoke(app, start)
    assert result.exception is not None
    _, out = run("rollout", "list", "--json")
    (row,) = json.loads(out)
    return str(row["rollout_id"])


@pytest.mark.parametrize("command", [["rollout", "list"], ["rollout", "status"]])
def test_cli_rollout_list_output_formats(workspace: Path, command: list[str]) -> None:
    rid = _pending_rollout(workspace)
    code, out = run(*command, "--output", "json")
    assert code == 0, out
    assert [r["rollout_id"] for r in json.loads(out)] == [rid]
    assert json.loads(run(*command, "--json")[1]) == json.loads(out)
    code, out = run(*command, "-o", "csv")
    assert code == 0, out
    header, *rows = out.splitlines()
    assert header.split(",")[:3] == ["rollout_id", "release", "group"]
    assert rows[0].startswith(rid + ",m/2,g1,pending")
    code, out = run(*command)
    assert code == 0, out
    assert rid in out  # the whole id on one line, copied into commands


def test_cli_rollout_status_one_output_formats(workspace: Path) -> None:
    rid = _pending_rollout(workspace)
    code, out = run("rollout", "status", rid, "--output", "json")
    assert code == 0, out
    assert json.loads(out)["status"] == "pending"
    code, out = run("rollout", "status", rid, "--output", "csv")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "field,value"
    assert f"rollout_id,{rid}" in lines


def test_cli_rollout_status_database_url_option(workspace: Path, tmp_path: Path) -> None:
    rid = _pending_rollout(workspace)
    url = load_settings(workspace).resolved_database_url
    other = tmp_path / "other"
    assert run("init", str(other))[0] == 0
    code, out = run("-w", str(other), "rollout", "list", "--database-url", url, "--json")
    assert code == 0, out
    assert [r["rollout_id"] for r in json.loads(out)] == [rid]


def test_rollout_cli_module_imports_no_heavy_library() -> None:
    """Friction 8: the command module loads typer and the CLI support only; the rest loads in the commands."""
    import subprocess
    import sys

    code = (
        "import sys, pumpops.cli.rollout\n"
        "heavy = ('mlflow', 'sklearn', 'sqlalchemy', 'onnx', 'onnxruntime', 'tuf', 'pint', 'numpy',"
        " 'pydantic', 'paho')\n"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""


def test_cli_abort_roll_back_signs_the_pin_in_the_workspace_repository(workspace: Path) -> None:
    """``rollout abort --roll-back`` goes through the hub's wiring: the rollback is signed before its hint."""
    if not _mosquitto():
        pytest.skip("Mosquitto is not running on 127.0.0.1:1883")
    import hashlib

    from pumpops.release import PublishedFile, PublishedTarget, keystore, online_signers, open_repository

    assert run("keys", "init")[0] == 0
    settings = load_settings(workspace)
    bundles = []
    for version in ("1", "2"):
        where = workspace / "bundles" / version
        where.mkdir(parents=True)
        model = f"model {version}".encode()
        (where / "model.onnx").write_bytes(model)
        manifest = {"group": "g1", "files": {"model.onnx": {"sha256": hashlib.sha256(model).hexdigest()}}}
        (where / "manifest.json").write_text(json.dumps(manifest))
        files = tuple(PublishedFile(n, where / n) for n in ("manifest.json", "model.onnx"))
        bundles.append(PublishedTarget("g1", "x86_64-ipc", version, "1.0.0", files))
    open_repository(settings).publish(bundles, online_signers(keystore(settings)))

    code, out = run("rollout", "start", "m/2", "--group", "g1", "--previous", "1", "--actor", "ann")
    assert code == 0, out
    rid = out.split()[1].rstrip(":")
    assert open_repository(settings).intent("g1").pinned is None  # nothing pinned: nothing signed
    assert run("rollout", "abort", rid, "--roll-back", "--actor", "ann")[0] == 0
    intent = open_repository(settings).intent("g1")
    assert intent.pinned == "1"
    assert rid in intent.reason
    with open_store(settings.resolved_database_url) as store:
        (entry,) = store.audit_entries(subject="group/g1")
    assert (entry.actor, entry.action) == ("ann", "release.intent_signed")
