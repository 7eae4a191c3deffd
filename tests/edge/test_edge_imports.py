"""The edge part stays small: it imports only what the one edge rule allows.

The rule (``pumpops.edge``'s docstring, docs/architecture.md and the
import-linter contract state the same): ``pumpops.edge`` imports only
``schema``, ``errors``, ``fleet``, ``sources``, ``sim``, ``mqtt``,
``_atomic``, ``_install``, ``_digest``, ``_lazy`` and its own modules (plus numpy, onnxruntime,
paho-mqtt; python-tuf only while updating) — never store, pipeline, registry,
release, telemetry, hub, cli, scikit-learn, MLflow, SQLAlchemy, FastAPI.
``tests/foundation/test_edge_install.py`` runs the agent with the hub
libraries blocked; ``.ci/run`` installs it alone in a fresh venv.
"""

from __future__ import annotations

import json
import subprocess
import sys

from pumpops._install import HUB_LIBRARIES

#: The pumpops modules the edge may load: its own, the edge-safe parts, the bottom utilities.
EDGE_ALLOWED = (
    "pumpops.edge",
    "pumpops.schema",
    "pumpops.errors",
    "pumpops.fleet",
    "pumpops.sources",
    "pumpops.sim",
    "pumpops.mqtt",
    "pumpops._atomic",
    "pumpops._install",
    "pumpops._digest",
    "pumpops._lazy",  # how package __init__s load their names on first use (stdlib only)
)


def _forbidden(module: str) -> bool:
    if module.partition(".")[0] in HUB_LIBRARIES:
        return True
    if module == "pumpops" or not module.startswith("pumpops."):
        return False  # the package root (its version) and the allowed third-party libraries
    return not any(module == p or module.startswith(p + ".") for p in EDGE_ALLOWED)


def test_edge_import_of_every_module_loads_no_hub_modules() -> None:
    code = (
        "import importlib, json, pkgutil, sys, pumpops.edge\n"
        "for m in pkgutil.iter_modules(pumpops.edge.__path__, 'pumpops.edge.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert [m for m in loaded if _forbidden(m)] == []
    assert "tuf.ngclient" in loaded


def test_edge_import_rule_is_the_one_rule() -> None:
    for allowed in (*EDGE_ALLOWED, "pumpops.schema._bundle", "pumpops", "onnxruntime", "numpy", "paho.mqtt"):
        assert not _forbidden(allowed), allowed
    hub_side = ("store", "pipeline", "registry", "release", "telemetry", "hub", "cli", "settings")
    for part in hub_side:
        assert _forbidden(f"pumpops.{part}"), part
    assert _forbidden("pumpops.release._bundle")
    assert _forbidden("sklearn.decomposition")
    assert _forbidden("sqlalchemy")
    assert _forbidden("mlflow")
    assert _forbidden("fastapi")


#: What the device process must not load (issue 16): the command line, the hub's validator, the units
#: library and the TUF client with its cryptography (those run in the update-check child only).
DEVICE_PROCESS_NEVER = (
    "typer", "rich", "pydantic", "pydantic_core", "pint", "scipy", "tuf", "cryptography",
    "securesystemslib", "urllib3", "pumpops.cli", "pumpops.fleet", "pumpops.sim",
)  # fmt: skip


def test_the_device_process_loads_none_of_the_heavy_libraries() -> None:
    """The lean entry point, the agent and the SKAB replay source, as ``pumpops-agent`` loads them."""
    code = (
        "import json, sys\n"
        "import pumpops.edge._run, pumpops.edge.__main__\n"
        "from pumpops.edge._agent import Agent\n"
        "from pumpops.edge._sources import build_source\n"
        "from pumpops.sources import SkabCsvSource\n"
        "from pumpops.edge._device import read_profile, read_target\n"
        "read_profile('skab-testbed'), read_target('armv7-controller')\n"
        "from pumpops.schema import read_bundle, CANONICAL_SENSORS, IDENT_PATTERN\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    heavy = [m for m in loaded if any(m == n or m.startswith(n + ".") for n in DEVICE_PROCESS_NEVER)]
    assert heavy == []
    assert "onnxruntime" in loaded
    assert "msgspec" in loaded


def test_the_update_check_child_is_where_tuf_loads() -> None:
    code = "import json, sys, pumpops.edge._update_child as c\nprint(json.dumps('tuf' in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) is False  # not even the child module loads it before a job runs
