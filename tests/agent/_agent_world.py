"""The agent tests' world: a released SKAB model, a hub serving its repository, brokers, agent processes.

Session fixtures train one small SKAB model (about 6 s) and package bundles
from it: versions 1 and 2 (the same model, two releases) and version 3 (a
model that loads but scores NaN). Per test: a workspace with fresh keys,
``pumpops hub serve`` as a real process on a free port, an ``agent.toml``
with its own state folder and topic prefix, and ``pumpops agent run`` as a
real process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import paho.mqtt.client as mqtt
import pytest
from onnx import TensorProto, helper
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from pumpops.cli import app
from pumpops.fleet import get_target
from pumpops.pipeline import parse_config, run_pipeline
from pumpops.release import PackageSettings, load_source, package_model
from pumpops.schema import read_bundle, write_bundle

GROUP = "skab-testbed"
TARGET = "x86_64-ipc"
DEVICE = "skab-pump-1"
FAST = PackageSettings(latency_runs=5, max_holdout_windows=300)


@contextlib.contextmanager
def private_mosquitto(port: int, tmp: Path) -> Iterator[None]:
    """A Mosquitto of our own on ``port`` (so a test can take the broker down and bring it back)."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    conf = tmp / f"mosquitto-{port}.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n"
        "max_queued_messages 0\nmax_inflight_messages 0\n"
    )
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"mosquitto did not start on port {port}")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nan_model() -> bytes:
    """Loads, takes the agent's inputs, and answers NaN for every window."""
    window = helper.make_tensor_value_info("window", TensorProto.DOUBLE, ["B", 10, 8])
    center = helper.make_tensor_value_info("center", TensorProto.DOUBLE, [8])
    scale = helper.make_tensor_value_info("scale", TensorProto.DOUBLE, [8])
    score = helper.make_tensor_value_info("score", TensorProto.DOUBLE, ["B"])
    nodes = [
        helper.make_node("Sub", ["window", "center"], ["d"]),
        helper.make_node("Div", ["d", "scale"], ["z"]),
        helper.make_node("ReduceMean", ["z"], ["m"], axes=[1, 2], keepdims=0),
        helper.make_node("Add", ["m", "bad"], ["score"]),
    ]
    bad = helper.make_tensor("bad", TensorProto.DOUBLE, [], [float("nan")])
    graph = helper.make_graph(nodes, "nan", [window, center, scale], [score], [bad])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@dataclass(frozen=True)
class Released:
    """Bundle folders by version, and the SKAB files the agents replay."""

    bundles: dict[int, Path]
    skab: Path


@pytest.fixture(scope="session")
def released(skab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Released:
    root = tmp_path_factory.mktemp("agent-skab")
    for name in ("anomaly-free/anomaly-free.csv", "valve1/0.csv"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        data = (skab_dir / name).read_bytes()
        if name.startswith("anomaly-free"):
            data = b"".join(data.splitlines(keepends=True)[:1201])
        (root / name).write_bytes(data)
    config = parse_config(
        {
            "seed": 3,
            "data": {"source": "files", "paths": [str(root)], "train_rows": 400},
            "features": {"window_samples": 10, "min_segment_samples": 30},
            "detector": {"kind": "pca_t2q"},
            "threshold": {"quantile": 0.99, "factor": 1.2},
            "smoothing": {"k": 3, "n": 5},
            "output": {"experiment": "agent-tests"},
        }
    )
    work = tmp_path_factory.mktemp("agent-train")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        result = run_pipeline(config, workspace=work, tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    out = tmp_path_factory.mktemp("agent-bundles")
    bundles: dict[int, Path] = {}
    for version in (1, 2):
        source = load_source(result.model_dir, name="pumpops-skab", version=version)
        _, written = package_model(source, [get_target(TARGET)], out=out, data=root, settings=FAST)
        bundles[version] = written[0].folder
    good = read_bundle(bundles[1]).manifest
    broken = good.model_copy(update={"model_version": 3})
    bundles[3] = write_bundle(out, broken, {"model.onnx": nan_model()}).folder
    return Released(bundles=bundles, skab=root / "valve1" / "0.csv")


@dataclass
class Hub:
    """A workspace whose TUF repository ``pumpops hub serve`` serves on ``url``."""

    workspace: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/tuf/"

    @property
    def root_file(self) -> Path:
        return self.workspace / "tuf" / "repository" / "metadata" / "1.root.json"

    @property
    def repository(self) -> Path:
        return self.workspace / "tuf" / "repository"

    def cli(self, *args: str) -> str:
        result = CliRunner().invoke(app, ["-w", str(self.workspace), *args])
        assert result.exit_code == 0, result.output
        return result.output

    def publish(self, *bundles: Path) -> None:
        staging = self.workspace.parent / f"publish-{uuid.uuid4().hex[:6]}"
        for folder in bundles:
            rel = folder.relative_to(folder.parents[2])
            shutil.copytree(folder, staging / rel)
        self.cli("tuf", "publish", str(staging))

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pumpops",
                "-w",
                str(self.workspace),
                "hub",
                "serve",
                "--port",
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # The hub loads its API and dashboard too; on a loaded 2-core machine it took 27 s to answer.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1).close()
            except OSError:
                time.sleep(0.1)
            else:
                return
        self.stop()
        raise RuntimeError("the hub did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    ws = tmp_path / "hub"
    h = Hub(ws, free_port())
    h.cli("init", str(ws))
    h.cli("keys", "init")
    h.start()
    yield h
    h.stop()


@dataclass
class Listener:
    """Everything published under a topic prefix, in arrival order."""

    url: str
    prefix: str
    messages: list[tuple[str, dict[str, Any], bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        host, _, port = self.url.removeprefix("mqtt://").partition(":")
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"listener-{uuid.uuid4().hex[:8]}")
        ready = threading.Event()

        def on_connect(client: mqtt.Client, *_: object) -> None:
            client.subscribe(f"{self.prefix}/#", qos=1)

        def on_subscribe(*_: object) -> None:
            ready.set()

        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            with self.lock:
                self.messages.append((msg.topic, json.loads(msg.payload) if msg.payload else {}, msg.retain))

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.connect(host, int(port or 1883))
        self.client.loop_start()
        assert ready.wait(10), "listener could not subscribe"

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for topic, body, _ in self.messages if topic.endswith("/" + kind)]

    def desire(self, site: str, device: str, version: int) -> None:
        info = self.client.publish(
            f"{self.prefix}/{site}/{device}/desired", json.dumps({"version": version}), qos=1, retain=True
        )
        info.wait_for_publish(5)

    def close(self) -> None:
        # Clear retained messages this test left, so the shared broker stays clean.
        with self.lock:
            retained = {topic for topic, _, _ in self.messages}
        for topic in retained:
            if topic.endswith(("/state", "/desired")):
                self.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class AgentRun:
    """An agent.toml and the agent processes started from it."""

    folder: Path
    hub: Hub
    broker_url: str
    prefix: str
    settings: dict[str, Any]
    log_path: Path

    @property
    def config(self) -> Path:
        return self.folder / "agent.toml"

    @property
    def state_dir(self) -> Path:
        return self.folder / "state"

    def write(self, **changes: Any) -> Path:
        for key, value in changes.items():
            section, _, name = key.partition("__")
            if name:
                self.settings.setdefault(section, {})[name] = value
            else:
                self.settings[key] = value
        lines = [f"{k} = {json.dumps(v)}" for k, v in self.settings.items() if not isinstance(v, dict)]
        for section, values in self.settings.items():
            if not isinstance(values, dict):
                continue
            lines.append(f"[{section}]")
            lines += [
                f"{k} = {json.dumps(v) if not isinstance(v, Path) else json.dumps(str(v))}"
                for k, v in values.items()
            ]
        self.config.write_text("\n".join(lines) + "\n")
        return self.config

    def start(self, *, kill_at: str | None = None, **changes: Any) -> subprocess.Popen[bytes]:
        self.write(**changes)
        env = {k: v for k, v in os.environ.items() if k != "PUMPOPS_AGENT_KILL_AT"}
        if kill_at:
            env["PUMPOPS_AGENT_KILL_AT"] = kill_at
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "pumpops", "agent", "run", "--config", str(self.config), "-v"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def run(self, *, timeout: float = 120, kill_at: str | None = None, **changes: Any) -> int:
        proc = self.start(kill_at=kill_at, **changes)
        try:
            return proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()

    def state(self) -> dict[str, Any]:
        return dict(json.loads((self.state_dir / "state.json").read_bytes()))

    def alarms(self) -> list[dict[str, Any]]:
        path = self.state_dir / "alarms.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def agent_settings(hub: Hub, broker_url: str, prefix: str, skab: Path, state_dir: Path) -> dict[str, Any]:
    return {
        "agent": {
            "device_id": DEVICE,
            "site": "skoltech",
            "group": GROUP,
            "profile": "skab-testbed",
            "target": TARGET,
            "state_dir": str(state_dir),
            "clock": "data",
            "refresh_interval_s": 60,
            "summary_interval_s": 300,
            "calibration_rows": 540,
            "drift_report_rows": 500,
            "state_interval_s": 120,
        },
        "broker": {"url": broker_url, "topic_prefix": prefix},
        "repository": {"url": hub.url, "trusted_root": str(hub.root_file)},
        "source": {"kind": "skab", "path": str(skab), "speed": 0},
    }


@pytest.fixture
def make_agent(hub: Hub, released: Released, tmp_path: Path) -> Iterator[Any]:
    """``make_agent(broker_url=...)`` → an :class:`AgentRun` with its own prefix and state folder."""
    listeners: list[Listener] = []

    def make(
        broker_url: str = "mqtt://127.0.0.1:1883", listen: bool = True
    ) -> tuple[AgentRun, Listener | None]:
        prefix = f"test-agent-{uuid.uuid4().hex[:10]}/v1"
        folder = tmp_path / "device"
        folder.mkdir(exist_ok=True)
        run = AgentRun(
            folder,
            hub,
            broker_url,
            prefix,
            agent_settings(hub, broker_url, prefix, released.skab, folder / "state"),
            tmp_path / "agent.log",
        )
        listener = Listener(broker_url, prefix) if listen else None
        if listener is not None:
            listeners.append(listener)
        return run, listener

    yield make
    for listener in listeners:
        listener.close()
