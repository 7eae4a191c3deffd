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
    assert DriftPolicy(**settings.model_dump(exclude={"overlap_s"})) == DriftPolicy()
    assert settings.overlap_s == 30.0  # incremental monitoring's re-read of receipt time (issue 18)


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
        ("overlap_s = 0", "monitoring.overlap_s"),
        ("overlap_s = 'half a minute'", "monitoring.overlap_s"),
    ],
)
def test_monitoring_settings_out_of_bounds_name_the_key(tmp_path: Path, line: str, key: str) -> None:
    (tmp_path / "pumpops.toml").write_text(f"[monitoring]\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(tmp_path)


@pytest.mark.parametrize(("redate", "overlap"), [("30", "30"), ("40", "30"), ("10", "5")])
def test_a_redate_bound_not_below_the_overlap_is_refused_naming_both(
    tmp_path: Path, redate: str, overlap: str
) -> None:
    """A commit slower than the overlap would be missed by incremental monitoring: refused at load."""
    (tmp_path / "pumpops.toml").write_text(
        f"[ingest]\nredate_after_s = {redate}\n[monitoring]\noverlap_s = {overlap}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"ingest\.redate_after_s .* monitoring\.overlap_s"):
        load_settings(tmp_path)


def test_a_redate_bound_below_the_overlap_is_kept(tmp_path: Path) -> None:
    (tmp_path / "pumpops.toml").write_text(
        "[ingest]\nredate_after_s = 5\n[monitoring]\noverlap_s = 12\n", encoding="utf-8"
    )
    settings = load_settings(tmp_path)
    assert (settings.ingest.redate_after_s, settings.monitoring.overlap_s) == (5.0, 12.0)
