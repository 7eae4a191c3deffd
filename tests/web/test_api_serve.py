"""``pumpops hub serve`` as a real process (uvicorn): API, docs, /metrics; the live stream in real time."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from pumpops.cli import app
from pumpops.fleet import Device
from pumpops.schema import AgentMessage, encode_agent_message, with_msg_id
from pumpops.settings import IngestSettings, load_settings
from pumpops.store import open_store
from pumpops.telemetry import BrokerAddress, IngestService, build_topic

pytestmark = [pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """A workspace with a device and an operator token, served by ``hub serve``: (url, token, db url)."""
    ws = tmp_path / "ws"
    for args in (["init", str(ws)], ["-w", str(ws), "keys", "init"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        app, ["-w", str(ws), "tokens", "create", "--name", "ops", "--role", "operator", "--json"]
    )
    token = json.loads(result.output)["token"]
    url = load_settings(ws).resolved_database_url
    with open_store(url) as store:
        store.register_devices([Device("p-9", "rig-1", "acme-ansi", "g1")])
    port = _free_port()
    log = (tmp_path / "hub.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pumpops", "-w", str(ws), "hub", "serve", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "hub.log").read_text()
            assert time.monotonic() < deadline, "the hub did not start"
            time.sleep(0.1)
        yield base, token, url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _store_alarm(url: str, started_ms: int) -> None:
    body = {"event": "raised", "alarm_id": f"p-9:{started_ms}", "started_ms": started_ms, "ended_ms": None,
            "peak_score": 7.0, "threshold": 2.0, "model_name": "m", "model_version": 1}  # fmt: skip
    message = AgentMessage(
        device_id="p-9", site="rig-1", kind="alarm", ts_ms=started_ms, agent_version="0.1.0", body=body
    )
    payload = with_msg_id(encode_agent_message(message), "p-9:1")
    with open_store(url) as store:
        ingest = IngestService(
            store,
            BrokerAddress("127.0.0.1", 1),
            settings=IngestSettings(client_id=f"t-{uuid.uuid4().hex[:6]}"),
        )
        assert ingest.process([(build_topic("rig-1", "p-9", "alarms"), payload)]).agent_messages == 1


def test_hub_serve_answers_the_api_docs_metrics_and_streams_an_alarm_live(
    served: tuple[str, str, str],
) -> None:
    base, token, url = served
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{base}/api/fleet").status_code == 401
    fleet = httpx.get(f"{base}/api/fleet", headers=auth)
    assert fleet.status_code == 200
    assert fleet.json()["devices"] == 1
    assert httpx.post(f"{base}/api/rollouts/r-1/abort", headers=auth).status_code == 403
    assert "pumpops_store_up 1.0" in httpx.get(f"{base}/metrics").text
    docs = httpx.get(f"{base}/api/docs")
    assert docs.status_code == 200
    assert "https://" not in docs.text
    assert httpx.get(f"{base}/api/docs/assets/swagger-ui-bundle.js").status_code == 200

    received: list[dict[str, Any]] = []
    opened = threading.Event()

    def listen() -> None:
        params = {"max_events": 1, "max_seconds": 30}
        with httpx.stream("GET", f"{base}/api/events", headers=auth, params=params, timeout=40) as stream:
            for line in stream.iter_lines():
                if line.startswith("retry:"):
                    opened.set()
                if line.startswith("data: "):
                    received.append(json.loads(line.removeprefix("data: ")))

    listener = threading.Thread(target=listen)
    listener.start()
    assert opened.wait(20), "the stream did not open"
    stored_at = time.monotonic()
    _store_alarm(url, int(time.time() * 1000))
    listener.join(40)
    delivered_after_s = time.monotonic() - stored_at
    assert [r["device_id"] for r in received] == ["p-9"]
    assert received[0]["body"]["alarm_id"].startswith("p-9:")
    print(f"alarm delivered by the live stream {delivered_after_s:.2f} s after it was stored")
