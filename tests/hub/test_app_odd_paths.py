"""The hub's HTTP server answers odd paths with 404/400 and logs no traceback; HEAD works like GET.

Issue 13, row 12: ``/tuf/metadata/%00`` and a 5,000-character name were an
HTTP 500 with a full traceback per request. Each case here runs through
starlette's TestClient with server exceptions *not* raised (as uvicorn serves
them), and once end to end through a real uvicorn with raw request bytes.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from pumpops.hub import create_app

with warnings.catch_warnings():
    # starlette's TestClient warns that it prefers httpx2 (not installed); only this import is exempt.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

TIMESTAMP = b'{"signed": {"_type": "timestamp"}}'


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A repository folder with one metadata file and one target (the server only serves files)."""
    repo = tmp_path / "repo"
    (repo / "metadata").mkdir(parents=True)
    (repo / "targets" / "models").mkdir(parents=True)
    (repo / "metadata" / "timestamp.json").write_bytes(TIMESTAMP)
    (repo / "targets" / "models" / "abc.model.onnx").write_bytes(b"\x00model")
    (tmp_path / "secret.txt").write_text("outside the repository")
    return repo


ODD = [
    ("/tuf/metadata/%00", 400),
    ("/tuf/metadata/timestamp.json%00", 400),
    ("/tuf/metadata/%0a", 404),  # starlette's path pattern stops at a newline: no route
    ("/tuf/metadata/%7f", 400),
    ("/tuf/metadata/..%5c..%5csecret.txt", 400),
    ("/tuf/metadata/" + "a" * 5000, 404),
    ("/tuf/metadata/" + "a" * 255 + ".json", 404),
    ("/tuf/" + "metadata/" * 600 + "x", 404),
    ("/tuf/metadata/" + "%C3%A9" * 200, 404),
    ("/tuf/metadata/%FF%FE", 404),
    ("/tuf/metadata/%ED%A0%80", 404),
    ("/tuf/metadata/..", 404),
    ("/tuf/metadata/../../secret.txt", 404),
    ("/tuf/metadata/%2e%2e/%2e%2e/secret.txt", 404),
    ("/tuf/metadata/..%2F..%2Fsecret.txt", 404),
    ("/tuf/..", 404),
    ("/tuf/.", 404),
    ("/tuf/metadata//timestamp.json/", 404),
    ("/tuf/metadata/timestamp.json/x", 404),
    ("/tuf/targets/models", 404),
    ("/tuf/%00/timestamp.json", 400),
    ("/%00", 404),
]


@pytest.mark.parametrize(("path", "status"), ODD)
def test_app_odd_path_is_a_client_error_without_traceback(
    folder: Path, path: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    client = TestClient(create_app(folder), raise_server_exceptions=False)
    with caplog.at_level(logging.DEBUG):
        for method in ("GET", "HEAD"):
            response = client.request(method, path)
            assert response.status_code == status, (method, path, response.text)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_app_head_answers_like_get_without_the_body(folder: Path) -> None:
    client = TestClient(create_app(folder))
    for path in ("/tuf/metadata/timestamp.json", "/tuf/targets/models/abc.model.onnx"):
        got, head = client.get(path), client.head(path)
        assert (got.status_code, head.status_code) == (200, 200)
        assert head.content == b""
        for name in ("content-length", "content-type", "etag", "last-modified", "cache-control"):
            assert head.headers[name] == got.headers[name], name
    assert client.get("/tuf/metadata/timestamp.json").content == TIMESTAMP
    assert client.head("/tuf/metadata/missing.json").status_code == 404
    assert client.head("/healthz").status_code == 200
    assert client.post("/tuf/metadata/timestamp.json").status_code == 405


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(folder: Path) -> Iterator[int]:
    port = _free_port()
    config = uvicorn.Config(
        create_app(folder), host="127.0.0.1", port=port, log_level="info", ws="none", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def _raw(port: int, target: bytes, method: bytes = b"GET") -> tuple[int, bytes]:
    """One request with the request target sent byte for byte (no client-side quoting)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(method + b" " + target + b" HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def test_app_under_uvicorn_answers_raw_odd_requests_and_keeps_serving(
    served: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        for target, statuses in [
            (b"/tuf/metadata/%00", {400}),
            (b"/tuf/metadata/" + b"a" * 5000, {404}),
            (b"/tuf/metadata/\xff\xfe", {400, 404}),  # uvicorn's parser may refuse raw non-ASCII itself
            (b"/tuf/metadata/../../secret.txt", {404}),
        ]:
            status, _ = _raw(served, target)
            assert status in statuses, target
        status, body = _raw(served, b"/tuf/metadata/timestamp.json")
        assert (status, body) == (200, TIMESTAMP)
        status, body = _raw(served, b"/tuf/metadata/timestamp.json", b"HEAD")
        assert (status, body) == (200, b"")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert "Traceback" not in caplog.text
