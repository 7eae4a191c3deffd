"""The end-to-end attack table's world: a workspace, a secured Mosquitto, the hub and a pump as processes.

Everything is set up as an operator would, with the ``pumpops`` command run
as a subprocess: ``pumpops init`` in ``tmp_path``, ``keys init``, ``broker
config`` (TLS, password file, ACL), Mosquitto started from the configuration
it wrote (plus a log file), its ``broker-settings.toml`` appended to
``pumpops.toml`` with ``broker_url`` set to the TLS port, ``devices
provision`` for the pump ``pump-1`` and for ``rogue-1`` (a second pump whose
credentials the attacker holds), ``pumpops ingest`` and ``pumpops hub serve``
as long-running processes, and ``pumpops agent run --config <provisioned
folder>/agent.toml`` for every run of the pump. The released models are one
small SKAB model (trained once per session, a few seconds on an idle machine)
packaged as versions 1, 2 and 3. The pump replays SKAB ``valve1/0.csv`` as
fast as it goes, ending a minute before each run.

The pumps are registered in the hub's database with ``pumpops devices
register``, as an operator would.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pumpops.errors import BrokerError
from pumpops.fleet import get_target
from pumpops.mqtt import ClientOptions, Connection, Message, TlsOptions
from pumpops.pipeline import parse_config, run_pipeline
from pumpops.release import PackageSettings, load_source, package_model
from pumpops.store import TelemetryStore, open_store

GROUP = "skab-testbed"
SITE = "skoltech"
TARGET = "x86_64-ipc"
PUMP = "pump-1"
ROGUE = "rogue-1"
WAIT_S = 20.0  # the longest a delivery or a store may take before a test calls it missing
FAST = PackageSettings(latency_runs=5, max_holdout_windows=300)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.1)


def pumpops(*args: str, check: bool = True, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """``pumpops ARGS`` as a stranger runs it (our interpreter, ``-m pumpops``)."""
    done = subprocess.run(
        [sys.executable, "-m", "pumpops", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"pumpops {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done


# ---------------------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class Released:
    """Bundle folders by version (the same small SKAB model released three times), and the replayed file."""

    bundles: dict[int, Path]
    skab: Path


@pytest.fixture(scope="session")
def released(skab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Released:
    root = tmp_path_factory.mktemp("e2e-skab")
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
            "output": {"experiment": "e2e-security"},
        }
    )
    work = tmp_path_factory.mktemp("e2e-train")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        result = run_pipeline(config, workspace=work, tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    out = tmp_path_factory.mktemp("e2e-bundles")
    bundles: dict[int, Path] = {}
    for version in (1, 2, 3):
        source = load_source(result.model_dir, name="pumpops-skab", version=version)
        _, written = package_model(source, [get_target(TARGET)], out=out, data=root, settings=FAST)
        bundles[version] = written[0].folder
    return Released(bundles=bundles, skab=root / "valve1" / "0.csv")


# ---------------------------------------------------------------------------------------------- MQTT


@dataclass
class Client:
    """A connected ``pumpops.mqtt`` client (the adapter hub and agent use) and what it received."""

    conn: Connection
    inbox: queue.Queue[Message] = field(default_factory=queue.Queue)
    disconnects: list[object] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish at QoS 1 and wait for the broker's acknowledgement."""
        self.conn.wait_published([(topic, self.conn.publish(topic, payload, qos=1, retain=retain))], WAIT_S)

    def attempt(self, topic: str, payload: bytes, *, retain: bool = False) -> str:
        """Publish as an attacker would and wait until the broker has dealt with it.

        Mosquitto 2.0.11 answers a denied QoS 1 publish from an MQTT 3.1.1 client
        with a PUBACK carrying reason 135, which 3.1.1 has no room for: paho drops
        the link. Either way the broker has processed the message when this returns.
        """
        info = self.conn.publish(topic, payload, qos=1, retain=retain)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if self.disconnects:
                return "disconnected"
            with contextlib.suppress(RuntimeError):  # paho: "not currently connected"
                if info.is_published():
                    return "acknowledged"
            time.sleep(0.02)
        raise AssertionError(f"the broker neither acknowledged nor dropped the publish on {topic}")

    def receive_until(self, payload: bytes) -> list[tuple[str, bytes]]:
        """Everything received up to and including the control message ``payload``."""
        got: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                msg = self.inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            got.append((msg.topic, bytes(msg.payload)))
            if msg.payload == payload:
                return got
        raise AssertionError(f"control message {payload!r} never arrived; got {got}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


# ---------------------------------------------------------------------------------------------- the world


@dataclass
class World:
    """The workspace, its broker and hub processes, the provisioned pump, and the attacker's credentials."""

    tmp: Path
    ws: Path
    broker_port: int
    http_port: int
    released: Released
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    published: set[int] = field(default_factory=set)
    clients: list[Client] = field(default_factory=list)
    runs: int = 0

    # -- paths
    @property
    def broker_dir(self) -> Path:
        return self.ws / "broker"

    @property
    def ca_file(self) -> Path:
        return self.broker_dir / "ca.pem"

    @property
    def pump_dir(self) -> Path:
        return self.tmp / "carry-to-pump-1"

    @property
    def rogue_dir(self) -> Path:
        return self.tmp / "carry-to-rogue-1"

    @property
    def prefix(self) -> str:
        return "pumpops/v1"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.ws / 'pumpops.db'}"

    @property
    def newest(self) -> int:
        return max(self.published)

    def topic(self, device: str, kind: str, site: str = SITE) -> str:
        return f"{self.prefix}/{site}/{device}/{kind}"

    def password(self, identity: str) -> str:
        if identity == PUMP:
            return (self.pump_dir / "broker.password").read_text().strip()
        if identity == ROGUE:
            return (self.rogue_dir / "broker.password").read_text().strip()
        return (self.ws / "security" / "hub" / f"{identity}.password").read_text().strip()

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    # -- clients
    def connect(
        self,
        username: str | None,
        password: str | None = None,
        *,
        client_id: str | None = None,
        subscriptions: Sequence[str] = (),
        tls: bool = True,
        timeout_s: float = WAIT_S,
    ) -> Client:
        """A connected client (subscriptions acknowledged); BrokerError when the broker refuses it."""
        if username is not None and password is None:
            password = self.password(username)
        options = ClientOptions(
            client_id=client_id or f"outsider-{uuid.uuid4().hex[:12]}",
            clean_session=True,
            username=username,
            password=password,
            tls=TlsOptions(ca_file=str(self.ca_file)) if tls else None,
            reconnect_min_s=60,  # a refused client must not retry during the test
            reconnect_max_s=60,
        )
        inbox: queue.Queue[Message] = queue.Queue()
        disconnects: list[object] = []
        conn = Connection(
            "localhost",
            self.broker_port,
            options,
            subscriptions=subscriptions,
            on_message=inbox.put,
            on_disconnect=lambda reason, _was_up: disconnects.append(reason),
        )
        try:
            conn.connect(timeout_s)
        except BrokerError:
            with contextlib.suppress(Exception):
                conn.close()
            raise
        client = Client(conn, inbox, disconnects)
        self.clients.append(client)
        if subscriptions and not conn.wait_subscribed(WAIT_S):
            raise AssertionError("subscription not acknowledged")
        return client

    def refused(self, username: str | None, password: str | None, **how: Any) -> str:
        """Connect and expect the broker to refuse; return its reason."""
        with pytest.raises(BrokerError) as info:
            self.connect(username, password, timeout_s=5.0, **how)
        return str(info.value)

    def close_clients(self) -> None:
        for client in self.clients:
            client.close()
        self.clients.clear()

    def desire(self, payload: bytes) -> None:
        """The hub's rollout identity writes the pump's retained desired state (b"" clears it)."""
        hub = self.connect("hub-rollout")
        hub.publish(self.topic(PUMP, "desired"), payload, retain=True)
        hub.close()

    # -- the hub
    @contextlib.contextmanager
    def store(self) -> Iterator[TelemetryStore]:
        with open_store(self.db_url) as store:
            yield store

    def dead_letters(self, reason: str) -> list[Any]:
        with self.store() as store:
            return store.dead_letters(limit=1000, reason=reason)

    def publish_release(self, version: int) -> None:
        """Sign bundle ``version`` into the workspace's TUF repository (``pumpops tuf publish``)."""
        if version in self.published:
            return
        folder = self.released.bundles[version]
        staging = self.tmp / f"publish-{version}"
        shutil.copytree(folder, staging / folder.relative_to(folder.parents[2]))
        pumpops("-w", str(self.ws), "tuf", "publish", str(staging))
        self.published.add(version)

    # -- the pump
    def run_agent(self, *, raw_readings: bool = False, timeout_s: float = 120) -> dict[str, Any]:
        """``pumpops agent run --config <provisioned folder>/agent.toml`` until its replay ends; its state.

        Every run replays the same recording ending a minute ago; only the first
        uploads its raw readings (a later run would send other rows under a
        batch id an earlier run used: a ``msg_id_conflict`` no real pump makes).
        """
        self.runs += 1
        # the replay (1,147 s of readings, as fast as it goes) ends a minute ago: nothing from the future
        start = datetime.fromtimestamp(time.time() - 1210, tz=UTC).isoformat(timespec="seconds")
        config = self.pump_dir / "agent.toml"
        text = re.sub(r'(?m)^start = ".*"$', f'start = "{start}"', config.read_text())
        upload = "true" if raw_readings else "false"
        config.write_text(re.sub(r"(?m)^raw_readings = .*$", f"raw_readings = {upload}", text))
        log = self.tmp / "agent.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pumpops",
                    "agent",
                    "run",
                    "--config",
                    str(self.pump_dir / "agent.toml"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.pump_dir,
            )
        try:
            code = proc.wait(timeout=timeout_s)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert code == 0, f"agent run {self.runs} exited {code}:\n{self.log('agent')[-4000:]}"
        return self.agent_state()

    def agent_state(self) -> dict[str, Any]:
        return dict(json.loads((self.pump_dir / "agent-state" / "state.json").read_bytes()))


def _start(world: World, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
    with (world.tmp / f"{name}.log").open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    world.procs[name] = proc
    return proc


def _stop(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in reversed(list(procs.values())):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _secure_settings(ws: Path, port: int) -> None:
    """Do what ``broker-settings.toml`` says: append it to ``pumpops.toml``, and set its broker_url."""
    conf = ws / "pumpops.toml"
    text = re.sub(r"(?m)^broker_url = .*$", f'broker_url = "mqtts://localhost:{port}"', conf.read_text())
    conf.write_text(text + "\n" + (ws / "broker" / "broker-settings.toml").read_text())


def _agent_toml(world: World) -> None:
    """The provisioned agent.toml, with the pump's source (a SKAB replay) and a fast data clock."""
    path = world.pump_dir / "agent.toml"
    text = path.read_text()
    text = text.replace(
        'state_dir = "agent-state"\n',
        'state_dir = "agent-state"\nclock = "data"\nrefresh_interval_s = 60\nsummary_interval_s = 300\n'
        "calibration_rows = 540\ndrift_report_rows = 500\nstate_interval_s = 120\n",
    )
    text = text.replace(
        '[source]\nkind = "simulator"\n',
        f'[upload]\nraw_readings = true\nraw_max_rows_per_s = 100000\n\n[source]\nkind = "skab"\n'
        f'path = "{world.released.skab}"\nspeed = 0\nstart = "now"\n',
    )
    path.write_text(text)


@pytest.fixture(scope="module")
def world(released: Released, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("e2e-security")
    w = World(tmp=tmp, ws=tmp / "ws", broker_port=free_port(), http_port=free_port(), released=released)
    ws = str(w.ws)
    try:
        pumpops("init", ws)
        pumpops("-w", ws, "keys", "init")
        pumpops(
            "-w", ws, "broker", "config", "--out", str(w.broker_dir), "--hostname", "localhost",
            "--port", str(w.broker_port), "--bind", "127.0.0.1",
        )  # fmt: skip
        _secure_settings(w.ws, w.broker_port)
        with (w.broker_dir / "mosquitto.conf").open("a") as conf:
            conf.write(f"log_dest file {tmp / 'mosquitto.log'}\nlog_type all\n")
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        broker = _start(w, "mosquitto-stdout", [binary, "-c", str(w.broker_dir / "mosquitto.conf")])
        (tmp / "mosquitto.pid").write_text(f"{broker.pid}\n")
        wait_until(lambda: (tmp / "mosquitto.log").exists() and "running" in w.log("mosquitto"), "mosquitto")
        for device, folder in ((PUMP, w.pump_dir), (ROGUE, w.rogue_dir)):
            pumpops(
                "-w", ws, "devices", "provision", device, "--site", SITE, "--group", GROUP,
                "--profile", "skab-testbed", "--broker-url", f"mqtts://localhost:{w.broker_port}",
                "--repository-url", f"http://127.0.0.1:{w.http_port}/tuf/", "--out", str(folder),
                "--pid-file", str(tmp / "mosquitto.pid"),
            )  # fmt: skip
        for device in (PUMP, ROGUE):
            pumpops(
                "-w", ws, "devices", "register", "--device-id", device, "--site", SITE,
                "--profile", "skab-testbed", "--group", GROUP,
            )  # fmt: skip
        _agent_toml(w)
        wait_until(lambda: _admitted(w, ROGUE), "the reloaded broker to admit the provisioned devices")
        _start(w, "ingest", [sys.executable, "-m", "pumpops", "-w", ws, "ingest"])
        _start(
            w, "hub", [sys.executable, "-m", "pumpops", "-w", ws, "hub", "serve", "--port", str(w.http_port)]
        )
        wait_until(lambda: "u'hub-ingest'" in w.log("mosquitto"), "ingest to connect as hub-ingest", 60)
        wait_until(lambda: _healthy(w.http_port), "the hub's HTTP server", 60)
        w.publish_release(1)
        w.publish_release(2)
        w.run_agent(raw_readings=True)  # the pump's first run: it installs the newest release and reports
        yield w
    finally:
        w.close_clients()
        _stop(w.procs)


def _admitted(world: World, device: str) -> bool:
    try:
        world.connect(device, timeout_s=3).close()
    except BrokerError:
        return False
    return True


def _healthy(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
def w(world: World) -> Iterator[World]:
    """The module's world; the clients a test opened are closed after it."""
    yield world
    world.close_clients()
