"""The SQLite database file (and its WAL and shared-memory files) is readable by its owner only.

Issue 13: the workspace database holds devices, readings, the audit trail and
hashed API tokens; another local user must not read it. Tested with the
permissive umask most systems have (022), on the store and on ``pumpops init``.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pumpops.schema import DeadLetter
from pumpops.store import open_store


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask_022")
def test_store_sqlite_file_and_its_wal_are_created_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    with open_store(f"sqlite:///{path}") as store:
        store.upgrade()
        store.write_dead_letters([DeadLetter("t/x", b"\x00", "malformed_json", "test", 1)])
        made = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
        assert Path(f"{path}-wal") in made  # WAL mode: written while the store is open
        assert {p.name: _mode(p) for p in made} == {p.name: 0o600 for p in made}
    assert _mode(path) == 0o600


@pytest.mark.usefixtures("umask_022")
def test_store_sqlite_existing_file_keeps_the_mode_its_owner_chose(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    path.touch(mode=0o640)
    path.chmod(0o640)
    with open_store(f"sqlite:///{path}") as store:
        store.upgrade()
    assert _mode(path) == 0o640


def test_store_sqlite_in_memory_creates_no_file(tmp_path: Path) -> None:
    before = set(Path.cwd().iterdir())
    with open_store("sqlite://") as store:
        store.upgrade()
    assert set(Path.cwd().iterdir()) == before


def test_init_creates_the_workspace_database_owner_only(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUMPOPS_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys; os.umask(0o022); from pumpops.cli import main; main()",
            "init",
            "ws",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert _mode(tmp_path / "ws" / "pumpops.db") == 0o600
