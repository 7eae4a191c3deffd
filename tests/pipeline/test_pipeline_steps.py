"""Snapshot bytes, the step cache, resampling and hygiene, metrics: the pieces, without a full run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pumpops.errors import IntegrityError
from pumpops.pipeline._cache import StepCache
from pumpops.pipeline._features import build_features, resample, settings_from
from pumpops.pipeline._metrics import event_delays, pointwise, summarise
from pumpops.pipeline._snapshot import Dataset, Recording, read_snapshot, snapshot_digest, write_snapshot

S = 1_000_000  # µs


def dataset(scale: float = 1.0) -> Dataset:
    rng = np.random.default_rng(0)
    ts = np.arange(600, dtype=np.int64) * S
    values = rng.normal(size=(600, 2)) * scale
    labels = np.zeros(600, dtype=np.int8)
    labels[300:350] = 1
    return Dataset(
        group="g",
        sensors=("motor_current", "motor_voltage"),
        recordings=(
            Recording("d1", "train", ts, values, labels),
            Recording("d1", "test", ts + 600 * S, values),
        ),
        meta={"source": "test"},
    )


def test_snapshot_same_data_same_digest_written_once(tmp_path: Path) -> None:
    digest, folder, written = write_snapshot(tmp_path, dataset())
    assert written
    assert folder.name == digest == snapshot_digest(dataset())
    again = write_snapshot(tmp_path, dataset())
    assert again == (digest, folder, False)
    assert snapshot_digest(dataset(2.0)) != digest
    back = read_snapshot(folder)
    assert back.sensors == ("motor_current", "motor_voltage")
    np.testing.assert_array_equal(back.recordings[0].values, dataset().recordings[0].values)
    assert back.recordings[1].anomaly is None


def test_snapshot_tampered_bytes_raise_integrity_error(tmp_path: Path) -> None:
    _, folder, _ = write_snapshot(tmp_path, dataset())
    raw = bytearray((folder / "data.bin").read_bytes())
    raw[10] ^= 1
    (folder / "data.bin").write_bytes(bytes(raw))
    with pytest.raises(IntegrityError):
        read_snapshot(folder)


def test_cache_same_inputs_computed_once(tmp_path: Path) -> None:
    calls = []

    def compute(folder: Path) -> None:
        calls.append(folder)
        (folder / "out.txt").write_text("x")

    cache = StepCache(tmp_path)
    first, key = cache.run("fit", {"a": 1}, compute)
    second, key2 = cache.run("fit", {"a": 1}, compute)
    third, _ = cache.run("fit", {"a": 2}, compute)
    assert (first, key) == (second, key2)
    assert third != first
    assert len(calls) == 2
    assert cache.events == [("fit", "computed"), ("fit", "cached"), ("fit", "computed")]


def test_cache_failed_step_leaves_no_entry(tmp_path: Path) -> None:
    def boom(folder: Path) -> None:
        (folder / "half.txt").write_text("x")
        raise RuntimeError("disk full")

    cache = StepCache(tmp_path)
    with pytest.raises(RuntimeError):
        cache.run("fit", {"a": 1}, boom)
    assert not any((tmp_path / "fit").iterdir())


def test_resample_fills_short_gaps_only() -> None:
    ts = np.array([0, 1, 2, 6, 7], dtype=np.int64) * S
    grid, x = resample(ts, np.arange(5.0)[:, None], S, 2)
    assert grid.tolist() == [i * S for i in range(8)]
    assert np.isnan(x[5, 0])
    assert x[3:5, 0].tolist() == [2.0, 2.0]


def test_features_exclude_labelled_rows_with_margin() -> None:
    fs = settings_from(1.0, 0.0, 10, 5.0, exclude_labelled=True)
    devices, totals = build_features(dataset(), fs, excluded={}, labels=None)
    assert totals["excluded_rows"] == 50 + 2 * 5
    assert devices[0].train.shape == (600 - 60, 2)
    assert devices[0].test_labels is None
    fs_keep = settings_from(1.0, 0.0, 10, 5.0, exclude_labelled=False)
    devices, totals = build_features(dataset(), fs_keep, excluded={"d1": [(0, 100 * S)]}, labels=None)
    assert totals["excluded_rows"] == 105  # [0, 100 s) plus 5 s of margin after it


def test_features_holdout_labels_from_intervals() -> None:
    fs = settings_from(1.0, 0.0, 10, 0.0, exclude_labelled=True)
    devices, _ = build_features(dataset(), fs, excluded={}, labels={"d1": [(700 * S, 720 * S)]})
    labels = devices[0].test_labels
    assert labels is not None
    assert int(labels.sum()) == 20


def test_metrics_pointwise_and_delay() -> None:
    y = np.array([0, 0, 1, 1, 1, 0, 1, 1])
    a = np.array([1, 0, 0, 1, 1, 0, 0, 0])
    m = pointwise(y, a)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 3, 2)
    assert m["far"] == pytest.approx(1 / 3)
    assert event_delays(y, a, np.arange(8) * S) == [1.0, None]
    s = summarise([(y, a, np.arange(8) * S)])
    assert (s["events"], s["events_missed"], s["mean_delay_s"]) == (2, 1, 1.0)
