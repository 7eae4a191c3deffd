"""``pumpops devices provision|revoke|list`` and ``pumpops broker config``: files, modes, bad input."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pumpops.cli import app
from pumpops.edge import load_agent_config
from pumpops.errors import ConfigError, InputError, NotFoundError
from pumpops.hub import service_address
from pumpops.security import CredentialRegistry, verify_mosquitto_hash
from pumpops.settings import load_settings
from pumpops.telemetry import BrokerAddress

BROKER = "mqtts://broker.example:8883"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    result = CliRunner().invoke(app, ["init", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    return tmp_path / "ws"


def _run(workspace: Path, *args: str) -> object:
    return CliRunner().invoke(app, ["-w", str(workspace), *args])


def _provision(workspace: Path, device: str, out: Path, *extra: str) -> object:
    return _run(
        workspace,
        "devices", "provision", device,
        "--site", "north-sea-7", "--group", "acme-ansi", "--profile", "acme-ansi",
        "--broker-url", BROKER, "--out", str(out), "--json", *extra,
    )  # fmt: skip


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_provision_writes_what_the_pump_needs(workspace: Path, tmp_path: Path) -> None:
    root = workspace / "tuf" / "repository" / "metadata" / "1.root.json"
    root.parent.mkdir(parents=True)
    root.write_text('{"signed": {"_type": "root"}}')
    out = tmp_path / "p-0001"
    result = _provision(workspace, "p-0001", out, "--client-cert")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert _mode(out) == 0o700
    names = {p.name for p in out.iterdir()}
    assert names == {"agent.toml", "broker.password", "ca.pem", "root.json", "device.pem", "device.key"}
    assert all(_mode(p) == 0o600 for p in out.iterdir())
    assert (out / "root.json").read_text() == root.read_text()
    config = load_agent_config(out / "agent.toml")
    assert config.broker.url == BROKER
    assert config.broker.username == "p-0001"
    assert config.broker.ca_file == out / "ca.pem"
    assert config.broker.cert_file == out / "device.pem"
    password = config.broker.password()
    assert password is not None
    # the hub keeps hashes only
    registry = CredentialRegistry.of_workspace(workspace)
    assert password not in (registry.folder / "identities.json").read_text()
    assert registry.verify("p-0001", password)
    assert verify_mosquitto_hash(registry.get("p-0001").mosquitto_hash, password)
    assert _mode(registry.folder) == 0o700
    assert _mode(registry.folder / "identities.json") == 0o600


@pytest.mark.parametrize(
    ("device", "reason"),
    [("_bad", "must be 1-64"), ("a/b", "must be 1-64"), ("x" * 65, "must be 1-64"), ("hub-ingest", "hub")],
)
def test_provision_refuses_a_bad_device_id(workspace: Path, tmp_path: Path, device: str, reason: str) -> None:
    result = _provision(workspace, device, tmp_path / "out")
    assert isinstance(result.exception, InputError)  # type: ignore[attr-defined]
    assert reason in str(result.exception)  # type: ignore[attr-defined]
    assert not (tmp_path / "out").exists()


def test_provision_refuses_an_existing_device_without_force(workspace: Path, tmp_path: Path) -> None:
    assert _provision(workspace, "p-1", tmp_path / "a").exit_code == 0  # type: ignore[attr-defined]
    first = (tmp_path / "a" / "broker.password").read_text().strip()
    again = _provision(workspace, "p-1", tmp_path / "b")
    assert isinstance(again.exception, InputError)  # type: ignore[attr-defined]
    assert "--force" in str(again.exception)  # type: ignore[attr-defined]
    forced = _provision(workspace, "p-1", tmp_path / "b", "--force")
    assert forced.exit_code == 0, forced.output  # type: ignore[attr-defined]
    registry = CredentialRegistry.of_workspace(workspace)
    assert not registry.verify("p-1", first)  # the old password stopped working
    assert registry.verify("p-1", (tmp_path / "b" / "broker.password").read_text().strip())


def test_provision_refuses_an_unwritable_or_occupied_folder(workspace: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = _provision(workspace, "p-2", blocker / "sub")
    assert isinstance(result.exception, ConfigError)  # type: ignore[attr-defined]
    assert "cannot be written" in str(result.exception)  # type: ignore[attr-defined]
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "something").write_text("x")
    result = _provision(workspace, "p-2", occupied)
    assert isinstance(result.exception, ConfigError)  # type: ignore[attr-defined]
    assert "not empty" in str(result.exception)  # type: ignore[attr-defined]
    # nothing was registered by the refused attempts
    assert [i.name for i in CredentialRegistry.of_workspace(workspace).identities()] == []


@pytest.mark.parametrize("url", ["embedded", "http://x", "mqtt://"])
def test_provision_refuses_a_broker_url_the_pump_cannot_use(
    workspace: Path, tmp_path: Path, url: str
) -> None:
    result = _run(
        workspace,
        "devices", "provision", "p-3", "--site", "s", "--group", "g", "--profile", "acme-ansi",
        "--broker-url", url, "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert isinstance(result.exception, ConfigError)  # type: ignore[attr-defined]


def test_revoke_removes_the_device_and_rewrites_the_broker_passwords(workspace: Path, tmp_path: Path) -> None:
    config = _run(workspace, "broker", "config", "--out", str(tmp_path / "broker"), "--hostname", "localhost")
    assert config.exit_code == 0, config.output  # type: ignore[attr-defined]
    assert _provision(workspace, "p-4", tmp_path / "p4").exit_code == 0  # type: ignore[attr-defined]
    passwords = tmp_path / "broker" / "passwords"
    assert "p-4:$7$" in passwords.read_text()
    result = _run(workspace, "devices", "revoke", "p-4", "--json")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "kill -HUP" in result.output  # type: ignore[attr-defined]
    assert "p-4:" not in passwords.read_text()
    assert "hub-ingest:$7$" in passwords.read_text()
    listed = json.loads(_run(workspace, "devices", "identities", "--json").output)  # type: ignore[attr-defined]
    assert [row["name"] for row in listed] == ["hub-events", "hub-ingest", "hub-rollout"]
    assert all(set(row) == {"name", "role", "site", "group", "created"} for row in listed)


def test_revoke_refuses_unknown_devices_hub_identities_and_bad_pid_files(
    workspace: Path, tmp_path: Path
) -> None:
    assert isinstance(_run(workspace, "devices", "revoke", "nope").exception, NotFoundError)  # type: ignore[attr-defined]
    assert isinstance(_run(workspace, "devices", "revoke", "hub-ingest").exception, InputError)  # type: ignore[attr-defined]
    assert _provision(workspace, "p-5", tmp_path / "p5").exit_code == 0  # type: ignore[attr-defined]
    _run(workspace, "broker", "config", "--out", str(tmp_path / "broker"), "--hostname", "localhost")
    pid_file = tmp_path / "mosquitto.pid"
    pid_file.write_text("not a pid")
    result = _run(workspace, "devices", "revoke", "p-5", "--pid-file", str(pid_file))
    assert isinstance(result.exception, ConfigError)  # type: ignore[attr-defined]
    assert "no process id" in str(result.exception)  # type: ignore[attr-defined]


def test_revoke_with_a_dead_pid_says_the_broker_is_not_running(workspace: Path, tmp_path: Path) -> None:
    assert _provision(workspace, "p-6", tmp_path / "p6").exit_code == 0  # type: ignore[attr-defined]
    _run(workspace, "broker", "config", "--out", str(tmp_path / "broker"), "--hostname", "localhost")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pid_file = tmp_path / "mosquitto.pid"
    pid_file.write_text(f"{dead.pid}\n")
    result = _run(workspace, "devices", "revoke", "p-6", "--pid-file", str(pid_file))
    assert isinstance(result.exception, NotFoundError)  # type: ignore[attr-defined]
    assert "is the broker running" in str(result.exception)  # type: ignore[attr-defined]


def test_broker_config_writes_private_files_and_settings_the_hub_loads(
    workspace: Path, tmp_path: Path
) -> None:
    out = tmp_path / "broker"
    result = _run(
        workspace,
        "broker",
        "config",
        "--out",
        str(out),
        "--hostname",
        "localhost",
        "--port",
        "18883",
        "--json",
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    expected = {
        "mosquitto.conf",
        "passwords",
        "acl",
        "ca.pem",
        "server.pem",
        "server.key",
        "broker-settings.toml",
    }
    assert expected <= {p.name for p in out.iterdir()}
    assert all(_mode(p) == 0o600 for p in out.iterdir() if p.name in expected)
    conf = (out / "mosquitto.conf").read_text()
    for line in (
        "allow_anonymous false",
        "listener 18883",
        "use_username_as_clientid true",
        "require_certificate false",
    ):
        assert line in conf
    assert conf.index("listener 18883") < conf.index("use_username_as_clientid")
    # the printed settings make the hub's services connect as their own identities, with the CA
    settings_file = workspace / "pumpops.toml"
    text = settings_file.read_text().replace(
        'broker_url = "embedded"', 'broker_url = "mqtts://localhost:18883"'
    )
    settings_file.write_text(text + "\n" + (out / "broker-settings.toml").read_text())
    settings = load_settings(workspace)
    address = service_address(settings, "ingest", BrokerAddress("localhost", 18883))
    assert address.tls
    assert address.username == "hub-ingest"
    assert address.ca_file == str(out / "ca.pem")
    assert CredentialRegistry.of_workspace(workspace).verify("hub-ingest", address.password or "")
    rollout = service_address(settings, "rollout", BrokerAddress("localhost", 18883))
    assert rollout.username == "hub-rollout"
    assert address.password is not None
    assert address.password not in repr(address)  # a password never shows in logs of the address


def test_broker_config_needs_a_host_name(workspace: Path, tmp_path: Path) -> None:
    result = _run(workspace, "broker", "config", "--out", str(tmp_path / "b"))
    assert result.exit_code != 0
    assert "--hostname" in result.output  # type: ignore[attr-defined]


def test_devices_commands_need_a_workspace(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["-w", str(tmp_path), "devices", "identities"])
    assert isinstance(result.exception, ConfigError)
    assert os.fspath(tmp_path) in str(result.exception)


def test_devices_group_holds_the_register_and_the_identities(tmp_path: Path) -> None:
    """The broker's commands join the store's ``devices`` group: neither hides the other."""
    result = CliRunner().invoke(app, ["devices", "--help"])
    assert result.exit_code == 0, result.output
    for command in ("list", "register", "provision", "revoke", "identities"):
        assert f" {command} " in result.output, (command, result.output)
    workspace = tmp_path / "ws"
    assert CliRunner().invoke(app, ["init", str(workspace)]).exit_code == 0
    registered = CliRunner().invoke(
        app,
        [
            "-w",
            str(workspace),
            "devices",
            "register",
            "--device-id",
            "p-9",
            "--site",
            "s-1",
            "--profile",
            "acme-ansi",
            "--group",
            "g-1",
        ],
    )
    assert registered.exit_code == 0, registered.output
    listed = CliRunner().invoke(app, ["-w", str(workspace), "devices", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [row["device"] for row in json.loads(listed.output)] == ["p-9"]
