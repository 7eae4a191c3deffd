"""Start-up (issue 11, friction 8): the CLI modules of telemetry, sim and sources load no heavy library.

``pumpops --help`` imports every part's ``_cli``; these load typer, rich and
``pumpops._cli_support`` only, and their commands import the rest when they run.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("numpy", "paho", "pydantic", "sqlalchemy", "pint", "amqtt", "orjson", "onnxruntime")


@pytest.mark.parametrize("module", ["pumpops.cli.telemetry", "pumpops.cli.sim", "pumpops.cli.sources"])
def test_cli_module_import_loads_no_heavy_library(module: str) -> None:
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.split() == [], f"{module} loads {loaded.strip()}"


def test_package_names_still_load_on_first_use() -> None:
    import pumpops.sim
    import pumpops.sources
    import pumpops.telemetry

    assert pumpops.telemetry.Publisher.__name__ == "Publisher"
    assert pumpops.sim.Scenario.__name__ == "Scenario"
    assert pumpops.sources.SkabCsvSource.__name__ == "SkabCsvSource"
    with pytest.raises(AttributeError):
        _ = pumpops.telemetry.NoSuchName  # type: ignore[attr-defined]
