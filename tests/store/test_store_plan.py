"""The store's pure decisions (``_plan``), without a database."""

from __future__ import annotations

import numpy as np
import pytest

from pumpops.schema import ReadingBatch
from pumpops.store._plan import classify, find_conflicts, pivot, sensor_order, stage_readings


def batch(
    msg_id: str, digest: str = "a", *, device: str = "d", ts: list[int] | None = None, values: object = None
) -> ReadingBatch:
    ts_arr = np.array(ts if ts is not None else [0], dtype=np.int64)
    matrix = np.asarray(values if values is not None else np.ones((ts_arr.size, 1)), dtype=np.float64)
    return ReadingBatch(device, msg_id, digest * 64, ts_arr, ("x", "y")[: matrix.shape[1]], matrix, 0)


# Scenario table: (batches as (msg_id, digest)), what the ledger holds before, expected statuses.
CLASSIFY_SCENARIOS = {
    "new": ([("m", "a")], {}, ["stored"]),
    "redelivery": ([("m", "a")], {"m": "a"}, ["duplicate"]),
    "reused id": ([("m", "b")], {"m": "a"}, ["id_conflict"]),
    "copy in call": ([("m", "a"), ("m", "a")], {}, ["stored", "duplicate"]),
    "reuse in call": ([("m", "a"), ("m", "b"), ("m", "a")], {}, ["stored", "id_conflict", "duplicate"]),
    "stored then copies": (
        [("m", "b"), ("m", "b"), ("m", "a")],
        {"m": "a"},
        ["id_conflict"] * 2 + ["duplicate"],
    ),
    "independent ids": ([("m", "a"), ("n", "a")], {"n": "a"}, ["stored", "duplicate"]),
}


@pytest.mark.parametrize(
    ("sent", "stored", "expected"), CLASSIFY_SCENARIOS.values(), ids=CLASSIFY_SCENARIOS.keys()
)
def test_classify_scenarios(sent: list[tuple[str, str]], stored: dict[str, str], expected: list[str]) -> None:
    batches = [batch(msg, digest) for msg, digest in sent]
    claimed: dict[tuple[str, str], str | None] = {("d", msg): None for msg, _ in sent}
    claimed.update({("d", msg): digest * 64 for msg, digest in stored.items()})
    assert classify(batches, claimed) == expected


def test_stage_readings_sorted_by_key_first_kept_and_repeats_counted() -> None:
    a = batch("m1", device="d2", ts=[5, 1, 1], values=[[1.0, np.nan], [2.0, 20.0], [3.0, 30.0]])
    b = batch("m2", device="d1", ts=[1], values=[[9.0, 90.0]])
    c = batch("m3", device="d2", ts=[5, 6], values=[[7.0, np.nan], [8.0, 80.0]])
    staged = stage_readings([a, b, c])
    assert staged.devices == ("d2", "d1", "d2")
    assert staged.sensors == ("x", "y")
    rows = list(
        zip(
            [staged.devices[i] for i in staged.batch],
            [staged.sensors[i] for i in staged.sensor],
            staged.ts_us.tolist(),
            staged.value.tolist(),
            strict=True,
        )
    )
    assert rows == [
        ("d1", "x", 1, 9.0),
        ("d1", "y", 1, 90.0),
        ("d2", "x", 1, 2.0),  # ts 1 repeated within batch a: its first row wins
        ("d2", "x", 5, 1.0),  # batch c's ts 5 comes later in the call
        ("d2", "x", 6, 8.0),
        ("d2", "y", 1, 20.0),
        ("d2", "y", 6, 80.0),
    ]
    assert staged.staged_per_batch.tolist() == [3, 2, 2]
    assert staged.repeated_per_batch.tolist() == [2, 0, 1]
    assert staged.batch.dtype == np.int32
    assert staged.sensor.dtype == np.int16


def test_stage_readings_all_nan_stages_nothing() -> None:
    staged = stage_readings([batch("m1", values=[[np.nan]])])
    assert staged.ts_us.size == 0
    assert staged.staged_per_batch.tolist() == [0]


def test_find_conflicts_ignores_equal_and_missing_values() -> None:
    b = batch("m", ts=[1, 2, 3], values=[[1.0], [2.0], [3.0]])
    assert find_conflicts(b, {("x", 1): 1.0, ("x", 2): 2.5}) == (("x", 2, 2.5, 2.0),)
    assert find_conflicts(b, {("x", t): 0.0 for t in (1, 2, 3)}, limit=2) == (
        ("x", 1, 0.0, 1.0),
        ("x", 2, 0.0, 2.0),
    )


def test_sensor_order_and_pivot_of_nothing() -> None:
    assert sensor_order(["flow_rate", "suction_pressure"]) == ["suction_pressure", "flow_rate"]
    ts, values = pivot([])
    assert ts.shape == (0,)
    assert values.shape == (0, 0)
