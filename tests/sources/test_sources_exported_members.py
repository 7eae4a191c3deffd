"""Pins the public API of the simulator and the sources: a change here is a change users see."""

from __future__ import annotations

import importlib

import pytest

_PUBLIC = {
    "pumpops.sim": {
        "BLOCK_SAMPLES",
        "DEFAULT_SITES",
        "GROUND_TRUTH_FORMAT",
        "PROCESS_TUNING",
        "REPLAY_ONLY_PROFILES",
        "SIGNATURES",
        "AmbientModel",
        "DeviceSimulator",
        "DeviceTrace",
        "DriftKind",
        "Event",
        "FaultKind",
        "FleetSimulator",
        "Onset",
        "ProcessTuning",
        "PumpModel",
        "Scenario",
        "Signature",
        "SiteClimate",
        "affected_sensors",
        "build_fleet",
        "envelope",
        "ground_truth",
        "iso_utc",
        "to_epoch_ms",
        "write_ground_truth",
    },
    "pumpops.sources": {
        "LABEL_COLUMNS",
        "SKAB_PROFILE_ID",
        "Channel",
        "Frame",
        "SimulatorSource",
        "SkabCsvSource",
        "SkabLabels",
        "SkabTable",
        "Source",
        "read_skab_csv",
        "skab_files",
    },
}


@pytest.mark.parametrize("module_name", sorted(_PUBLIC))
def test_exported_members_of_sim_and_sources_are_pinned(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == _PUBLIC[module_name]
    for name in module.__all__:
        assert hasattr(module, name), name
