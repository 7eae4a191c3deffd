"""The edge part stays small: importing the agent loads no hub library and no hub-side part.

Allowed besides the edge's own modules: the edge-safe parts (schema, fleet,
sources, sim, telemetry topics, errors, settings) and the bundle format
``pumpops.release._bundle`` (with the ``pumpops.release`` package that only
re-exports it). ``tests/foundation/test_edge_install.py`` runs the agent with
the hub libraries blocked; ``.ci/run`` installs it alone in a fresh venv.
"""

from __future__ import annotations

import json
import subprocess
import sys

from pumpops._install import HUB_LIBRARIES

HUB_PARTS = (
    "pumpops.store",
    "pumpops.pipeline",
    "pumpops.registry",
    "pumpops.validation",
    "pumpops.audit",
    "pumpops.hub",
)
#: The bundle format is edge-safe (the agent reads bundles); the rest of release is the hub's.
RELEASE_ALLOWED = ("pumpops.release", "pumpops.release._bundle")


def _forbidden(module: str) -> bool:
    if module.partition(".")[0] in HUB_LIBRARIES:
        return True
    if any(module == p or module.startswith(p + ".") for p in HUB_PARTS):
        return True
    return module.startswith("pumpops.release.") and module not in RELEASE_ALLOWED


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


def test_edge_import_rule_allows_the_bundle_format_only() -> None:
    assert not _forbidden("pumpops.release._bundle")
    assert not _forbidden("pumpops.release")
    assert _forbidden("pumpops.release._tuf")
    assert _forbidden("pumpops.store")
    assert _forbidden("sklearn.decomposition")
    assert not _forbidden("onnxruntime")
