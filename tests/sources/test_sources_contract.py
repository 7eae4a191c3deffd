"""One contract, every source: what any :class:`Source` must do (river's ``check_estimator`` idea).

Add a source to ``_FACTORIES`` and it runs through every check below. A source
here also exposes ``devices`` (the ``Device`` records it yields frames for).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from pumpops.fleet import load_profiles
from pumpops.schema import IDENT_PATTERN
from pumpops.sim import Scenario, build_fleet
from pumpops.sources import Frame, SimulatorSource, SkabCsvSource, Source

_START_MS = 1_748_736_000_000
_MAX_FRAMES = 400  # endless sources are checked on their first frames

_SMALL_SKAB = (
    "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;Thermocouple;Voltage;"
    "Volume Flow RateRMS;anomaly;changepoint\r\n"
    "2020-03-09 10:14:33;0.026;0.040;1.33;0.054;79.3;26.0;233.0;32.0;0.0;0.0\r\n"
    "2020-03-09 10:14:34;0.026;0.040;1.35;0.382;79.5;26.0;236.0;32.0;0.0;0.0\r\n"
    "2020-03-09 10:14:36;0.027;0.041;;0.380;79.5;26.1;235.0;31.0;1.0;1.0\r\n"
    "2020-03-09 10:14:37;0.027;0.041;1.30;nan;79.6;26.1;235.0;31.0;1.0;0.0\r\n"
)


def _simulator() -> Source:
    scenario = Scenario(devices=build_fleet(4, seed=2), start_ms=_START_MS, duration_s=900, seed=2)
    return SimulatorSource(scenario, chunk_s=60)


def _simulator_endless() -> Source:
    scenario = Scenario(devices=build_fleet(3, seed=9), start_ms=_START_MS, duration_s=None, seed=9)
    return SimulatorSource(scenario, chunk_s=7.5)


def _skab_small(tmp_path: Path) -> Source:
    folder = tmp_path / "skab"
    (folder / "valve9").mkdir(parents=True)
    (folder / "valve9" / "0.csv").write_text(_SMALL_SKAB, newline="")
    (folder / "valve9" / "1.csv").write_text(_SMALL_SKAB.replace("\r\n", "\n"), newline="")
    return SkabCsvSource(folder, chunk_rows=3)


def _skab_real_one_device(skab_dir: Path) -> Source:
    return SkabCsvSource(skab_dir, device_id="skab-1", rebase_to_ms=_START_MS, chunk_rows=500)


_FACTORIES: dict[str, Callable[[Path, Callable[[], Path]], Source]] = {
    "simulator": lambda tmp, skab: _simulator(),
    "simulator-endless": lambda tmp, skab: _simulator_endless(),
    "skab-small": lambda tmp, skab: _skab_small(tmp),
    "skab-real": lambda tmp, skab: _skab_real_one_device(skab()),
}


@pytest.fixture(params=sorted(_FACTORIES))
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Source:
    def skab() -> Path:
        return Path(request.getfixturevalue("skab_dir"))

    return _FACTORIES[request.param](tmp_path, skab)


def _take(source: Source) -> list[Frame]:
    return list(islice(source.frames(), _MAX_FRAMES))


def test_contract_frames_satisfy_the_frame_invariants(source: Source) -> None:
    frames = _take(source)
    assert frames, "a source must yield something"
    for frame in frames:
        m, n = frame.values.shape
        assert m >= 1
        assert frame.ts_ms.shape == (m,)
        assert frame.ts_ms.dtype == np.int64
        assert frame.values.dtype == np.float64
        assert n == len(frame.channels)
        assert (np.diff(frame.ts_ms) > 0).all()


def test_contract_time_increases_per_device_across_frames(source: Source) -> None:
    last: dict[str, int] = {}
    for frame in _take(source):
        if frame.device_id in last:
            assert frame.ts_ms[0] > last[frame.device_id], frame.device_id
        last[frame.device_id] = int(frame.ts_ms[-1])


def test_contract_deterministic_on_reiteration(source: Source) -> None:
    first, second = _take(source), _take(source)
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert (a.device_id, a.channels) == (b.device_id, b.channels)
        np.testing.assert_array_equal(a.ts_ms, b.ts_ms)
        np.testing.assert_array_equal(a.values, b.values)


def test_contract_channels_are_the_device_profile_natives(source: Source) -> None:
    profiles = load_profiles()
    devices = {d.device_id: d for d in source.devices}  # type: ignore[attr-defined]
    for frame in _take(source):
        device = devices[frame.device_id]
        profile = profiles[device.profile_id]
        assert [(c.name, c.unit) for c in frame.channels] == [(s.native, s.unit) for s in profile.sensors]


def test_contract_values_are_finite_or_nan(source: Source) -> None:
    for frame in _take(source):
        assert not np.isinf(frame.values).any()


def test_contract_device_ids_are_valid_identifiers(source: Source) -> None:
    for device in source.devices:  # type: ignore[attr-defined]
        assert re.fullmatch(IDENT_PATTERN, device.device_id)
        assert re.fullmatch(IDENT_PATTERN, device.site)
