"""The agent's drift verdict is the shift test's: a shifted sensor is named, a stationary run gives none.

A real :class:`~pumpops.edge.Agent` (onnxruntime, slots, the tiny model of ``_tiny``)
with a commissioned normal period (SKAB anomaly-free rows 0-1499, SI units, in
``normal-period.npy``) replays rows 1500-2699: as they are, and with the motor
current raised by 2.9 A (about 6 reference sd) from the first live row. Drift
reports every 200 rows over the last 200. The messages the agent queues for the
hub are read where they are made (``_message``), so the test sees the bodies the
hub would store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _tiny import (  # type: ignore[import-not-found]
    DEVICE,
    SITE,
    install_model,
    make_repository,
    settings,
    write_rows,
    write_settings,
)

from pumpops.edge import Agent, load_agent_config
from pumpops.edge._device import read_profile
from pumpops.edge._state import NORMAL_PERIOD_FILE
from pumpops.release._package import unit_pairs
from pumpops.schema import CANONICAL_SENSORS
from pumpops.sources import SkabCsvSource

W = 20
T0 = 1_800_000_000_000
CURRENT_COLUMN = 3  # the CSV's Current column (after the time)
OFFSET_A = 2.9


def _si(csv: Path) -> np.ndarray:
    """The CSV's rows in the model's SI units, in the profile's sensor order (as ``_tiny`` computes)."""
    profile = read_profile("skab-testbed")
    sensors = [(s.canonical, s.unit) for s in profile.sensors]
    pairs = [unit_pairs(name, CANONICAL_SENSORS[name].unit) for name, _ in sensors]
    raw = np.array(
        [[float(x) for x in line.split(";")[1:9]] for line in csv.read_text().splitlines()[1:]],
        dtype=np.float64,
    )
    return np.column_stack([raw[:, j] * pairs[j][u][0] + pairs[j][u][1] for j, (_, u) in enumerate(sensors)])


def _shifted(csv: Path, offset: float) -> Path:
    lines = csv.read_text().splitlines()
    out = [lines[0]]
    for line in lines[1:]:
        cells = line.split(";")
        cells[CURRENT_COLUMN] = repr(float(cells[CURRENT_COLUMN]) + offset)
        out.append(";".join(cells))
    path = csv.with_name(csv.stem + "-shifted.csv")
    path.write_text("\n".join(out) + "\n")
    return path


def _run(folder: Path, csv: Path, **extra: Any) -> tuple[Agent, list[dict[str, Any]]]:
    doc = settings(
        folder,
        csv,
        repository={"folder": str(folder / "repo"), "trusted_root": str(folder / "root.json")},
        clock="data",
        refresh_interval_s=3600.0,
        drift_window_rows=200,
        drift_report_rows=200,
        **extra,
    )
    config = load_agent_config(write_settings(folder / "agent.toml", doc))
    source = SkabCsvSource(
        csv, device_id=DEVICE, site=SITE, rebase_to_ms=T0, chunk_rows=50, profile=read_profile("skab-testbed")
    )
    agent = Agent(config, source=source)
    reports: list[dict[str, Any]] = []
    original = agent._message

    def message(kind: str, body: dict[str, Any]) -> None:
        if kind == "drift":
            reports.append(json.loads(json.dumps(body, allow_nan=False)))  # strict JSON, as sent
        original(kind, body)

    agent._message = message  # type: ignore[method-assign]
    assert agent.run() == 0
    return agent, reports


@pytest.fixture
def device(tmp_path: Path, skab_dir: Path) -> dict[str, Path]:
    normal = write_rows(skab_dir, tmp_path / "rows" / "normal.csv", range(1500))
    live = write_rows(skab_dir, tmp_path / "rows" / "live.csv", range(1500, 2700))
    make_repository(tmp_path)
    install_model(tmp_path, normal, window_rows=W)
    state = tmp_path / "state"
    with open(state / NORMAL_PERIOD_FILE, "wb") as fh:
        np.save(fh, _si(normal), allow_pickle=False)
    return {"folder": tmp_path, "live": live}


def test_a_shifted_sensor_is_named_in_the_drift_report_and_the_verdict(device: dict[str, Path]) -> None:
    agent, reports = _run(device["folder"], _shifted(device["live"], OFFSET_A))
    assert len(reports) >= 4
    assert reports[0]["hint"] == "new_shift"  # the first report names it, the next confirms it
    assert reports[0]["alert"] is False
    assert reports[0]["shifted"] == ["motor_current"]
    since = reports[0]["since_ms"]["motor_current"]
    assert T0 + 200_000 <= since <= T0 + 1_200_000  # the data clock's time of that first report, ms
    for report in reports[1:]:
        assert report["hint"] == "sensor_shift", report
        assert report["alert"] is True
        assert report["confirmed"] == ["motor_current"]
        assert report["shift"]["motor_current"]["shift"] == pytest.approx(OFFSET_A, rel=0.2)  # SI: ampere
        assert report["shift"]["motor_current"]["shift_sd"] > 3.0
        assert report["since_ms"] == {"motor_current": reports[0]["since_ms"]["motor_current"]}
        assert report["reference"] == "ready"
        assert set(report["shift"]) == {"motor_current"}  # compact: details only for what shifted
    assert agent.drift_status["status"] == "drift"
    assert agent.drift_status["drifted"] == ["motor_current"]
    assert agent.counts["drift_verdicts_drift"] == len(reports) - 1


def test_drift_confirm_s_holds_the_verdict_until_the_shift_has_stood_that_long(
    device: dict[str, Path],
) -> None:
    # SKAB rows come about a second apart and the data clock is theirs: a shift first reported
    # at row r is drift from about row r + 500 on (the unconfirmed reports stay new_shift).
    agent, reports = _run(device["folder"], _shifted(device["live"], OFFSET_A), drift_confirm_s=500.0)
    first = reports[0]["rows"]
    early = [r for r in reports if r["rows"] - first < 450]
    late = [r for r in reports if r["rows"] - first >= 550]
    seen = [(r["rows"], r["hint"]) for r in reports]
    assert len(early) >= 3, seen
    assert len(late) >= 2, seen
    for report in early:
        assert (report["hint"], report["alert"]) == ("new_shift", False), report
    for report in late:
        assert (report["hint"], report["alert"]) == ("sensor_shift", True), report
        assert report["confirmed"] == ["motor_current"]
    assert agent.drift_status["status"] == "drift"


def test_a_stationary_run_gives_no_drift_verdict(device: dict[str, Path]) -> None:
    agent, reports = _run(device["folder"], device["live"])
    assert len(reports) >= 4
    assert [r["alert"] for r in reports] == [False] * len(reports)
    assert all(r["hint"] in ("none", "new_shift") for r in reports)
    assert all(r["reference"] == "ready" for r in reports)
    assert agent.drift_status["status"] == "ok"
    assert "drift_verdicts_drift" not in agent.counts
