"""The edge install: the agent and the root command run without any hub library.

Each check runs in a fresh interpreter whose import system refuses the hub's
libraries (a ``sys.meta_path`` finder), as on a device that installed only
``pip install "pumpops[edge]"``. ``.ci/run`` does the same for real, in a
fresh virtual environment; here the metadata checks keep ``pyproject.toml``
and :data:`pumpops._install.HUB_LIBRARIES` in agreement.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from pumpops._install import HUB_INSTALL, HUB_LIBRARIES

REPO = Path(__file__).resolve().parents[2]

#: What the issue names, and what a device must never load (``onnx``, not onnxruntime).
BLOCKED = (
    "sklearn",
    "mlflow",
    "sqlalchemy",
    "alembic",
    "fastapi",
    "uvicorn",
    "starlette",
    "pandas",
    "amqtt",
    "aiomqtt",
    "skl2onnx",
    "onnx",
    "psycopg",
)

_BLOCKER = """
import importlib.abc, sys
BLOCKED = frozenset({blocked!r})
class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: a hub library)", name=name)
        return None
sys.meta_path.insert(0, _Blocker())
"""


def _run_without_hub(code: str) -> subprocess.CompletedProcess[str]:
    blocker = _BLOCKER.format(blocked=sorted({*BLOCKED, *HUB_LIBRARIES}))
    return subprocess.run(
        [sys.executable, "-c", blocker + code],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        # no PUMPOPS_* settings from the caller; wide enough that rich does not wrap the headings
        env={"COLUMNS": "200", "PATH": os.defpath, "HOME": os.environ.get("HOME", "/")},
    )


def _cli_code(*argv: str) -> str:
    return (
        "import sys\n"
        "from pumpops.cli import main\n"
        f"sys.argv = ['pumpops', *{list(argv)!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "else:\n"
        "    code = 0\n"
        "hub = sorted(m for m in sys.modules if m.partition('.')[0] in BLOCKED)\n"
        "print('RESULT', code, ','.join(hub))\n"
    )


def _result(proc: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    match = re.search(r"^RESULT (\S+) (.*)$", proc.stdout, re.MULTILINE)
    assert match, proc.stdout + proc.stderr
    return match.group(1), match.group(2)


def test_edge_install_agent_imports_without_hub_libraries() -> None:
    proc = _run_without_hub(
        "import importlib, json, pkgutil, sys\n"
        "import pumpops.edge, pumpops.cli.agent\n"
        "for m in pkgutil.iter_modules(pumpops.edge.__path__, 'pumpops.edge.'):\n"
        "    importlib.import_module(m.name)  # every module the agent may load lazily\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.partition('.')[0] in BLOCKED)))\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_edge_install_agent_help_runs_without_hub_libraries() -> None:
    proc = _run_without_hub(_cli_code("agent", "--help"))
    code, loaded = _result(proc)
    assert code == "0", proc.stdout + proc.stderr
    assert loaded == ""
    assert "Usage: pumpops agent" in proc.stdout


def test_edge_install_every_agent_command_has_help_without_hub_libraries() -> None:
    proc = _run_without_hub(
        "import typer.main\n"
        "from typer.testing import CliRunner\n"
        "from pumpops.cli import app\n"
        "def paths(group, prefix):\n"
        "    yield prefix\n"
        "    for name, cmd in getattr(group, 'commands', {}).items():\n"
        "        yield from paths(cmd, (*prefix, name))\n"
        "agent = typer.main.get_command(app).commands['agent']\n"
        "for path in paths(agent, ('agent',)):\n"
        "    result = CliRunner().invoke(app, [*path, '--help'])\n"
        "    assert result.exit_code == 0, (path, result.output, result.exception)\n"
        "    print('HELP', ' '.join(path))\n"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "HELP agent\n" in proc.stdout


def test_edge_install_root_help_lists_hub_commands_under_their_install() -> None:
    proc = _run_without_hub(_cli_code("--help"))
    code, _ = _result(proc)
    assert code == "0", proc.stdout + proc.stderr
    commands, _, hub = proc.stdout.partition("Hub commands")
    assert "agent" in commands
    assert "sim" in commands
    assert f"need {HUB_INSTALL}" in hub
    assert "train" in hub
    assert "db" in hub


def test_edge_install_skips_a_hub_part_that_imports_a_hub_library_at_once() -> None:
    # as if pumpops.cli.hub imported fastapi at module level
    failing_part = (
        "class _FailingPart(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'pumpops.cli.hub':\n"
        "            raise ModuleNotFoundError(\"No module named 'fastapi'\", name='fastapi')\n"
        "sys.meta_path.insert(0, _FailingPart())\n"
    )
    proc = _run_without_hub(failing_part + _cli_code("--help"))
    code, _ = _result(proc)
    assert code == "0", proc.stdout + proc.stderr
    assert "serves the TUF repository" not in proc.stdout  # `pumpops hub` is absent
    assert "agent" in proc.stdout


@pytest.mark.parametrize("argv", [("db", "upgrade"), ("demo", "--hours", "0.1")], ids=["db", "demo"])
def test_edge_install_hub_command_names_the_install_it_needs(argv: tuple[str, ...], tmp_path: Path) -> None:
    proc = _run_without_hub(_cli_code("-w", str(tmp_path), *argv))
    code, _ = _result(proc)
    assert code == "2", proc.stdout + proc.stderr
    assert "this command needs the hub install" in proc.stderr
    assert HUB_INSTALL in proc.stderr
    assert "Traceback" not in proc.stderr


def test_full_install_root_help_has_no_hub_heading() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pumpops", "--help"], capture_output=True, text=True, check=True, timeout=120
    )
    assert "Hub commands" not in proc.stdout
    assert "agent" in proc.stdout


# --- pyproject.toml and HUB_LIBRARIES agree --------------------------------------------------


def _project() -> dict[str, object]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = data["project"]
    assert isinstance(project, dict)
    return project


def _names(requirements: list[str]) -> set[str]:
    return {md.distribution(Requirement(r).name).metadata["Name"].lower() for r in requirements}


def _modules_of(dist_names: set[str]) -> set[str]:
    modules = md.packages_distributions()
    return {m for m, dists in modules.items() for d in dists if d.lower() in dist_names}


def _closure(requirements: list[str]) -> set[str]:
    """Every distribution these requirements install, evaluated like pip does, by name."""
    seen: set[str] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        dist = md.distribution(req.name)
        name = dist.metadata["Name"].lower()
        extras_needed = [""] if name in seen else ["", *req.extras]
        seen.add(name)
        for sub in dist.requires or []:
            for wanted in extras_needed:
                sub_req = Requirement(sub)
                if sub_req.marker is None or sub_req.marker.evaluate({"extra": wanted}):
                    todo.append((sub_req, wanted))
    return seen


def test_pyproject_edge_extra_exists_and_hub_extra_is_apart_from_the_base() -> None:
    project = _project()
    extras = project["optional-dependencies"]
    assert isinstance(extras, dict)
    assert "edge" in extras  # `pip install "pumpops[edge]"` is the documented command
    base = project["dependencies"]
    assert isinstance(base, list)
    assert _names(base).isdisjoint(_names(extras["hub"]))


def test_hub_libraries_cover_every_requirement_of_the_hub_extra() -> None:
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    for requirement in extras["hub"]:
        name = Requirement(requirement).name.lower()
        modules = _modules_of({md.distribution(name).metadata["Name"].lower()})
        assert modules & HUB_LIBRARIES, f"{name} (imports as {sorted(modules)}) is not in HUB_LIBRARIES"
    assert set(BLOCKED) <= HUB_LIBRARIES


def test_hub_libraries_are_not_installed_by_the_base() -> None:
    base = _project()["dependencies"]
    assert isinstance(base, list)
    edge_modules = _modules_of(_closure(base))
    assert "onnxruntime" in edge_modules
    assert "cryptography" in edge_modules  # TUF signature checks
    assert sorted(HUB_LIBRARIES & edge_modules) == []
