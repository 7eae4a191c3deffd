"""No blind minutes after a restart: the saved window and alarm state are restored when recent enough.

A real :class:`~pumpops.edge.Agent` (onnxruntime, slots, outbox, the update check
against an empty folder repository) replays SKAB rows 0-59; a second agent on the
same state folder continues with rows 60-99. Counting scores, not time: with the
window resumed, every row of the second run is scored and the scores are those of
one uninterrupted run; without it, the first ``window_rows - 1`` rows are not. (A
run's last reading stays in the resampler's open bin when it stops, so row 59 and
row 99 are never scored; the uninterrupted reference run leaves row 59 out too.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
from pumpops.edge._resume import RESUME_FILE
from pumpops.sources import SkabCsvSource

W = 20
T0 = 1_800_000_000_000  # the first run's first row, ms


def _agent(folder: Path, csv: Path, start_ms: int, scores: list[float], **agent: Any) -> Agent:
    root = folder / "root.json"
    doc = settings(
        folder, csv, repository={"folder": str(folder / "repo"), "trusted_root": str(root)}, **agent
    )
    config = load_agent_config(write_settings(folder / "agent.toml", doc))
    source = SkabCsvSource(
        csv,
        device_id=DEVICE,
        site=SITE,
        rebase_to_ms=start_ms,
        chunk_rows=1,
        profile=read_profile("skab-testbed"),
    )
    a = Agent(config, source=source)
    original = a._record_score

    def record(ts_ms: int, score: float, finite: bool, step: Any) -> None:
        scores.append(score)
        original(ts_ms, score, finite, step)

    a._record_score = record  # type: ignore[method-assign]
    return a


@pytest.fixture
def device(tmp_path: Path, skab_dir: Path) -> dict[str, Path]:
    reference = write_rows(skab_dir, tmp_path / "rows" / "reference.csv", [*range(59), *range(60, 100)])
    first = write_rows(skab_dir, tmp_path / "rows" / "first.csv", range(60))
    second = write_rows(skab_dir, tmp_path / "rows" / "second.csv", range(60, 100))
    make_repository(tmp_path)
    install_model(tmp_path, reference, window_rows=W)
    return {"folder": tmp_path, "reference": reference, "first": first, "second": second}


FIRST_SCORES = 59 - W + 1  # rows 0-58 reach the grid
SECOND_ROWS = 39  # rows 60-98 reach the grid


AGENT = {"clock": "data", "resume_max_age_s": 300.0, "refresh_interval_s": 3600.0}


def test_a_restart_resumes_the_window_and_scores_every_row(device: dict[str, Path], tmp_path: Path) -> None:
    # One uninterrupted run over the 100 rows, for comparison (its own state folder).
    ref_folder = tmp_path / "reference"
    ref_folder.mkdir()
    (ref_folder / "repo").symlink_to(tmp_path / "repo")
    (ref_folder / "root.json").write_bytes((tmp_path / "root.json").read_bytes())
    install_model(ref_folder, device["reference"], window_rows=W)
    uninterrupted: list[float] = []
    assert _agent(ref_folder, device["reference"], T0, uninterrupted, **AGENT).run() == 0
    assert len(uninterrupted) == FIRST_SCORES + SECOND_ROWS

    first: list[float] = []
    assert _agent(device["folder"], device["first"], T0, first, **AGENT).run() == 0
    assert len(first) == FIRST_SCORES
    saved = json.loads((device["folder"] / "state" / RESUME_FILE).read_bytes())
    assert len(saved["rows"]) == W
    assert saved["ts_ms"] == T0 + 58_000
    assert (device["folder"] / "state" / RESUME_FILE).stat().st_size < 8_000  # 20 rows x 8 sensors

    second: list[float] = []
    again = _agent(device["folder"], device["second"], T0 + 60_000, second, **AGENT)
    assert again.run() == 0
    assert len(second) == SECOND_ROWS  # every row of the second run is scored
    assert again.counts["windows_resumed"] == 1
    assert second == pytest.approx(uninterrupted[FIRST_SCORES:], rel=1e-12, abs=1e-12)


def test_a_window_older_than_the_setting_is_not_resumed(device: dict[str, Path]) -> None:
    assert _agent(device["folder"], device["first"], T0, [], **AGENT).run() == 0
    second: list[float] = []
    late = T0 + 60_000 + 301_000  # the first new row comes 5 min 2 s after the last saved one
    again = _agent(device["folder"], device["second"], late, second, **AGENT)
    state_at_start = again.state_body()
    assert again.run() == 0
    assert state_at_start["status"] == "warming_up"
    assert state_at_start["window_rows"] == [0, W]
    assert len(second) == SECOND_ROWS - W + 1
    assert "windows_resumed" not in again.counts


@pytest.mark.parametrize(
    "damage",
    [b"{not json", b'{"format": "pumpops.resume/1", "rows": [[1.0]]}', b'{"format": "other"}'],
)
def test_a_damaged_resume_file_is_ignored(device: dict[str, Path], damage: bytes) -> None:
    assert _agent(device["folder"], device["first"], T0, [], **AGENT).run() == 0
    (device["folder"] / "state" / RESUME_FILE).write_bytes(damage)
    second: list[float] = []
    assert _agent(device["folder"], device["second"], T0 + 60_000, second, **AGENT).run() == 0
    assert len(second) == SECOND_ROWS - W + 1


def test_resume_can_be_switched_off(device: dict[str, Path]) -> None:
    off = {**AGENT, "resume_max_age_s": 0.0}
    assert _agent(device["folder"], device["first"], T0, [], **off).run() == 0
    second: list[float] = []
    assert _agent(device["folder"], device["second"], T0 + 60_000, second, **off).run() == 0
    assert len(second) == SECOND_ROWS - W + 1


def test_an_alarm_on_before_the_restart_is_still_on_after_it(device: dict[str, Path], tmp_path: Path) -> None:
    # A threshold every score exceeds: the alarm is on from the first window and stays on.
    folder = tmp_path / "alarm"
    folder.mkdir()
    (folder / "repo").symlink_to(tmp_path / "repo")
    (folder / "root.json").write_bytes((tmp_path / "root.json").read_bytes())
    install_model(folder, device["reference"], window_rows=W, smoothing={"k": 2, "n": 3}, threshold=1e-9)
    first = _agent(folder, device["first"], T0, [], **AGENT)
    assert first.run() == 0
    assert first.counts["alarms_raised"] == 1
    again = _agent(folder, device["second"], T0 + 60_000, [], **AGENT)
    assert again.run() == 0
    assert again.counts["alarms_raised"] == 0  # not raised a second time: it never went off
    assert again.counts["windows_scored"] == SECOND_ROWS
