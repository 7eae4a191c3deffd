"""A real agent writes its Prometheus textfile at each state report, the same counts as its state report.

A real :class:`~pumpops.edge.Agent` (onnxruntime, slots, outbox, the update check
against a folder repository) replays SKAB rows with ``metrics_textfile`` set; the
file is read back with ``prometheus_client``'s parser (the hub side) and compared
with ``state.json``, which the same report wrote.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from _tiny import (  # type: ignore[import-not-found]
    DEVICE,
    SITE,
    install_model,
    make_repository,
    settings,
    write_rows,
    write_settings,
)
from prometheus_client.parser import text_string_to_metric_families

from pumpops.edge import Agent, load_agent_config
from pumpops.edge._device import read_profile
from pumpops.sources import SkabCsvSource

W = 20
T0 = 1_800_000_000_000


def _agent(folder: Path, csv: Path, **agent: object) -> Agent:
    doc = settings(
        folder,
        csv,
        repository={"folder": str(folder / "repo"), "trusted_root": str(folder / "root.json")},
        clock="data",
        state_interval_s=5.0,
        **agent,
    )
    config = load_agent_config(write_settings(folder / "agent.toml", doc))
    source = SkabCsvSource(
        csv, device_id=DEVICE, site=SITE, rebase_to_ms=T0, chunk_rows=1, profile=read_profile("skab-testbed")
    )
    return Agent(config, source=source)


def _values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_agent_writes_its_counters_where_node_exporter_reads_them(tmp_path: Path, skab_dir: Path) -> None:
    csv = write_rows(skab_dir, tmp_path / "rows.csv", range(80))
    make_repository(tmp_path)
    install_model(tmp_path, csv, window_rows=W)
    agent = _agent(tmp_path, csv, metrics_textfile="textfile/pumpops.prom")
    assert agent.run() == 0

    text = (tmp_path / "state" / "textfile" / "pumpops.prom").read_text()
    got = _values(text)
    state = json.loads((tmp_path / "state" / "state.json").read_bytes())
    # The textfile is written at every state report and also when an unchanged state is
    # not re-sent, so it is at least as new as state.json and no newer than the agent.
    counts = state["counts"]
    assert counts["rows"] > 0  # the last report saw rows: the comparison below means something
    for key in ("rows", "windows_scored", "alarms_raised", "rows_out_of_order"):
        assert counts[key] <= got[f"pumpops_agent_{key}_total", ()] <= agent.counts[key], key
    checks = {r: got["pumpops_agent_update_checks_total", (("result", r),)] for r in ("ok", "failed")}
    assert checks == {
        "ok": agent.counts.get("update_checks_ok", 0),
        "failed": agent.counts.get("update_checks_failed", 0),
    }
    assert sum(checks.values()) >= 1  # the check at start-up is counted
    assert got["pumpops_agent_outbox_messages", ()] > 0  # no broker: the reports wait in the outbox
    assert got["pumpops_agent_resident_memory_bytes", ()] > 10 * 1024 * 1024
    (info,) = [labels for name, labels in got if name == "pumpops_agent_info"]
    assert dict(info)["device_id"] == DEVICE
    assert [p.name for p in (tmp_path / "state" / "textfile").iterdir()] == ["pumpops.prom"]


def test_no_textfile_unless_it_is_set(tmp_path: Path, skab_dir: Path) -> None:
    csv = write_rows(skab_dir, tmp_path / "rows.csv", range(30))
    make_repository(tmp_path)
    install_model(tmp_path, csv, window_rows=W)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert _agent(tmp_path, csv).run() == 0
    # An agent run inside another program (a test, a notebook) leaves its Ctrl-C as it found it.
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert (tmp_path / "state" / "state.json").exists()
    assert not list((tmp_path / "state").rglob("*.prom"))
