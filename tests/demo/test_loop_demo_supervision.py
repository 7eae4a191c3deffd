"""``pumpops demo`` supervises what it starts (issue 11, "make demo on a fresh clone").

With the default relative workspace every agent used to exit at once (a relative
``--config`` in another folder); the demo did not notice, waited >12 minutes
printing nothing, and left its broker running when stopped. Here: the
preparation (history and one trained model per make, about a minute) is done once
and copied; each test then runs the hub and the agents as processes.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import pumpops.demo._loop as demo
from pumpops.cli._support import ExitCode
from pumpops.errors import ServiceError
from pumpops.hub import Supervisor
from pumpops.settings import load_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]  # a loaded 2-core CI: training takes minutes

SMALL = {"pumps": 6, "run_h": 4.0, "speed": 120.0}  # agents run 2 min: all alive while checked


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Processes whose command line contains ``text`` (a /proc scan, no psutil)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append((int(entry.name), cmdline))
    return found


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[demo.LoopOptions, Any]:
    """History and one released champion per make, in a workspace the tests copy."""
    options = demo.LoopOptions(workspace=tmp_path_factory.mktemp("prepared") / "ws", **SMALL)  # type: ignore[arg-type]
    world = demo._prepare(options, Console(file=io.StringIO(), width=200))
    return options, world


def _copy(prepared: tuple[demo.LoopOptions, Any], target: Path) -> tuple[demo.LoopOptions, Any]:
    options, world = prepared
    shutil.copytree(options.workspace, target)
    settings = load_settings(target)
    out = Console(file=io.StringIO(), width=200)
    return replace(options, workspace=target), replace(
        world,
        settings=settings,
        timeline=demo.Timeline(out, world.t0_ms),
        outcomes=[],
        rollouts=[],
        milestones={},
    )


def test_loop_demo_agent_that_dies_fails_the_demo_within_seconds_with_its_log(
    prepared: tuple[demo.LoopOptions, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options, world = _copy(prepared, tmp_path / "ws")
    victim = world.fleet[0].device_id
    real_config = demo._agent_config

    def broken_config(folder: Path, device: Any, *args: Any, **kwargs: Any) -> Path:
        path = real_config(folder, device, *args, **kwargs)
        if device.device_id == victim:  # the agent cannot read its settings and exits at once
            path.write_text(path.read_text() + "\nthis is not toml [\n")
        return path

    monkeypatch.setattr(demo, "_agent_config", broken_config)
    sup = Supervisor()
    started = time.monotonic()
    with pytest.raises(ServiceError) as failed, sup:
        demo._run_hub(options, world, Console(file=io.StringIO(), width=200), sup)
    took = time.monotonic() - started
    text = str(failed.value)
    assert f"agent {victim}" in text
    assert "exited with code" in text
    assert "agent.toml" in text  # the agent's own last log lines say what it could not read
    assert took < 60, took
    assert sup.pids()  # the broker's and the agents' processes...
    assert all(_gone(pid) for pid in sup.pids())  # ...are all gone
    assert _processes_mentioning(str(options.workspace)) == []


def test_loop_demo_relative_workspace_runs_every_agent(
    prepared: tuple[demo.LoopOptions, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    def copy_prepared(options: demo.LoopOptions, out: Console) -> Any:
        assert options.workspace.is_absolute()  # resolved once, where the demo starts
        return _copy(prepared, options.workspace)[1]

    monkeypatch.setattr(demo, "_prepare", copy_prepared)
    out = io.StringIO()
    result = demo.run_loop_demo(
        demo.LoopOptions(workspace=Path("demo-workspace"), **SMALL),  # type: ignore[arg-type]
        Console(file=out, width=200),
        stop_after="agents",
    )
    assert result["agents_alive"] == SMALL["pumps"] - 1  # one pump is offline at first
    assert result["agents_reported"] == SMALL["pumps"] - 1
    assert all(_gone(pid) for pid in result["pids"])
    config = (tmp_path / "demo-workspace" / "agents" / "p-0001" / "agent.toml").read_text()
    assert str(tmp_path / "demo-workspace") in config  # absolute paths for the agents


def test_demo_cli_sigterm_stops_every_process_and_exits_130(tmp_path: Path) -> None:
    ws = tmp_path / "rel-ws"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pumpops",
            "demo",
            "--workspace",
            "rel-ws",
            "--pumps",
            "6",
            "--run-hours",
            "4",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 400
        while not any("agents started" in line for line in lines) and time.monotonic() < deadline:
            assert proc.poll() is None, "".join(lines)
            time.sleep(0.5)
        assert any("agents started" in line for line in lines), "".join(lines)
        time.sleep(2)
        children = _processes_mentioning(str(ws))
        # the broker and 5 agents, all with absolute paths although the workspace was given relative
        assert len(children) >= 6, children
        assert proc.poll() is None, "".join(lines)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == ExitCode.INTERRUPTED
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    if proc.stdout is not None:
        proc.stdout.close()
    assert _processes_mentioning(str(ws)) == []
    assert all(_gone(pid) for pid, _ in children)
