"""``query_minmax``: min and max per time bucket computed in SQL, equal to the numpy reference.

The reference is :func:`pumpops.web.minmax` applied to the rows of ``query``
(what the telemetry endpoint did before the database did the work). Run on
SQLite and PostgreSQL (own schema per test, see ``conftest.py``).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from pumpops.errors import InputError, NotFoundError
from pumpops.schema import ReadingBatch
from pumpops.store import TelemetryStore
from pumpops.web import minmax

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds
SECOND = 1_000_000


def _write(store: TelemetryStore, msg_id: str, ts_us: np.ndarray, columns: dict[str, np.ndarray]) -> None:
    sensors = tuple(columns)
    matrix = np.column_stack([columns[s] for s in sensors]).astype(np.float64)
    digest = hashlib.sha256(repr((msg_id, ts_us.tolist(), matrix.tolist())).encode()).hexdigest()
    batch = ReadingBatch("p-1", msg_id, digest, ts_us.astype(np.int64), sensors, matrix, T0)
    assert store.write_batches([batch])[0].status == "stored"


def _reference(
    store: TelemetryStore, since_us: int, until_us: int, points: int, sensors: list[str] | None = None
) -> list[tuple[str, list[int], list[float], int]]:
    frame = store.query("p-1", sensors=sensors, since_us=since_us, until_us=until_us)
    out = []
    for index, sensor in enumerate(frame.sensors):
        column = frame.values[:, index]
        ts, kept = minmax(frame.ts_us, column, points)
        out.append((sensor, ts.tolist(), kept.tolist(), int(np.count_nonzero(~np.isnan(column)))))
    return out


def _sql(
    store: TelemetryStore, since_us: int, until_us: int, points: int, sensors: list[str] | None = None
) -> list[tuple[str, list[int], list[float], int]]:
    rows = store.query_minmax("p-1", sensors=sensors, since_us=since_us, until_us=until_us, points=points)
    return [(name, ts.tolist(), values.tolist(), count) for name, ts, values, count in rows]


def test_minmax_single_reading_spike_survives_and_matches_numpy(store: TelemetryStore) -> None:
    n = 10_000
    ts = T0 + np.arange(n, dtype=np.int64) * SECOND
    speed = np.full(n, 100.0)
    speed[4_321] = 900.0  # one-reading spike
    speed[7_000] = 1.0  # one-reading dip
    _write(store, "m1", ts, {"motor_speed": speed})
    got = _sql(store, T0, T0 + n * SECOND, 200)
    assert got == _reference(store, T0, T0 + n * SECOND, 200)
    name, kept_ts, kept, count = got[0]
    assert (name, count) == ("motor_speed", n)
    assert len(kept) <= 200
    assert 900.0 in kept
    assert 1.0 in kept
    assert kept_ts[kept.index(900.0)] == int(ts[4_321])
    assert kept_ts == sorted(kept_ts)


def test_minmax_random_walk_two_sensors_matches_numpy_at_several_budgets(store: TelemetryStore) -> None:
    rng = np.random.default_rng(17)
    n = 5_003  # not a multiple of any budget: uneven bucket edges
    ts = T0 + np.cumsum(rng.integers(1, 3 * SECOND, n)).astype(np.int64)
    columns = {
        "motor_speed": np.cumsum(rng.normal(0, 1, n)) + 500,
        "flow_rate": np.round(rng.normal(0, 1, n), 1),  # many ties inside a bucket
    }
    _write(store, "m1", ts, columns)
    until = int(ts[-1]) + 1
    for points in (2, 3, 7, 100, 1_001, 5_002, 5_003, 10_000):
        assert _sql(store, T0, until, points) == _reference(store, T0, until, points), points
    # A sub-range whose edges fall between readings.
    since, until = int(ts[100]) + 1, int(ts[4_000])
    assert _sql(store, since, until, 333) == _reference(store, since, until, 333)


def test_minmax_bucket_edges_reading_on_an_edge_goes_to_the_later_bucket(store: TelemetryStore) -> None:
    ts = T0 + np.arange(10, dtype=np.int64)
    values = np.array([0, 5, 1, 1, 9, 1, 1, -3, 1, 1], dtype=float)
    _write(store, "m1", ts, {"motor_speed": values})
    got = _sql(store, T0, T0 + 10, 4)
    assert got == [("motor_speed", [T0 + 0, T0 + 4, T0 + 5, T0 + 7], [0.0, 9.0, 1.0, -3.0], 10)]
    assert got == _reference(store, T0, T0 + 10, 4)


def test_minmax_empty_range_and_missing_sensor(store: TelemetryStore) -> None:
    ts = T0 + np.arange(50, dtype=np.int64) * SECOND
    _write(store, "m1", ts, {"motor_speed": np.arange(50.0), "flow_rate": np.full(50, np.nan)})
    later = T0 + 3_600 * SECOND
    assert _sql(store, later, later + SECOND, 10) == [] == _reference(store, later, later + SECOND, 10)
    named = ["motor_speed", "suction_pressure"]  # the second has no reading at all
    got = _sql(store, T0, T0 + 50 * SECOND, 10, named)
    assert got == _reference(store, T0, T0 + 50 * SECOND, 10, named)
    assert got[1] == ("suction_pressure", [], [], 0)
    # Default sensors: only those with readings in the range (flow_rate was all NaN, so none stored).
    assert [s for s, *_ in _sql(store, T0, T0 + 50 * SECOND, 10)] == ["motor_speed"]


def test_minmax_fewer_readings_than_points_are_returned_as_they_are(store: TelemetryStore) -> None:
    ts = T0 + np.arange(5, dtype=np.int64) * SECOND
    _write(store, "m1", ts, {"motor_speed": np.array([3.0, 1.0, 4.0, 1.0, 5.0])})
    assert _sql(store, T0, T0 + 5 * SECOND, 5) == [("motor_speed", ts.tolist(), [3.0, 1.0, 4.0, 1.0, 5.0], 5)]


@pytest.mark.parametrize(
    ("since", "until", "points", "reason"),
    [
        (T0, T0 + SECOND, 0, "points"),
        (T0, T0 + SECOND, -5, "points"),
        (T0, T0 + SECOND, 1, "points"),
        (T0 + SECOND, T0, 10, "until"),
        (T0, T0, 10, "until"),
    ],
    ids=["zero-points", "negative-points", "one-point", "reversed", "empty"],
)
def test_minmax_bad_input_is_refused_with_a_reason(
    store: TelemetryStore, since: int, until: int, points: int, reason: str
) -> None:
    with pytest.raises(InputError, match=reason):
        store.query_minmax("p-1", since_us=since, until_us=until, points=points)


def test_minmax_repeated_sensor_and_unknown_device_are_refused(store: TelemetryStore) -> None:
    with pytest.raises(InputError, match="repeat"):
        store.query_minmax("p-1", sensors=["motor_speed"] * 2, since_us=T0, until_us=T0 + 1, points=10)
    with pytest.raises(NotFoundError, match="not registered"):
        store.query_minmax("p-404", since_us=T0, until_us=T0 + 1, points=10)
    # A sensor name crafted as SQL is a bound parameter: nothing found, nothing run.
    crafted = "x' OR '1'='1"
    ((name, ts, values, count),) = store.query_minmax(
        "p-1", sensors=[crafted], since_us=T0, until_us=T0 + 1, points=10
    )
    assert (name, ts.tolist(), values.tolist(), count) == (crafted, [], [], 0)
