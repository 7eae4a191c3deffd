"""A bare agent as a real process: a simulator source, a folder TUF repository, the shared broker.

No hub process and no model: the agent reports ``no_model`` and keeps running, which is
all the link tests (last will, TLS) need. Each agent gets its own topic prefix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from pumpops.release import TufRepository, generate_signer

DEVICE = "bare-pump-1"
SITE = "bench"


def make_repository(folder: Path) -> Path:
    """An empty TUF repository in ``folder / "repo"``; returns its trusted root file."""
    repo = TufRepository.create(
        folder / "repo",
        root_signers=[generate_signer()],
        online_signers={r: [generate_signer()] for r in ("targets", "snapshot", "timestamp")},
    )
    root = folder / "root.json"
    root.write_bytes(repo.root_bytes(1))
    return root


def write_settings(folder: Path, settings: dict[str, Any]) -> Path:
    """``agent.toml`` from nested dicts (top-level scalars first)."""
    lines = [f"{k} = {json.dumps(v)}" for k, v in settings.items() if not isinstance(v, dict)]
    for section, values in settings.items():
        if isinstance(values, dict):
            lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(str(v) if isinstance(v, Path) else v)}" for k, v in values.items()]
    path = folder / "agent.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def bare_settings(folder: Path, broker: dict[str, Any]) -> dict[str, Any]:
    """Settings of a bare agent under ``folder`` (repository made here) with this ``[broker]``."""
    root = make_repository(folder)
    return {
        "agent": {
            "device_id": DEVICE,
            "site": SITE,
            "group": "bare",
            "profile": "acme-ansi",
            "target": "x86_64-ipc",
            "state_dir": "state",
            "state_interval_s": 1.0,
        },
        "broker": broker,
        "repository": {"folder": "repo", "trusted_root": str(root)},
        "source": {"kind": "simulator", "speed": 1.0, "chunk_s": 1.0, "seed": 3},
    }


def start_agent(config: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """``python -m pumpops agent run --config <config>`` with its output in ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pumpops", "agent", "run", "--config", str(config), "-v", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )


@dataclass
class Recorder:
    """Every message under a prefix, raw, in arrival order (a paho client on the plain broker)."""

    prefix: str = field(default_factory=lambda: f"test-bare-{uuid.uuid4().hex[:10]}/v1")
    host: str = "127.0.0.1"
    port: int = 1883
    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)
    received_us: list[int] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"rec-{uuid.uuid4().hex[:8]}")
        ready = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe(f"{self.prefix}/#", qos=1)
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = self._on_message
        self.client.connect(self.host, self.port)
        self.client.loop_start()
        assert ready.wait(10), "recorder could not subscribe"

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self.changed:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self.received_us.append(time.time_ns() // 1000)
            self.changed.notify_all()

    def states(self) -> list[dict[str, Any]]:
        with self.changed:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith("/state") and p]

    def wait_for(self, predicate: Any, timeout_s: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self), timeout_s)

    def close(self) -> None:
        with self.changed:
            retained = {t for t, _, _ in self.messages if t.endswith(("/state", "/desired"))}
        for topic in retained:
            self.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        self.client.loop_stop()
        self.client.disconnect()


def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    try:
        yield rec
    finally:
        rec.close()
