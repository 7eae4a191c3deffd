"""The ``[monitoring]`` settings: defaults, the file, the environment, and bounds named in the error."""

from __future__ import annotations

from pathlib import Path

import pytest

from pumpops.errors import ConfigError
from pumpops.monitoring import DriftPolicy
from pumpops.settings import MonitoringSettings, load_settings


def test_monitoring_settings_defaults_match_the_drift_policy() -> None:
    settings = MonitoringSettings()
    assert (settings.window_s, settings.min_fraction, settings.min_devices) == (21600.0, 0.3, 2)
    assert DriftPolicy(**settings.model_dump()) == DriftPolicy()


def test_monitoring_settings_from_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pumpops.toml").write_text(
        "[monitoring]\nwindow_s = 3600\nmin_fraction = 0.5\n", encoding="utf-8"
    )
    monkeypatch.setenv("PUMPOPS_MONITORING__MIN_DEVICES", "3")
    settings = load_settings(tmp_path)
    assert (settings.monitoring.window_s, settings.monitoring.min_fraction) == (3600.0, 0.5)
    assert settings.monitoring.min_devices == 3


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("window_s = 0", "monitoring.window_s"),
        ("min_fraction = 1.5", "monitoring.min_fraction"),
        ("min_fraction = 0", "monitoring.min_fraction"),
        ("min_devices = 0", "monitoring.min_devices"),
        ("windows = 3", "monitoring.windows"),
    ],
)
def test_monitoring_settings_out_of_bounds_name_the_key(tmp_path: Path, line: str, key: str) -> None:
    (tmp_path / "pumpops.toml").write_text(f"[monitoring]\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(tmp_path)
