"""The hub's side over the secured broker, end to end.

``broker config`` → Mosquitto → ``devices provision`` → ``pumpops simulate``
publishing as the provisioned pump over TLS → ingest as ``hub-ingest`` (from the
``[broker_auth]`` settings) → the store. (One simulated pump only: Mosquitto
2.0.11 answers a denied QoS 1 publish from an MQTT 3.1.1 client with a PUBACK
reason code and paho drops the link; the denial rows are in
``test_mosquitto_access.py``.)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pumpops.cli import app
from pumpops.hub import ingest_service, open_workspace_store
from pumpops.settings import load_settings
from pumpops.sim import build_fleet
from pumpops.telemetry import parse_broker_url

from .conftest import free_port, wait_port


@pytest.fixture
def secured_workspace(tmp_path: Path) -> Iterator[tuple[Path, int, int]]:
    ws = tmp_path / "ws"
    assert CliRunner().invoke(app, ["init", str(ws)]).exit_code == 0
    port = free_port()
    result = CliRunner().invoke(
        app,
        ["-w", str(ws), "broker", "config", "--out", str(tmp_path / "broker"),
         "--hostname", "localhost", "--port", str(port), "--bind", "127.0.0.1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    settings_file = ws / "pumpops.toml"
    text = settings_file.read_text().replace(
        'broker_url = "embedded"', f'broker_url = "mqtts://localhost:{port}"'
    )
    settings_file.write_text(text + "\n" + (tmp_path / "broker" / "broker-settings.toml").read_text())
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen(
        [binary, "-c", str(tmp_path / "broker" / "mosquitto.conf")], stdout=subprocess.DEVNULL
    )
    try:
        wait_port(port)
        yield ws, port, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_provisioned_pump_reaches_the_store_through_tls_and_its_identity(
    secured_workspace: tuple[Path, int, int], tmp_path: Path
) -> None:
    ws, port, pid = secured_workspace
    pump = build_fleet(1, seed=7)[0].device_id
    out = tmp_path / "pump"
    provisioned = CliRunner().invoke(
        app,
        ["-w", str(ws), "devices", "provision", pump, "--site", "site-1", "--group", "g1",
         "--profile", "acme-ansi", "--broker-url", f"mqtts://localhost:{port}", "--out", str(out)],
    )  # fmt: skip
    assert provisioned.exit_code == 0, provisioned.output
    os.kill(pid, signal.SIGHUP)  # the broker rereads its password file (docs/security.md)
    settings = load_settings(ws)
    address = parse_broker_url(settings.broker_url)
    assert address is not None
    with open_workspace_store(settings, upgrade=True) as store:
        service = ingest_service(settings, store, address).start()
        try:
            service.wait_ready(10)
            simulate = _simulate(ws, port, pump, out)
            assert simulate.exit_code == 0, simulate.output
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(store.query(pump).ts_us) == 0:
                time.sleep(0.2)
            assert len(store.query(pump).ts_us) > 0
        finally:
            service.stop()


def _simulate(ws: Path, port: int, pump: str, out: Path) -> object:
    deadline = time.monotonic() + 10
    while True:  # the reload is asynchronous: retry while the broker does not know the pump yet
        result = CliRunner().invoke(
            app,
            ["-w", str(ws), "simulate", "--devices", "1", "--seed", "7", "--speed", "max",
             "--duration", "5m", "--broker", f"mqtts://localhost:{port}",
             "--ca-file", str(out / "ca.pem"), "--username", pump,
             "--password-file", str(out / "broker.password")],
        )  # fmt: skip
        if result.exit_code == 0 or time.monotonic() > deadline:
            return result
        time.sleep(0.3)
