"""The ground-truth file: format, faults vs drift, intervals in ISO and epoch ms, the fleet."""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from pathlib import Path

import pytest
from _simhelpers import START_MS

from pumpops.errors import ConfigError
from pumpops.sim import (
    GROUND_TRUTH_FORMAT,
    DriftKind,
    FaultKind,
    FleetSimulator,
    Onset,
    Scenario,
    build_fleet,
    ground_truth,
    write_ground_truth,
)

_DAY_S = 86_400.0


def _busy_scenario(**kwargs: object) -> Scenario:
    options: dict[str, object] = {
        "start_ms": START_MS,
        "duration_s": 2 * _DAY_S,
        "seed": 3,
        "fault_rate_per_day": 3.0,
        "drift_rate_per_day": 4.0,
        **kwargs,
    }
    return Scenario(devices=build_fleet(12, seed=3), **options)  # type: ignore[arg-type]


def _iso_ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def test_ground_truth_file_has_fleet_and_every_interval(tmp_path: Path) -> None:
    scenario = _busy_scenario()
    path = write_ground_truth(tmp_path / "truth.json", scenario)
    doc = json.loads(path.read_text())
    assert doc["format"] == GROUND_TRUTH_FORMAT
    assert (doc["start_ms"], doc["end_ms"]) == (scenario.start_ms, scenario.end_ms)
    assert [d["device_id"] for d in doc["devices"]] == [d.device_id for d in scenario.devices]
    assert {d["profile"] for d in doc["devices"]} == {"acme-ansi", "nordhav-multistage", "sakura-esp"}
    assert all({"site", "group", "base_speed_ratio"} <= set(d) for d in doc["devices"])
    events = doc["events"]
    assert [e["start_ms"] for e in events] == sorted(e["start_ms"] for e in events)
    for e in events:
        assert _iso_ms(e["start"]) == e["start_ms"]
        assert _iso_ms(e["end"]) == e["end_ms"]
        assert e["start"].endswith("Z")
        assert scenario.start_ms <= e["start_ms"] < e["end_ms"] <= scenario.end_ms  # type: ignore[operator]
        assert e["onset"] in {"sudden", "gradual"}
        assert 0 < e["severity"] <= 1
        assert e["sensors"], e
        assert len(e["native_sensors"]) == len(e["sensors"])
    # Rates this high over two days produce every random kind (a season and a pump
    # replacement are only scheduled), and a file that is written twice is byte for
    # byte the same (no timestamps of the run inside).
    scheduled_only = {DriftKind.SEASONAL_AMBIENT, DriftKind.PUMP_REPLACEMENT}
    assert {e["kind"] for e in events} == {
        str(k) for k in (*FaultKind, *DriftKind) if k not in scheduled_only
    }
    again = write_ground_truth(tmp_path / "again.json", _busy_scenario())
    assert again.read_bytes() == path.read_bytes()


def test_ground_truth_categories_separate_faults_from_drift() -> None:
    doc = ground_truth(_busy_scenario())
    for e in doc["events"]:
        expected = "fault" if e["kind"] in {str(k) for k in FaultKind} else "drift"
        assert e["category"] == expected, e
    # Faults of one device never overlap: a new one starts after the last one ended.
    by_device: dict[str, list[tuple[int, int]]] = {}
    for e in doc["events"]:
        if e["category"] == "fault":
            by_device.setdefault(e["device_id"], []).append((e["start_ms"], e["end_ms"]))
    for intervals in by_device.values():
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(intervals))


def test_ground_truth_matches_the_events_the_simulator_applies() -> None:
    scenario = _busy_scenario(ambient=None)
    doc = ground_truth(scenario)
    sim = FleetSimulator(scenario)
    applied = sim.events()
    assert [(e.device_id, str(e.kind), e.start_ms) for e in applied if e.start_ms < scenario.end_ms] == [  # type: ignore[operator]
        (e["device_id"], e["kind"], e["start_ms"]) for e in doc["events"]
    ]
    trace = sim.device("p-0001").trace(START_MS, START_MS + 6 * 3600 * 1000)
    assert all(e.device_id == "p-0001" for e in trace.events)


def test_ground_truth_wear_is_gradual_and_clipped_at_the_window_end() -> None:
    scenario = _busy_scenario()
    doc = ground_truth(scenario, until_ms=START_MS + _DAY_S * 1000 // 2)
    for e in doc["events"]:
        if e["kind"] in ("bearing_wear", "impeller_wear"):
            assert e["onset"] == str(Onset.GRADUAL)
        assert e["end_ms"] <= doc["end_ms"]
    assert any(e["clipped"] for e in doc["events"])  # some event runs past the half-day cut


def test_ground_truth_endless_scenario_needs_an_end() -> None:
    scenario = _busy_scenario(duration_s=None)
    with pytest.raises(ConfigError, match="endless"):
        ground_truth(scenario)
    doc = ground_truth(scenario, until_ms=START_MS + 3_600_000)
    assert doc["end_ms"] == START_MS + 3_600_000


def test_ground_truth_unwritable_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot write"):
        write_ground_truth(tmp_path / "missing" / "truth.json", _busy_scenario(duration_s=60.0))
