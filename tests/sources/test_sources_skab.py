"""SKAB CSV replay: every real file, the README's counts, labels, time handling, and bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pumpops.errors import ConfigError, InputError, NotFoundError
from pumpops.fleet import get_profile
from pumpops.sources import SkabCsvSource, read_skab_csv, skab_files

_HEADER = (
    "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;Thermocouple;Voltage;"
    "Volume Flow RateRMS;anomaly;changepoint"
)
_ROWS = (
    "2020-03-09 10:14:33;0.026;0.040;1.33;0.054;79.3;26.0;233.0;32.0;0.0;0.0",
    "2020-03-09 10:14:34;0.026;0.040;1.35;0.382;79.5;26.0;236.0;32.0;0.0;0.0",
    "2020-03-09 10:14:35;0.027;0.041;1.31;0.380;79.5;26.1;235.0;31.0;1.0;1.0",
    "2020-03-09 10:14:36;0.027;0.041;1.30;0.379;79.6;26.1;235.0;31.0;1.0;0.0",
)
_EPOCH_10_14_33 = 1_583_748_873_000  # 2020-03-09T10:14:33Z


def _csv(rows: tuple[str, ...] = _ROWS, header: str = _HEADER, eol: str = "\r\n") -> str:
    return eol.join((header, *rows)) + eol


def _write(tmp_path: Path, text: str, name: str = "0.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("ascii", errors="surrogateescape"))
    return path


# --- the real data set ------------------------------------------------------


def test_skab_reads_every_file_in_the_folder(skab_dir: Path) -> None:
    files = skab_files(skab_dir)
    assert len(files) == len(list(skab_dir.rglob("*.csv")))
    source = SkabCsvSource(skab_dir)
    assert len(source.experiments) == len(files)
    rows = {t.experiment: t.n_rows for t in source.experiments}
    assert sum(f.values.shape[0] for f in source.frames()) == sum(rows.values())


def test_skab_row_counts_match_the_readme(skab_dir: Path) -> None:
    rows = {t.experiment: t.n_rows for t in SkabCsvSource(skab_dir).experiments}
    assert rows["valve1/0"] == 1147
    assert rows["anomaly-free/anomaly-free"] == 9405
    if {f"valve1/{i}" for i in range(16)} <= set(rows):
        assert sum(rows[f"valve1/{i}"] for i in range(16)) == 18_160


def test_skab_labels_match_the_readme(skab_dir: Path) -> None:
    source = SkabCsvSource(skab_dir)
    labels = {lab.experiment: lab for lab in source.labels()}
    assert labels["anomaly-free/anomaly-free"].anomaly is None
    valve = labels["valve1/0"]
    assert valve.anomaly is not None
    assert valve.changepoint is not None
    assert valve.ts_ms.shape == valve.anomaly.shape == valve.changepoint.shape
    # The protocol trains on the first 400 rows: they are label-free.
    assert not valve.anomaly[:400].any()
    # One contiguous block of anomalies per labelled file.
    starts = np.flatnonzero(np.diff(np.r_[0, valve.anomaly]) == 1)
    assert len(starts) == 1
    if len(labels) == 21:  # the copy described by the README
        assert sum(int(lab.anomaly.sum()) for lab in labels.values() if lab.anomaly is not None) == 7826
        assert sum(int(lab.changepoint.sum()) for lab in labels.values() if lab.changepoint is not None) == 79


def test_skab_frames_map_columns_to_the_skab_testbed_profile(skab_dir: Path) -> None:
    source = SkabCsvSource(skab_dir / "valve1" / "0.csv", chunk_rows=100)
    frames = list(source.frames())
    assert [f.values.shape[0] for f in frames] == [100] * 11 + [47]
    assert {f.device_id for f in frames} == {"skab-valve1-0"}
    profile = get_profile("skab-testbed")
    assert [c.name for c in frames[0].channels] == [s.native for s in profile.sensors]
    first = frames[0].values[0]
    # valve1/0.csv, first row: Accelerometer1RMS 0.0265878, Current 1.3302, Voltage 233.062.
    assert first[0] == pytest.approx(0.0265878)
    assert first[2] == pytest.approx(1.3302)
    assert first[6] == pytest.approx(233.062)


def test_skab_one_device_replays_files_back_to_back_from_the_rebase(skab_dir: Path) -> None:
    source = SkabCsvSource(skab_dir, device_id="skab-1", rebase_to_ms=1_000_000)
    assert [d.device_id for d in source.devices] == ["skab-1"]
    ts = np.concatenate([f.ts_ms for f in source.frames()])
    assert ts[0] == 1_000_000
    assert (np.diff(ts) > 0).all()
    labels = source.labels()
    assert np.array_equal(np.concatenate([lab.ts_ms for lab in labels]), ts)


# --- time handling on small files ------------------------------------------


def test_skab_datetime_is_utc_unless_an_offset_is_given(tmp_path: Path) -> None:
    path = _write(tmp_path, _csv())
    assert read_skab_csv(path).ts_ms[0] == _EPOCH_10_14_33
    assert read_skab_csv(path, utc_offset_s=3 * 3600).ts_ms[0] == _EPOCH_10_14_33 - 3 * 3600 * 1000


def test_skab_rebase_keeps_gaps_and_labels_aligned(tmp_path: Path) -> None:
    rows = (*_ROWS[:2], _ROWS[2].replace("10:14:35", "10:20:00"), _ROWS[3].replace("10:14:36", "10:20:01"))
    _write(tmp_path, _csv(rows))
    source = SkabCsvSource(tmp_path, rebase_to_ms=5_000)
    (frame,) = list(source.frames())
    assert frame.ts_ms.tolist() == [5_000, 6_000, 332_000, 333_000]
    (labels,) = source.labels()
    assert labels.ts_ms.tolist() == frame.ts_ms.tolist()
    assert labels.anomaly is not None
    assert labels.anomaly.tolist() == [0, 0, 1, 1]


def test_skab_lf_crlf_and_unlabelled_files_are_accepted(tmp_path: Path) -> None:
    unlabelled_header = _HEADER.removesuffix(";anomaly;changepoint")
    unlabelled = tuple(r.rsplit(";", 2)[0] for r in _ROWS)
    rig = tmp_path / "rig"
    rig.mkdir()
    _write(rig, _csv(eol="\n"), "lf.csv")
    _write(rig, _csv(unlabelled, unlabelled_header), "free.csv")
    source = SkabCsvSource(rig, device_id="bench-{experiment}")
    # Files directly in the folder are named with it: rig/lf, as they would be from its parent.
    assert sorted(d.device_id for d in source.devices) == ["bench-rig-free", "bench-rig-lf"]
    assert {lab.experiment: lab.anomaly is None for lab in source.labels()} == {
        "rig/free": True,
        "rig/lf": False,
    }
    from_parent = SkabCsvSource(tmp_path, device_id="bench-{experiment}")
    assert from_parent.devices == source.devices


def test_skab_folder_order_is_natural(tmp_path: Path) -> None:
    for name in ("10.csv", "2.csv", "1.csv"):
        _write(tmp_path, _csv(), name)
    assert [p.name for p in skab_files(tmp_path)] == ["1.csv", "2.csv", "10.csv"]


# --- bad input ---------------------------------------------------------------

_BAD_FILES = {
    "truncated-mid-row": (_csv()[:-30], 5, "no line break"),
    "truncated-mid-number": (_csv()[:-3], 5, "truncated"),
    "short-row": (_csv((_ROWS[0], _ROWS[1][:40], _ROWS[2])), 3, "expected 11 fields"),
    "empty-line": (_csv((_ROWS[0], "", _ROWS[1])), 3, "empty line"),
    "not-a-number": (_csv((_ROWS[0], _ROWS[1].replace("1.35", "1,35"))), 3, "not a number"),
    "infinite": (_csv((_ROWS[0], _ROWS[1].replace("1.35", "inf"))), 3, "infinite"),
    "bad-datetime": (
        _csv((_ROWS[0], _ROWS[1].replace("2020-03-09 10:14:34", "09.03.2020 10:14"))),
        3,
        "datetime",
    ),
    "impossible-date": (_csv((_ROWS[0], _ROWS[1].replace("2020-03-09", "2020-02-31"))), 3, "valid date"),
    "time-goes-back": (_csv((_ROWS[1], _ROWS[0])), 3, "does not come after"),
    "bad-label": (_csv((_ROWS[0], _ROWS[1].replace(";0.0;0.0", ";0.5;0.0"))), 3, "must be 0 or 1"),
    "missing-column": (_csv(header=_HEADER.replace("Current", "Curent")), 1, "missing column"),
    "no-datetime": (_csv(header=_HEADER.replace("datetime", "time")), 1, "datetime"),
    "repeated-column": (_csv(header=_HEADER.replace("Pressure", "Current")), 1, "repeat"),
    "header-only": (_HEADER + "\r\n", 2, "no data rows"),
    "empty": ("", 1, "empty"),
    "not-text": ("\udcff\udcfe" + _csv(), 1, "not UTF-8"),
}


@pytest.mark.parametrize("case", sorted(_BAD_FILES))
def test_skab_rejects_bad_file_naming_file_and_line(tmp_path: Path, case: str) -> None:
    text, line, reason = _BAD_FILES[case]
    path = _write(tmp_path, text, f"{case}.csv")
    with pytest.raises(InputError, match=reason) as info:
        SkabCsvSource(path)
    assert f"{path}:{line}:" in str(info.value)


def test_skab_one_bad_file_in_a_folder_rejects_the_folder(tmp_path: Path) -> None:
    _write(tmp_path, _csv(), "0.csv")
    _write(tmp_path, _csv()[:-5], "1.csv")
    with pytest.raises(InputError, match=r"1\.csv"):
        SkabCsvSource(tmp_path)


def test_skab_missing_path_or_empty_folder_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        SkabCsvSource(tmp_path / "nope")
    with pytest.raises(NotFoundError):
        SkabCsvSource(tmp_path)


@pytest.mark.parametrize("kwargs", [{"chunk_rows": 0}, {"device_id": "bad id with spaces"}])
def test_skab_rejects_bad_settings(tmp_path: Path, kwargs: dict[str, object]) -> None:
    _write(tmp_path, _csv())
    with pytest.raises(ConfigError):
        SkabCsvSource(tmp_path, **kwargs)  # type: ignore[arg-type]
