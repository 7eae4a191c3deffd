"""Fixtures of the browser tests: Debian's Chromium driven by Playwright against a real ``pumpops hub serve``.

The hub runs as a subprocess on a workspace made by the CLI (``init``,
``keys init``, ``tokens create`` per role) and seeded through the hub's own
ingest processing: pumps and their states, a day of readings and score
summaries, alarms, two releases, and a rollout started through the API as the
admin. Chromium is Debian's (``apt-get install chromium``; Playwright's own
download is not available here): found on PATH or at ``$PUMPOPS_CHROMIUM``;
missing, the tests skip with the reason, or fail under CI. Screenshots go to
``test-output/browser/`` and, when ``$PUMPOPS_SCREENSHOTS`` names a folder
(``docs/dashboard``), are copied there too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from pumpops.cli import app
from pumpops.fleet import Device
from pumpops.schema import TOPIC_OF_KIND, AgentMessage, ReadingBatch, encode_agent_message, with_msg_id
from pumpops.settings import IngestSettings, load_settings
from pumpops.store import open_store
from pumpops.telemetry import BrokerAddress, IngestService, build_topic

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = Path(os.environ.get("PUMPOPS_TEST_OUTPUT", ROOT / "test-output")) / "browser"
GROUP = "g-north"
DEVICES = [
    Device(f"pump-{i:02d}", f"rig-{i % 3}", "acme-ansi", GROUP if i < 6 else "g-south") for i in range(9)
]
SITE = {d.device_id: d.site for d in DEVICES}


def chromium_path() -> str | None:
    """Debian's Chromium: ``$PUMPOPS_CHROMIUM`` or ``chromium`` on PATH."""
    given = os.environ.get("PUMPOPS_CHROMIUM")
    if given:
        return given if Path(given).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def base_url() -> None:
    """No base URL (pytest-base-url's own fixture trips pytest's deprecation warning, an error here)."""
    return


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Launch Debian's Chromium (pytest-playwright's fixture, with ``executable_path``)."""
    path = chromium_path()
    if path is None:
        reason = "Debian's chromium is not installed (apt-get install -y chromium; or set $PUMPOPS_CHROMIUM)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium refuses its sandbox as root
    return {**browser_type_launch_args, "executable_path": path, "args": args}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Hub:
    """The served workspace: its address, database, topic prefix and a token per role."""

    base: str
    workspace: Path
    db_url: str
    prefix: str
    tokens: dict[str, str]
    rollout_id: str = ""
    alarms: list[str] = field(default_factory=list)
    _seq: dict[str, int] = field(default_factory=dict)

    def message(self, device_id: str, kind: str, body: dict[str, Any], ts_ms: int) -> tuple[str, bytes]:
        """One agent message as a pump publishes it: ``(topic, payload)``."""
        self._seq[device_id] = self._seq.get(device_id, 0) + 1
        message = AgentMessage(
            device_id=device_id,
            site=SITE[device_id],
            kind=kind,  # type: ignore[arg-type]
            ts_ms=ts_ms,
            agent_version="0.1.0",
            body=body,
        )
        payload = with_msg_id(encode_agent_message(message), f"{device_id}:{self._seq[device_id]}")
        return build_topic(SITE[device_id], device_id, TOPIC_OF_KIND[kind], prefix=self.prefix), payload

    def ingest(self, messages: list[tuple[str, bytes]]) -> None:
        """Store agent messages as the hub's ingest stores them."""
        with open_store(self.db_url) as store:
            ingest = IngestService(
                store,
                BrokerAddress("127.0.0.1", 1883),
                topic_prefix=self.prefix,
                settings=IngestSettings(client_id=f"t-{uuid.uuid4().hex[:8]}"),
            )
            assert ingest.process(messages).agent_messages == len(messages)

    def alarm(self, device_id: str, started_ms: int, peak: float = 9.5) -> str:
        """An alarm raised by a pump, stored; returns its id."""
        self.ingest([self.alarm_message(device_id, started_ms, peak)])
        return f"{device_id}:{started_ms}"

    def alarm_message(self, device_id: str, started_ms: int, peak: float = 9.5) -> tuple[str, bytes]:
        """An alarm raised by a pump."""
        alarm_id = f"{device_id}:{started_ms}"
        return self.message(
            device_id,
            "alarm",
            {
                "event": "raised",
                "alarm_id": alarm_id,
                "started_ms": started_ms,
                "ended_ms": None,
                "peak_score": peak,
                "threshold": 3.0,
                "model_name": "pumpops-skab",
                "model_version": 1,
            },
            started_ms,
        )

    def api(self, method: str, path: str, role: str, body: Any = None) -> httpx.Response:
        """A call to the hub's API with the role's bearer token."""
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return httpx.request(method, f"{self.base}{path}", headers=headers, json=body, timeout=30)


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _seed(hub: Hub) -> None:
    now_ms = int(time.time() * 1000)
    with open_store(hub.db_url) as store:
        store.register_devices(DEVICES)
        for version in (1, 2):
            store.add_release(
                "pumpops-skab", version, GROUP, ["x86_64-ipc"], created_by="ci", bundle_root="/b", record={}
            )
        # a day of readings (one a minute) for the first pump, in SI units (Pa)
        ts_us = (now_ms - 86_400_000 + np.arange(1440) * 60_000).astype(np.int64) * 1000
        phase = np.arange(1440) / 90.0
        values = np.column_stack([2.0e5 + 1.5e4 * np.sin(phase), 1.2e6 + 4.0e4 * np.cos(phase)])
        digest = hashlib.sha256(b"browser-seed").hexdigest()
        store.write_batches(
            [
                ReadingBatch(
                    "pump-00",
                    "m-seed",
                    digest,
                    ts_us,
                    ("suction_pressure", "discharge_pressure"),
                    values,
                    int(ts_us[-1]),
                )
            ]
        )
    messages = []
    for i, device in enumerate(DEVICES):
        if i == 8:
            continue  # never seen
        health = "degraded" if i == 7 else "ok"
        messages.append(
            hub.message(
                device.device_id,
                "state",
                {
                    "status": "detecting",
                    "model_name": "pumpops-skab",
                    "model_version": 1,
                    "slot": "a",
                    "health": health,
                    "health_reasons": [],
                    "last_update_error": None,
                    "desired_version": None,
                    "stale": False,
                    "counts": {},
                    "outbox_depth": i,
                },
                now_ms - 5000,
            )
        )
    for k in range(24):
        end = now_ms - (24 - k) * 3_600_000
        messages.append(
            hub.message(
                "pump-00",
                "summary",
                {
                    "period_start_ms": end - 3_600_000,
                    "period_end_ms": end,
                    "rows": 3600,
                    "windows_scored": 60,
                    "non_finite": 0,
                    "score": {
                        "min": 0.2,
                        "p50": 1.0,
                        "p95": 1.5 + (k == 23) * 3,
                        "max": 2.0 + (k == 23) * 6,
                        "mean": 1.1,
                    },
                    "threshold": 3.0,
                    "alarms_raised": int(k == 23),
                    "alarm_rows": 0,
                    "model_name": "pumpops-skab",
                    "model_version": 1,
                },
                end,
            )
        )
    # the fleet counts a pump as alarming from its summaries' alarms_raised in the window
    messages.append(
        hub.message(
            "pump-03",
            "summary",
            {
                "period_start_ms": now_ms - 1_800_000,
                "period_end_ms": now_ms - 60_000,
                "rows": 1740,
                "windows_scored": 29,
                "non_finite": 0,
                "score": {"min": 0.1, "p50": 1.0, "p95": 3.2, "max": 5.1, "mean": 1.2},
                "threshold": 3.0,
                "alarms_raised": 1,
                "alarm_rows": 12,
                "model_name": "pumpops-skab",
                "model_version": 1,
            },
            now_ms - 60_000,
        )
    )
    hub.alarms = [f"pump-00:{now_ms - 1_200_000}", f"pump-03:{now_ms - 600_000}"]
    messages += [
        hub.alarm_message("pump-00", now_ms - 1_200_000),
        hub.alarm_message("pump-03", now_ms - 600_000, 5.1),
    ]
    hub.ingest(messages)


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A seeded workspace served by ``pumpops hub serve`` (one for the folder: the tests run in order)."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 1883)) != 0:
            if os.environ.get("CI") == "true":
                pytest.fail("Mosquitto is not running on 127.0.0.1:1883")
            pytest.skip("Mosquitto is not running on 127.0.0.1:1883")
    tmp = tmp_path_factory.mktemp("browser")
    ws = tmp / "ws"
    cli("init", str(ws))
    cli("-w", str(ws), "keys", "init")
    tokens = {}
    for name, role in (("vera", "viewer"), ("olga", "operator"), ("adam", "admin")):
        out = cli("-w", str(ws), "tokens", "create", "--name", name, "--role", role, "--json")
        tokens[role] = json.loads(out)["token"]
    prefix = f"test-browser-{uuid.uuid4().hex[:8]}/v1"
    hub = Hub("", ws, load_settings(ws).resolved_database_url, prefix, tokens)
    _seed(hub)
    port = _free_port()
    log_path = tmp / "hub.log"
    env = {**os.environ, "PUMPOPS_TOPIC_PREFIX": prefix, "PUMPOPS_BROKER_URL": "mqtt://127.0.0.1:1883"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pumpops", "-w", str(ws), "hub", "serve", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        hub.base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{hub.base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the hub did not start"
                time.sleep(0.2)
            started = hub.api(
                "POST",
                "/api/rollouts",
                "admin",
                {
                    "release": "pumpops-skab/2",
                    "group": GROUP,
                    "waves": [50, 100],
                    "gate": {"min_soak_s": 3600},
                    "reason": "browser test",
                },
            )
            assert started.status_code == 201, started.text
            hub.rollout_id = started.json()["rollout_id"]
            yield hub
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def screenshot(page: Any, name: str) -> Path:
    """Save the page (full length) as ``test-output/browser/<name>.png``, and to ``$PUMPOPS_SCREENSHOTS``."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    copy_to = os.environ.get("PUMPOPS_SCREENSHOTS")
    if copy_to:
        folder = Path(copy_to) if Path(copy_to).is_absolute() else ROOT / copy_to
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / f"{name}.png")
    return path


def login(page: Any, hub: Hub, role: str) -> None:
    """Log in through the form with the role's token."""
    page.goto(f"{hub.base}/ui/login")
    page.fill("input[name=token]", hub.tokens[role])
    page.click("button[type=submit]")
    page.wait_for_url(f"{hub.base}/ui/")
