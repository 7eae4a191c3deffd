"""A rollout's rollback through the signed path: the pin is signed into the workspace's TUF repository first.

The service runs on the fake store and publisher of ``fakes.py`` (devices,
releases, retained messages); the intent goes through the real
:class:`~pumpops.release.SignedIntentWriter` into a real workspace: its
repository (``pumpops keys init``), its online targets key, its audit trail.
A device (real python-tuf client) on that repository then follows the
rollback the MQTT hint alone could not make it take.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pumpops.cli import app
from pumpops.edge import EdgeUpdater
from pumpops.errors import NotFoundError
from pumpops.fleet import Device
from pumpops.release import (
    PublishedFile,
    PublishedTarget,
    SignedIntentWriter,
    keystore,
    online_signers,
    open_repository,
)
from pumpops.rollout import GatePolicy, RolloutService
from pumpops.settings import Settings, load_settings
from pumpops.store import TelemetryStore, open_store

from .fakes import FakeEvents, FakePublisher, FakeStore, release

GROUP = "g1"
TARGET = "x86_64-ipc"
DEVICES = [Device(f"p-{i}", "site", "acme-ansi", GROUP) for i in range(2)]


def _bundle(folder: Path, version: str) -> PublishedTarget:
    where = folder / version
    where.mkdir(parents=True)
    model = f"model {version}".encode()
    (where / "model.onnx").write_bytes(model)
    manifest = {
        "group": GROUP,
        "target": {"id": TARGET},
        "model_version": int(version),
        "min_agent_version": "1.0.0",
        "files": {"model.onnx": {"sha256": hashlib.sha256(model).hexdigest()}},
    }
    (where / "manifest.json").write_text(json.dumps(manifest))
    files = tuple(PublishedFile(n, where / n) for n in ("manifest.json", "model.onnx"))
    return PublishedTarget(GROUP, TARGET, version, "1.0.0", files)


@pytest.fixture
def workspace(tmp_path: Path) -> Settings:
    ws = tmp_path / "ws"
    for args in (["init", str(ws)], ["-w", str(ws), "keys", "init"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    settings = load_settings(ws)
    bundles = [_bundle(tmp_path / "bundles", v) for v in ("1", "2")]
    open_repository(settings).publish(bundles, online_signers(keystore(settings)))
    return settings


@pytest.fixture
def hub_store(workspace: Settings) -> Iterator[TelemetryStore]:
    with open_store(workspace.resolved_database_url) as store:
        yield store


class WatchingPublisher(FakePublisher):
    """Records what the signed repository pinned at the moment each hint went out."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self.pinned_at_publish: list[str | None] = []

    def publish_retained(self, messages: Sequence[tuple[str, bytes]]) -> None:
        self.pinned_at_publish.append(open_repository(self.settings).intent(GROUP).pinned)
        super().publish_retained(messages)


def _service(settings: Settings, hub_store: TelemetryStore, publisher: FakePublisher) -> RolloutService:
    store = FakeStore(DEVICES, [release("pumpops-skab", 1, GROUP, 1), release("pumpops-skab", 2, GROUP, 2)])
    return RolloutService(
        store,
        publisher,
        events=FakeEvents(),
        actor="ops@test",
        clock=lambda: 1_767_225_600.0,
        intent=SignedIntentWriter(settings, hub_store),
    )


def _device(settings: Settings, tmp: Path) -> EdgeUpdater:
    repo = open_repository(settings)
    return EdgeUpdater(
        trusted_root=repo.root_bytes(1),
        repository=repo.folder,
        state_dir=tmp / "dev" / "state",
        install_dir=tmp / "dev" / "models",
        group=GROUP,
        target=TARGET,
        agent_version="1.0.0",
    )


def _intent_entries(hub_store: TelemetryStore) -> list[Any]:
    return [e for e in hub_store.audit_entries() if e.action == "release.intent_signed"]


def test_rollback_signs_the_pin_then_publishes_the_hint_and_the_device_follows(
    workspace: Settings, hub_store: TelemetryStore, tmp_path: Path
) -> None:
    publisher = WatchingPublisher(workspace)
    service = _service(workspace, hub_store, publisher)
    device = _device(workspace, tmp_path)
    assert device.update().version == "2"
    refused = device.update("1")  # what a forged desired could do before: nothing
    assert refused.version == "2"
    assert "not signed by the hub" in str(refused.hint_refused)

    rid = service.start("pumpops-skab/2", GROUP, (100,), GatePolicy(on_fail="rollback"), previous_version="1")
    state = service.abort(rid, roll_back=True, reason="operator saw alarms")
    assert state.status == "rolling_back"
    assert publisher.pinned_at_publish == [None, "1"]  # the pin was signed before the rollback's hint
    assert {doc["version"] for doc in publisher.desired().values()} == {1}

    back = device.update("1")  # the hint, now backed by the signed intent
    assert (back.version, back.changed, back.hint_refused) == ("1", True, None)
    (entry,) = _intent_entries(hub_store)
    payload = json.loads(entry.payload_json)
    assert (entry.actor, entry.subject, payload["pinned"]) == ("ops@test", f"group/{GROUP}", "1")
    assert rid in payload["reason"]


def test_a_new_rollout_lifts_the_pin_of_the_last_rollback(
    workspace: Settings, hub_store: TelemetryStore, tmp_path: Path
) -> None:
    writer = SignedIntentWriter(workspace, hub_store)
    assert writer.pin(GROUP, "1", actor="ops@test", reason="rolled back")
    assert not writer.pin(GROUP, "1", actor="ops@test", reason="same pin: nothing signed")
    device = _device(workspace, tmp_path)
    assert device.update("2").version == "1"  # pinned: the newer hint waits
    service = _service(workspace, hub_store, WatchingPublisher(workspace))
    service.start("pumpops-skab/2", GROUP, (100,), GatePolicy(), previous_version="1")
    assert open_repository(workspace).intent(GROUP).pinned is None
    assert device.update("2").version == "2"
    assert [json.loads(e.payload_json)["pinned"] for e in _intent_entries(hub_store)] == ["1", None]


def test_rollback_to_a_version_never_published_fails_the_step_and_publishes_nothing(
    workspace: Settings, hub_store: TelemetryStore
) -> None:
    publisher = WatchingPublisher(workspace)
    service = _service(workspace, hub_store, publisher)
    rid = service.start("pumpops-skab/2", GROUP, (100,), GatePolicy(), previous_version="7")
    with pytest.raises(NotFoundError, match="version 7 is not published for group g1"):
        service.abort(rid, roll_back=True)
    assert publisher.pinned_at_publish == [None]  # only the start's hint went out
    assert service.get(rid).status == "running"  # not stored: the operator can retry or fix the repository
