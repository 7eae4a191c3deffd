"""The window buffer: oldest-first windows of the last rows, NaN rows refused, bounded cost."""

from __future__ import annotations

import numpy as np
import pytest

from pumpops.edge import WindowBuffer
from pumpops.errors import ConfigError, InputError


def _rows(n: int, s: int) -> np.ndarray:
    return np.arange(n * s, dtype=np.float64).reshape(n, s)


def test_window_not_ready_until_full() -> None:
    buf = WindowBuffer(n_sensors=3, window_rows=4)
    rows = _rows(4, 3)
    for i in range(3):
        buf.push(rows[i])
        assert not buf.ready
        assert buf.rows_seen == i + 1
    with pytest.raises(InputError, match="3 of 4 rows"):
        buf.window()
    buf.push(rows[3])
    assert buf.ready
    np.testing.assert_array_equal(buf.window(), rows)


@pytest.mark.parametrize("n_rows", [4, 5, 7, 8, 9, 23])
def test_window_is_last_rows_oldest_first(n_rows: int) -> None:
    buf = WindowBuffer(n_sensors=2, window_rows=4)
    rows = _rows(n_rows, 2)
    for row in rows:
        buf.push(row)
    got = buf.window()
    assert got.shape == (4, 2)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, rows[-4:])
    assert buf.rows_seen == n_rows


def test_window_returns_a_copy() -> None:
    buf = WindowBuffer(n_sensors=2, window_rows=2)
    for row in _rows(2, 2):
        buf.push(row)
    first = buf.window()
    first[:] = -1.0
    np.testing.assert_array_equal(buf.window(), _rows(2, 2))
    buf.push(np.array([100.0, 101.0]))
    np.testing.assert_array_equal(first, -1.0)


def test_window_of_one_row() -> None:
    buf = WindowBuffer(n_sensors=1, window_rows=1)
    buf.push(np.array([5.0]))
    buf.push(np.array([6.0]))
    np.testing.assert_array_equal(buf.window(), [[6.0]])


@pytest.mark.parametrize(
    ("row", "indexes"),
    [([np.nan, 1.0, 2.0], "[0]"), ([1.0, np.nan, np.nan], "[1, 2]"), ([1.0, np.inf, 2.0], "[1]")],
)
def test_window_refuses_nan_row_naming_sensors(row: list[float], indexes: str) -> None:
    buf = WindowBuffer(n_sensors=3, window_rows=2)
    buf.push(np.array([1.0, 2.0, 3.0]))
    with pytest.raises(InputError, match=rf"index\(es\) \{indexes}"):
        buf.push(np.array(row))
    assert buf.rows_seen == 1
    buf.push(np.array([4.0, 5.0, 6.0]))
    np.testing.assert_array_equal(buf.window(), [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


@pytest.mark.parametrize("row", [np.zeros(2), np.zeros((1, 3)), np.array(["a", "b", "c"])])
def test_window_refuses_wrong_shape_or_type(row: np.ndarray) -> None:
    buf = WindowBuffer(n_sensors=3, window_rows=2)
    with pytest.raises(InputError):
        buf.push(row)
    assert buf.rows_seen == 0


def test_window_clear_forgets_rows() -> None:
    buf = WindowBuffer(n_sensors=2, window_rows=3)
    for row in _rows(5, 2):
        buf.push(row)
    buf.clear()
    assert not buf.ready
    assert buf.rows_seen == 0
    for row in _rows(3, 2) + 50.0:
        buf.push(row)
    np.testing.assert_array_equal(buf.window(), _rows(3, 2) + 50.0)


@pytest.mark.parametrize(("n_sensors", "window_rows"), [(0, 5), (3, 0)])
def test_window_rejects_empty_shape(n_sensors: int, window_rows: int) -> None:
    with pytest.raises(ConfigError):
        WindowBuffer(n_sensors=n_sensors, window_rows=window_rows)


def test_window_matches_pipeline_windows() -> None:
    """The buffer's windows are the pipeline's ONNX input rows once the warm-up is over."""
    detectors = pytest.importorskip("pumpops.pipeline.detectors")
    detector = detectors.build_detector("pca_t2q", sensors=["motor_current", "flow_rate"], window=6)
    x = np.random.default_rng(1).normal(size=(40, 2))
    expected = detector.windows(x)
    buf = WindowBuffer(n_sensors=2, window_rows=detector.input_length)
    for i, row in enumerate(x):
        buf.push(row)
        if buf.ready:
            np.testing.assert_array_equal(buf.window(), expected[i])
