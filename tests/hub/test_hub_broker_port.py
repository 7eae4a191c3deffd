"""``hub serve --services`` and the embedded broker's port (issue 11, friction 4).

The embedded broker used to default to 1883, where a system Mosquitto listens: it
died with its traceback only in ``broker.log`` and the services silently used the
other broker. Now a taken port fails at start, naming the port and the setting.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import pumpops.cli as cli
from pumpops.cli._support import ExitCode
from pumpops.errors import ServiceError
from pumpops.hub._services import HubServices, broker_process
from pumpops.settings import init_workspace, load_settings


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that another process (here: a plain listening socket) holds."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_broker_process_port_taken_fails_loudly(tmp_path: Path, taken_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(ServiceError) as failed, broker_process(taken_port, tmp_path / "broker.log"):
        pass
    assert time.monotonic() - started < 10
    assert f"port {taken_port}" in str(failed.value)
    assert "embedded_broker_port" in str(failed.value)


def test_broker_process_port_zero_picks_a_free_port_and_stops_its_child(tmp_path: Path) -> None:
    with broker_process(0, tmp_path / "broker.log") as broker:
        assert broker.port > 0
        with socket.create_connection(("127.0.0.1", broker.port), timeout=5):
            pass
        pid = broker.proc.pid
        assert os.getpgid(pid) == pid  # its own process group
    assert broker.proc.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_hub_services_embedded_broker_port_taken_fails_at_start(tmp_path: Path, taken_port: int) -> None:
    ws = tmp_path / "ws"
    init_workspace(ws)
    settings = load_settings(ws, embedded_broker_port=taken_port)
    with pytest.raises(ServiceError) as failed:
        HubServices(settings).start()
    assert str(taken_port) in str(failed.value)
    assert "embedded_broker_port" in str(failed.value)


def test_hub_services_log_each_service_start_and_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ws = tmp_path / "ws"
    init_workspace(ws)
    settings = load_settings(ws, embedded_broker_port=_free_port())
    caplog.set_level(logging.INFO, logger="pumpops.hub")
    hub = HubServices(settings, monitoring_interval_s=0.2, retrain_interval_s=0.2, rollout_interval_s=0.2)
    hub.start()
    started = caplog.text
    hub.stop()
    stopped = caplog.text[len(started) :]
    for line in ("embedded MQTT broker started", "ingest started", "monitoring loop started",
                 "retrain loop started", "rollout loop started"):  # fmt: skip
        assert line in started
    for line in ("monitoring loop stopped", "retrain loop stopped", "rollout loop stopped",
                 "ingest stopped", "embedded MQTT broker stopped"):  # fmt: skip
        assert line in stopped
    assert hub.broker is not None
    assert hub.broker.proc.returncode is not None


def test_hub_services_log_the_embedded_broker_dying(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ws = tmp_path / "ws"
    init_workspace(ws)
    settings = load_settings(ws, embedded_broker_port=_free_port())
    caplog.set_level(logging.INFO, logger="pumpops.hub")
    hub = HubServices(settings, monitoring_interval_s=5, retrain_interval_s=5, rollout_interval_s=5).start()
    try:
        assert hub.broker is not None
        hub.broker.proc.kill()
        deadline = time.monotonic() + 10
        while "embedded MQTT broker failed" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "embedded MQTT broker failed" in caplog.text
        assert "broker" in hub.errors
    finally:
        hub.stop()


def test_hub_serve_embedded_broker_port_taken_exits_5(tmp_path: Path, taken_port: int) -> None:
    ws = tmp_path / "ws"
    assert CliRunner().invoke(cli.app, ["init", str(ws)]).exit_code == 0
    assert CliRunner().invoke(cli.app, ["-w", str(ws), "keys", "init"]).exit_code == 0
    env = {**os.environ, "PUMPOPS_EMBEDDED_BROKER_PORT": str(taken_port)}
    argv = ["-w", str(ws), "hub", "serve", "--services", "--port", str(_free_port())]
    proc = subprocess.run(
        [sys.executable, "-m", "pumpops", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == ExitCode.UNREACHABLE, proc.stderr
    assert f"port {taken_port}" in proc.stderr
    assert "embedded_broker_port" in proc.stderr
    assert "embedded MQTT broker failed to start" in proc.stderr  # the log line, on stderr


def test_embedded_broker_port_taken_names_the_setting(taken_port: int) -> None:
    # what `pumpops ingest` on the embedded default starts in its own process
    from pumpops.errors import BrokerError
    from pumpops.telemetry import EmbeddedBroker

    with pytest.raises(BrokerError, match="cannot start the embedded broker") as failed:
        EmbeddedBroker(port=taken_port).start()
    assert f"port {taken_port}" in str(failed.value)
    assert "embedded_broker_port" in str(failed.value)
