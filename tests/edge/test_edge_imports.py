"""The edge part stays small: importing it loads no hub-side library or part."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = (
    "sklearn",
    "mlflow",
    "sqlalchemy",
    "fastapi",
    "uvicorn",
    "pumpops.store",
    "pumpops.pipeline",
    "pumpops.registry",
    "pumpops.release",
    "pumpops.hub",
)


def test_edge_import_loads_no_hub_modules() -> None:
    code = "import json, sys, pumpops.edge; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    bad = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert bad == []
    assert "tuf.ngclient" in loaded
