"""The hub's retention step (`hub serve --services`): the same prune as `pumpops db prune`, from settings."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest

from pumpops.fleet import Device
from pumpops.hub import HubServices
from pumpops.schema import ReadingBatch
from pumpops.settings import init_workspace, load_settings
from pumpops.store import open_store

DAY = 86_400_000_000


@pytest.mark.parametrize("readings_days", [10, 0])
def test_hub_retention_step_prunes_by_the_workspace_settings_and_audits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, readings_days: int
) -> None:
    monkeypatch.delenv("PUMPOPS_WORKSPACE", raising=False)
    monkeypatch.delenv("PUMPOPS_DATABASE_URL", raising=False)
    init_workspace(tmp_path)
    with (tmp_path / "pumpops.toml").open("a") as toml:
        toml.write(f"\n[retention]\nreadings_days = {readings_days}\ninterval_s = 60\n")
    settings = load_settings(tmp_path)
    services = HubServices(settings)
    assert services.intervals["retention"] == 60
    now = time.time_ns() // 1000
    with open_store(settings.resolved_database_url) as store:
        store.upgrade()
        store.register_devices([Device("p-1", "s", "acme-ansi", "g")])
        ts = np.array([now - 20 * DAY, now - DAY], dtype=np.int64)
        digest = hashlib.sha256(b"m").hexdigest()
        store.write_batches([ReadingBatch("p-1", "m", digest, ts, ("motor_speed",), np.ones((2, 1)), now)])
        services._retention_step(store)
        kept = store.query("p-1").ts_us.tolist()
        pruned = [e for e in store.audit_entries() if e.action == "store.pruned"]
    if readings_days == 0:
        assert kept == ts.tolist()
        assert pruned == []
    else:
        assert kept == [int(ts[1])]
        assert len(pruned) == 1
        assert pruned[0].actor == settings.actor
        assert pruned[0].payload["kinds"]["readings"]["rows"] == 1
