"""``python -m pumpops.edge --config agent.toml``: the device process (see ``_run.py``)."""

from __future__ import annotations

from pumpops.edge._run import main

if __name__ == "__main__":
    raise SystemExit(main())
