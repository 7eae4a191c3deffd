"""The supervisor of child processes: unexpected exits are reported with the log's tail; no orphans."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from pumpops.errors import ServiceError
from pumpops.hub._supervise import Supervisor


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_supervisor_child_exiting_with_an_error_is_reported_with_its_last_log_lines(tmp_path: Path) -> None:
    code = "import sys\nfor i in range(40): print(f'line {i}')\nsys.exit(3)"
    with Supervisor() as sup:
        sup.spawn("agent p-1", [sys.executable, "-c", code], log=tmp_path / "agent.log", min_run_s=60)
        deadline = time.monotonic() + 20
        with pytest.raises(ServiceError) as failed:  # noqa: PT012 - polls until it raises
            while time.monotonic() < deadline:
                sup.check()
                time.sleep(0.1)
    text = str(failed.value)
    assert "agent p-1 exited with code 3" in text
    assert "line 39" in text
    assert "line 25" in text  # the last 15 lines
    assert "line 24" not in text


def test_supervisor_child_ending_early_with_code_0_is_unexpected(tmp_path: Path) -> None:
    with Supervisor() as sup:
        sup.spawn("agent p-2", [sys.executable, "-c", "print('bye')"], log=tmp_path / "a.log", min_run_s=60)
        time.sleep(0.1)
        deadline = time.monotonic() + 20
        while sup.problem() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        problem = sup.problem()
    assert problem is not None
    assert "before its run was over" in str(problem)
    assert "bye" in str(problem)


def test_supervisor_child_ending_after_its_run_is_normal(tmp_path: Path) -> None:
    with Supervisor() as sup:
        proc = sup.spawn("agent p-3", [sys.executable, "-c", "pass"], log=tmp_path / "a.log", min_run_s=0.0)
        proc.wait(timeout=20)
        assert sup.problem() is None
        assert sup.alive("agent") == 0


def test_supervisor_close_kills_the_whole_group_even_when_sigterm_is_ignored(tmp_path: Path) -> None:
    # the child ignores SIGTERM and has a child of its own (in the same process group)
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    log = tmp_path / "stubborn.log"
    sup = Supervisor(grace_s=1.0)
    with sup:
        proc = sup.spawn("stubborn", [sys.executable, "-c", code], log=log)
        deadline = time.monotonic() + 20
        while not log.read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        grandchild = int(log.read_text().split()[0])
        assert os.getpgid(proc.pid) == proc.pid != os.getpgid(0)
    assert _gone(proc.pid)
    deadline = time.monotonic() + 10
    while not _gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)  # the grandchild's parent was killed; init reaps it
    assert _gone(grandchild)


def test_supervisor_watcher_interrupts_a_long_step_with_the_failure(tmp_path: Path) -> None:
    sup = Supervisor(interval_s=0.1)
    started = time.monotonic()
    with pytest.raises(ServiceError) as failed, sup:  # noqa: PT012 - the interrupt arrives in the step
        sup.spawn("embedded broker", [sys.executable, "-c", "raise SystemExit(1)"], log=tmp_path / "b.log")
        sup.watch_in_background()
        try:
            for _ in range(300):  # a long step that never checks (training, say)
                time.sleep(0.1)
        except KeyboardInterrupt as exc:
            sup.reraise(exc)
    assert time.monotonic() - started < 15
    assert "embedded broker exited with code 1" in str(failed.value)


def test_supervisor_stops_stragglers_as_expected_ends_and_leaves_the_rest(tmp_path: Path) -> None:
    """An agent hung at its exit is stopped without being reported; other processes keep running."""
    hang = "import time\nwhile True: time.sleep(1)"
    with Supervisor(grace_s=2.0) as sup:
        stuck = sup.spawn("agent p-4", [sys.executable, "-c", hang], log=tmp_path / "a.log", min_run_s=0.0)
        broker = sup.spawn("embedded broker", [sys.executable, "-c", hang], log=tmp_path / "b.log")
        time.sleep(0.3)
        assert sup.stop_stragglers("agent ") == ["agent p-4"]
        assert stuck.poll() is not None
        assert sup.problem() is None  # stopped on purpose: not a failure
        assert sup.alive("agent ") == 0
        assert broker.poll() is None
        assert sup.stop_stragglers("agent ") == []
    assert _gone(broker.pid)
