"""The hub serves the TUF repository read-only under /tuf/: TestClient, then a real uvicorn end to end."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from pumpops.edge import EdgeUpdater
from pumpops.hub import create_app
from pumpops.release import PublishedFile, PublishedTarget, TufRepository, generate_signer

with warnings.catch_warnings():
    # starlette's TestClient warns that it prefers httpx2 (not installed); only this import is exempt.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient


@pytest.fixture
def repo(tmp_path: Path) -> TufRepository:
    signers = {r: [generate_signer()] for r in ("targets", "snapshot", "timestamp")}
    repo = TufRepository.create(tmp_path / "repo", root_signers=[generate_signer()], online_signers=signers)
    where = tmp_path / "bundle"
    where.mkdir()
    model = b"model bytes"
    (where / "model.onnx").write_bytes(model)
    manifest = {
        "group": "g1",
        "target": {"id": "t1"},
        "model_version": 3,
        "min_agent_version": "1.0.0",
        "files": {"model.onnx": {"sha256": hashlib.sha256(model).hexdigest(), "length": len(model)}},
    }
    (where / "manifest.json").write_text(json.dumps(manifest))
    files = (
        PublishedFile("manifest.json", where / "manifest.json"),
        PublishedFile("model.onnx", where / "model.onnx"),
    )
    repo.publish([PublishedTarget("g1", "t1", "3", "1.0.0", files)], signers)
    return repo


def test_hub_serves_metadata_and_targets_read_only(repo: TufRepository) -> None:
    client = TestClient(create_app(repo.folder))
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/tuf/metadata/1.root.json").content == repo.root_bytes(1)
    assert client.get("/tuf/metadata/timestamp.json").status_code == 200
    (target,) = (repo.targets_dir / "models/g1/t1/3").glob("*.model.onnx")
    assert client.get(f"/tuf/targets/models/g1/t1/3/{target.name}").content == b"model bytes"
    for missing in (
        "/tuf/metadata/2.root.json",
        "/tuf/metadata/",
        "/tuf/targets/models/g1",
        "/tuf/",
        "/tuf/../repo/metadata/1.root.json",
        "/tuf/metadata/..%2F..%2Fetc%2Fpasswd",
    ):
        assert client.get(missing).status_code == 404, missing
    assert client.post("/tuf/metadata/timestamp.json").status_code == 405


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(repo: TufRepository) -> Iterator[str]:
    port = _free_port()
    config = uvicorn.Config(
        create_app(repo.folder), host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{port}/tuf/"
    server.should_exit = True
    thread.join(timeout=10)


def test_device_installs_over_http_from_uvicorn(repo: TufRepository, served: str, tmp_path: Path) -> None:
    device = EdgeUpdater(
        trusted_root=repo.root_bytes(1),
        repository=served,
        state_dir=tmp_path / "dev/state",
        install_dir=tmp_path / "dev/models",
        group="g1",
        target="t1",
        agent_version="1.0.0",
    )
    installed = device.update()
    assert installed.version == "3"
    assert (installed.folder / "model.onnx").read_bytes() == b"model bytes"
