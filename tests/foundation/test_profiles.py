from __future__ import annotations

from pathlib import Path

import pytest

from pumpops.errors import ConfigError, NotFoundError
from pumpops.fleet import get_profile, load_profile, load_profiles

_SHIPPED_MAKES = ("acme-ansi", "nordhav-multistage", "sakura-esp")


def test_shipped_profiles_load_and_differ() -> None:
    profiles = load_profiles()
    assert set(_SHIPPED_MAKES) <= set(profiles)
    makes = [profiles[p] for p in _SHIPPED_MAKES]
    # The makes differ the way real fleets do: pressure units, rates and sensor sets.
    pressure_units = {m.sensor("discharge_pressure").unit for m in makes}  # type: ignore[union-attr]
    assert len(pressure_units) == 3
    assert len({m.sample_period_s for m in makes}) == 3
    assert len({frozenset(s.canonical for s in m.sensors) for m in makes}) == 3


def test_profile_sensor_lookup_by_native_or_canonical() -> None:
    acme = get_profile("acme-ansi")
    assert acme.sensor("DISCH_PRESS") is acme.sensor("discharge_pressure")
    assert acme.sensor("nope") is None


def test_get_profile_unknown_lists_known() -> None:
    with pytest.raises(NotFoundError, match="acme-ansi"):
        get_profile("acme")


_VALID = """
id = "x"
manufacturer = "X"
model = "X"
sample_period_s = 1.0
[pump]
rated_speed_rpm = 1450
rated_flow_m3h = 10
rated_head_m = 10
rated_power_kw = 1
supply_voltage_v = 400
efficiency = 0.6
"""


@pytest.mark.parametrize(
    ("sensors", "fragment"),
    [
        ('[[sensors]]\nnative = "P"\ncanonical = "pressure"\nunit = "bar"\n', "canonical sensor 'pressure'"),
        ('[[sensors]]\nnative = "P"\ncanonical = "discharge_pressure"\nunit = "degC"\n', "measures"),
        (
            '[[sensors]]\nnative = "P"\ncanonical = "discharge_pressure"\nunit = "bar"\nnoise_std = -1\n',
            "noise_std",
        ),
        (
            '[[sensors]]\nnative = "P"\ncanonical = "discharge_pressure"\nunit = "bar"\n'
            '[[sensors]]\nnative = "P"\ncanonical = "suction_pressure"\nunit = "bar"\n',
            "repeat",
        ),
    ],
)
def test_load_profile_rejects_invalid(tmp_path: Path, sensors: str, fragment: str) -> None:
    path = tmp_path / "x.toml"
    path.write_text(_VALID + sensors)
    with pytest.raises(ConfigError, match=fragment):
        load_profile(path)


def test_load_profiles_workspace_dir_adds_profile(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text(
        _VALID + '[[sensors]]\nnative = "P"\ncanonical = "discharge_pressure"\nunit = "bar"\n'
    )
    assert "x" in load_profiles([tmp_path])
    assert "x" not in load_profiles()
