"""Fixtures of the HTTP API tests: the hub's real app on a fresh store (SQLite, PostgreSQL), Mosquitto.

The app is built as ``pumpops hub serve`` builds it (``pumpops.hub.api_context``
and ``create_app(..., api=mount_api)``), on a database of its own (a file on
SQLite; a schema with a unique name on PostgreSQL, dropped afterwards), with
desired states and events on the Mosquitto at 127.0.0.1:1883 under a topic
prefix of its own. Agent messages are stored through ``IngestService.process``,
as the hub's ingest stores them. One token per role.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pumpops.fleet import Device
from pumpops.hub import api_context, create_app
from pumpops.schema import TOPIC_OF_KIND, AgentMessage, ReadingBatch, encode_agent_message, with_msg_id
from pumpops.settings import IngestSettings, Settings
from pumpops.store import TelemetryStore, open_store
from pumpops.telemetry import BrokerAddress, IngestService, build_topic
from pumpops.web import ApiContext, hash_token, mount_api, new_token

with warnings.catch_warnings():
    # starlette's TestClient warns that it prefers httpx2 (not installed); only this import is exempt.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

POSTGRES_URL = os.environ.get(
    "PUMPOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MOSQUITTO = BrokerAddress("127.0.0.1", 1883)
GROUP = "g-web"
DEVICES = [Device(f"p-{i}", f"site-{i % 2}", "acme-ansi", GROUP) for i in range(4)]
SITE = {d.device_id: d.site for d in DEVICES}


def _port_open(address: BrokerAddress) -> bool:
    try:
        with socket.create_connection((address.host, address.port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def broker() -> BrokerAddress:
    if not _port_open(MOSQUITTO):
        if os.environ.get("CI"):
            pytest.fail("Mosquitto is not running on 127.0.0.1:1883")
        pytest.skip("Mosquitto is not running on 127.0.0.1:1883")
    return MOSQUITTO


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
        return
    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES_URL, poolclass=sa.NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        admin.dispose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL not reachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}")
    schema = f"pumpops_test_{uuid.uuid4().hex[:16]}"
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    admin.dispose()


def make_token(store: TelemetryStore, name: str, role: str, **kwargs: Any) -> str:
    """A token stored as ``pumpops tokens create`` stores it; returns the secret token."""
    token_id, token = new_token()
    store.add_api_token(
        token_id, name=name, role=role, token_sha256=hash_token(token), created_by="test", **kwargs
    )
    return token


class Api:
    """The app under test, its store and context, a token per role, and ways to feed it agent messages."""

    def __init__(self, store: TelemetryStore, context: ApiContext, client: TestClient, prefix: str) -> None:
        self.store, self.context, self.client, self.prefix = store, context, client, prefix
        self.tokens = {
            role: make_token(store, f"{role}-ann", role) for role in ("viewer", "operator", "admin")
        }
        self._seq: dict[str, int] = {}

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, path: str, role: str = "viewer", **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.headers(role), **kwargs)

    def post(self, path: str, role: str, body: Any = None, **kwargs: Any) -> Any:
        return self.client.post(path, headers=self.headers(role), json=body, **kwargs)

    def agent(self, device_id: str, kind: str, body: dict[str, Any], *, ts_ms: int | None = None) -> str:
        """Store one agent message through the ingest's processing; return its msg_id."""
        self._seq[device_id] = self._seq.get(device_id, 0) + 1
        msg_id = f"{device_id}:{self._seq[device_id]}"
        message = AgentMessage(
            device_id=device_id,
            site=SITE.get(device_id, "site-x"),
            kind=kind,  # type: ignore[arg-type]
            ts_ms=round(time.time() * 1000) if ts_ms is None else ts_ms,
            agent_version="0.1.0",
            body=body,
        )
        payload = with_msg_id(encode_agent_message(message), msg_id)
        topic = build_topic(SITE.get(device_id, "site-x"), device_id, TOPIC_OF_KIND[kind], prefix=self.prefix)
        ingest = IngestService(
            self.store,
            MOSQUITTO,
            settings=IngestSettings(client_id=f"test-{uuid.uuid4().hex[:8]}"),
            topic_prefix=self.prefix,
        )
        assert ingest.process([(topic, payload)]).agent_messages == 1
        return msg_id

    def state(self, device_id: str, *, version: int = 1, health: str = "ok") -> None:
        self.agent(
            device_id,
            "state",
            {"status": "detecting", "model_name": "pumpops-skab", "model_version": version, "slot": "a",
             "health": health, "health_reasons": [], "last_update_error": None, "desired_version": None,
             "stale": False, "counts": {}, "outbox_depth": 3},
        )  # fmt: skip

    def alarm(self, device_id: str, started_ms: int, *, event: str = "raised") -> str:
        """An alarm message; returns its alarm id."""
        self.agent(
            device_id,
            "alarm",
            {"event": event, "alarm_id": f"{device_id}:{started_ms}", "started_ms": started_ms,
             "ended_ms": None if event == "raised" else started_ms + 60_000, "peak_score": 9.5,
             "threshold": 3.0, "model_name": "pumpops-skab", "model_version": 1},
            ts_ms=started_ms,
        )  # fmt: skip
        return f"{device_id}:{started_ms}"

    def readings(self, device_id: str, ts_us: np.ndarray, values: dict[str, np.ndarray]) -> None:
        sensors = tuple(values)
        matrix = np.column_stack([values[s] for s in sensors]).astype(np.float64)
        digest = hashlib.sha256(repr((device_id, ts_us.tolist()[:3], sensors)).encode()).hexdigest()
        batch = ReadingBatch(
            device_id, f"m-{uuid.uuid4().hex[:8]}", digest, ts_us, sensors, matrix, int(ts_us[-1])
        )
        self.store.write_batches([batch])

    def audit(self, action: str) -> list[Any]:
        return [e for e in self.store.audit_entries() if e.action == action]


@pytest.fixture
def api(store_url: str, broker: BrokerAddress, tmp_path: Path) -> Iterator[Api]:
    prefix = f"test-web-{uuid.uuid4().hex[:8]}/v1"
    settings = Settings(
        workspace=tmp_path,
        database_url=store_url,
        broker_url=f"mqtt://{broker.host}:{broker.port}",
        topic_prefix=prefix,
        actor="test-hub",
    )
    with ExitStack() as stack:
        store = stack.enter_context(open_store(store_url))
        store.upgrade()
        store.register_devices(DEVICES)
        context = stack.enter_context(api_context(settings, store))
        context.stream_poll_s = 0.05
        app = create_app(tmp_path / "repository", api=lambda a: mount_api(a, context))
        client = stack.enter_context(TestClient(app, raise_server_exceptions=False))
        yield Api(store, context, client, prefix)


def json_lines(text: str) -> list[dict[str, Any]]:
    """The ``data:`` payloads of a server-sent event stream's text, with their ``event:`` names."""
    out = []
    name = "message"
    for line in text.splitlines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            out.append({"event": name, **json.loads(line.removeprefix("data: "))})
    return out
