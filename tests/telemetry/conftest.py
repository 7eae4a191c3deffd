"""Fixtures for the telemetry tests: a small mixed fleet, payload builders, brokers.

Each test gets its own topic prefix and client ids, so tests never see each
other's messages, whichever broker they share.
"""

from __future__ import annotations

import getpass
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pumpops.fleet import Device, ManufacturerProfile, load_profiles
from pumpops.schema import CANONICAL_SENSORS, convert
from pumpops.settings import IngestSettings
from pumpops.telemetry import BrokerAddress, EmbeddedBroker, build_topic, encode_message

from .fakes import MemoryStore

# A plausible operating value of every canonical sensor, in its SI unit.
TYPICAL_SI = {
    "suction_pressure": 1.5e5,
    "discharge_pressure": 8.0e5,
    "flow_rate": 0.02,
    "motor_speed": 300.0,
    "motor_current": 40.0,
    "motor_voltage": 460.0,
    "motor_power": 25e3,
    "motor_temperature": 340.0,
    "bearing_temperature": 320.0,
    "fluid_temperature": 300.0,
    "vibration_velocity": 0.003,
    "vibration_accel_de": 4.0,
    "vibration_accel_nde": 3.0,
}

FLEET = (
    Device("acme-1", "site-a", "acme-ansi", "acme-ansi"),
    Device("nord-1", "site-b", "nordhav-multistage", "nordhav-multistage"),
    Device("sakura-1", "site-c", "sakura-esp", "sakura-esp"),
)
MOSQUITTO = ("127.0.0.1", 1883)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def native_row(profile: ManufacturerProfile, rng: np.random.Generator | None = None) -> list[float]:
    """One row of plausible values in the profile's native units."""
    rng = rng or np.random.default_rng(0)
    row = []
    for s in profile.sensors:
        si = TYPICAL_SI[s.canonical] * (1 + 0.01 * rng.standard_normal())
        row.append(float(convert(np.array([si]), CANONICAL_SENSORS[s.canonical].unit, s.unit)[0]))
    return row


@dataclass
class Msg:
    """A message under construction: tests change a field, then call :meth:`payload`."""

    device: Device
    profile: ManufacturerProfile
    msg_id: str
    sensors: list[tuple[str, str]]
    ts_ms: list[int]
    values: list[list[float | None]]
    prefix: str = "pumpops/v1"

    @property
    def topic(self) -> str:
        return build_topic(self.device.site, self.device.device_id, prefix=self.prefix)

    @property
    def readings(self) -> int:
        return sum(v is not None for row in self.values for v in row)

    def payload(self) -> bytes:
        """The JSON payload; None is ``null``, a NaN or infinite float a ``NaN``/``Infinity`` literal."""
        if any(v is not None and not math.isfinite(v) for row in self.values for v in row):
            body = {
                "schema": "pumpops.telemetry/1",
                "msg_id": self.msg_id,
                "device_id": self.device.device_id,
                "sensors": [{"name": n, "unit": u} for n, u in self.sensors],
                "ts_ms": self.ts_ms,
                "values": self.values,
            }
            return json.dumps(body, allow_nan=True).encode()
        return encode_message(
            msg_id=self.msg_id,
            device_id=self.device.device_id,
            sensors=self.sensors,
            ts_ms=self.ts_ms,
            values=[[np.nan if v is None else v for v in row] for row in self.values],
        )


def make_msg(
    device: Device,
    *,
    rows: int = 10,
    start_ms: int | None = None,
    period_ms: int = 1000,
    msg_id: str | None = None,
    prefix: str = "pumpops/v1",
    seed: int = 0,
) -> Msg:
    """A valid message of ``rows`` rows ending about a minute ago."""
    profile = load_profiles()[device.profile_id]
    start = start_ms if start_ms is not None else now_ms() - 60_000 - rows * period_ms
    rng = np.random.default_rng(seed)
    return Msg(
        device=device,
        profile=profile,
        msg_id=msg_id or f"{device.device_id}-{start}-{rows}",
        sensors=[(s.native, s.unit) for s in profile.sensors],
        ts_ms=[start + i * period_ms for i in range(rows)],
        values=[list(native_row(profile, rng)) for _ in range(rows)],
        prefix=prefix,
    )


@pytest.fixture
def profiles() -> dict[str, ManufacturerProfile]:
    return load_profiles()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(FLEET)


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}/v1"


@pytest.fixture
def client_id() -> str:
    return f"test-ingest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def ingest_settings(client_id: str) -> IngestSettings:
    """Fast batching and reconnects, so tests wait little."""
    return IngestSettings(
        client_id=client_id,
        batch_max_wait_s=0.02,
        reconnect_min_s=0.05,
        reconnect_max_s=0.5,
        max_past_age_s=30 * 86_400,  # as test_codec.LIMITS
    )


@pytest.fixture(scope="session")
def embedded_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(port=0) as broker:
        yield broker


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def mosquitto() -> BrokerAddress:
    """The Mosquitto on 127.0.0.1:1883 (its default config: at most 1000 queued messages per client)."""
    if not port_open(*MOSQUITTO):
        if os.environ.get("CI"):
            pytest.fail("Mosquitto is not running on 127.0.0.1:1883 (.ci/run should have started it)")
        pytest.skip("Mosquitto is not running on 127.0.0.1:1883")
    return BrokerAddress(*MOSQUITTO)


@pytest.fixture(params=["embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)])
def broker_address(request: pytest.FixtureRequest) -> BrokerAddress:
    """Each test using it runs against the embedded broker and against Mosquitto."""
    if request.param == "embedded":
        return request.getfixturevalue("embedded_broker").address
    return request.getfixturevalue("mosquitto")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnMosquitto:
    """A Mosquitto process of our own, configured for zero loss, that a test may stop and restart."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        (folder / "data").mkdir()
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {folder / 'data'}/\n"
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n"
            f"log_dest file {folder / 'mosquitto.log'}\n"
            # started as root, Mosquitto drops to user "mosquitto", who cannot write our tmp folder
            f"user {getpass.getuser()}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> BrokerAddress:
        return BrokerAddress("127.0.0.1", self.port)

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([binary, "-c", str(self.config)], stdout=subprocess.DEVNULL)
        wait_until(lambda: port_open("127.0.0.1", self.port), timeout_s=10, what="mosquitto to listen")

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves its persistence file (sessions, queued messages) and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def own_mosquitto(tmp_path: Path) -> Iterator[OwnMosquitto]:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed")
    broker = OwnMosquitto(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def wait_until(cond: Callable[[], bool], *, timeout_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)
