"""Detection never waits for an update: a repository at 1 KB/s or one that never answers.

A real :class:`~pumpops.edge.Agent` on the wall clock (production) with a model
installed replays 300 SKAB rows at 100 rows per second while its update check (a
child process running python-tuf) talks to a local HTTP server that drips its
answer at 1 KB/s or accepts the connection and says nothing. Counting scores,
not time: every full window of the replay is scored while the check is still
running, and a check that outlives ``agent.update_timeout_s`` is stopped and
reported on ``state``, detection going on.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from _tiny import (  # type: ignore[import-not-found]
    DEVICE,
    SITE,
    install_model,
    make_repository,
    settings,
    write_rows,
    write_settings,
)

from pumpops.edge import Agent, load_agent_config
from pumpops.edge._device import read_profile
from pumpops.sources import SkabCsvSource

W = 20
ROWS = 300


class _Slow(BaseHTTPRequestHandler):
    mode = "drip"
    requests: list[str] = []  # noqa: RUF012 - shared by the server's threads, read by the test
    stop = threading.Event()

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        if self.mode == "stall":
            type(self).stop.wait(60)
            return
        self.send_response(200)
        self.send_header("Content-Length", "200000")
        self.end_headers()
        for _ in range(200_000):  # one byte a millisecond: 1 KB/s
            if type(self).stop.is_set():
                return
            try:
                self.wfile.write(b" ")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.001)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(params=["drip", "stall"])
def slow_repository(request: pytest.FixtureRequest) -> Iterator[tuple[str, type[_Slow]]]:
    handler = type(
        f"Slow{request.param}", (_Slow,), {"mode": request.param, "requests": [], "stop": threading.Event()}
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/tuf/", handler
    handler.stop.set()
    server.shutdown()
    server.server_close()


def _agent(tmp_path: Path, skab_dir: Path, url: str, **agent: Any) -> Agent:
    csv = write_rows(skab_dir, tmp_path / "rows.csv", range(ROWS))
    root = make_repository(tmp_path)  # its root is the trusted one; the server is what answers
    install_model(tmp_path, csv, window_rows=W)
    doc = settings(tmp_path, csv, repository={"url": url, "trusted_root": str(root)}, **agent)
    doc["source"]["speed"] = 100.0  # 100 rows a second: a 3-second replay
    config = load_agent_config(write_settings(tmp_path / "agent.toml", doc))
    source = SkabCsvSource(
        csv, device_id=DEVICE, site=SITE, rebase_to_ms=1_800_000_000_000, chunk_rows=1,
        profile=read_profile("skab-testbed"),
    )  # fmt: skip
    return Agent(config, source=source)


def test_every_window_is_scored_while_the_update_check_waits_on_the_repository(
    tmp_path: Path, skab_dir: Path, slow_repository: tuple[str, type[_Slow]]
) -> None:
    url, handler = slow_repository
    agent = _agent(tmp_path, skab_dir, url)
    busy_while_scoring: list[int] = []
    original = agent._record_score

    def record(ts_ms: int, score: float, finite: bool, step: Any) -> None:
        if agent.updater.busy:
            busy_while_scoring.append(ts_ms)
        original(ts_ms, score, finite, step)

    agent._record_score = record  # type: ignore[method-assign]
    assert agent.run() == 0
    scored = agent.counts["windows_scored"]
    assert scored == (ROWS - 1) - W + 1  # every full window (the last row stays in its open bin)
    assert handler.requests, "the update check never reached the repository"
    assert len(busy_while_scoring) == scored  # the check was running during every single score
    assert agent.updater.last is not None
    assert agent.updater.last.error == ("PumpopsError", "stopped")  # still waiting when the replay ended


def test_a_check_past_its_timeout_is_stopped_and_reported(
    tmp_path: Path, skab_dir: Path, slow_repository: tuple[str, type[_Slow]]
) -> None:
    url, _ = slow_repository
    agent = _agent(tmp_path, skab_dir, url, update_timeout_s=1.0)
    assert agent.run() == 0
    assert agent.counts["windows_scored"] == (ROWS - 1) - W + 1
    assert agent.last_update_error is not None
    assert "did not finish in 1 s" in agent.last_update_error
    state = json.loads((tmp_path / "state" / "state.json").read_bytes())  # the last report
    assert state["last_update_error"] == agent.last_update_error
    assert state["process"]["update_check_running"] is False
    assert agent.health == "ok"  # the installed model kept detecting


def test_nothing_listens_at_the_repository(tmp_path: Path, skab_dir: Path) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    agent = _agent(tmp_path, skab_dir, f"http://127.0.0.1:{port}/tuf/")
    assert agent.run() == 0
    assert agent.counts["windows_scored"] == (ROWS - 1) - W + 1
