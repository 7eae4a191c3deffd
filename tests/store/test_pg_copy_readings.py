"""PostgreSQL's readings write path: COPY straight into ``readings``, staging only when a reading overlaps.

The COPY stream is built per (device id length, sensor name length); these
tests mix lengths (several groups in one call) and check every reading comes
back bit-exact, on the direct path and on the overlap fallback.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import pytest

from pumpops.fleet import Device
from pumpops.schema import ReadingBatch
from pumpops.store import open_store

pytestmark = pytest.mark.postgres

T0 = 1_700_000_000_000_000
DEVICES = ("p", "pump-0002", "a-much-longer-device-identifier-17")
SENSORS = ("flow", "motor_speed", "discharge_pressure", "vibration_accel_nde")


def _batch(device_id: str, msg_id: str, ts_us: np.ndarray, values: np.ndarray) -> ReadingBatch:
    digest = hashlib.sha256(repr((device_id, msg_id, ts_us.tolist(), values.tolist())).encode())
    return ReadingBatch(device_id, msg_id, digest.hexdigest(), ts_us, SENSORS, values, T0)


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_mixed_lengths_are_stored_exactly_and_an_overlap_falls_back_to_staging(
    store_url: Callable[[], str],
) -> None:
    store = open_store(store_url())
    try:
        store.upgrade()
        store.register_devices([Device(d, "site", "acme-ansi", "g") for d in DEVICES])
        rng = np.random.default_rng(7)
        ts = T0 + np.arange(5, dtype=np.int64) * 1_000_000
        first = []
        for d in DEVICES:
            values = rng.standard_normal((5, len(SENSORS))) * 1e3
            values[1, 2] = np.nan  # a missing cell is not a reading
            first.append(_batch(d, "m1", ts, values))
        outcomes = store.write_batches(first)
        assert [(o.status, o.readings_written, o.readings_overlapping) for o in outcomes] == [
            ("stored", 19, 0)
        ] * 3

        # Overlap: rows 3..4 stored before (under another message id) and 5..6 new, for every device.
        ts2 = T0 + np.arange(3, 7, dtype=np.int64) * 1_000_000
        second = [_batch(d, "m2", ts2, rng.standard_normal((4, len(SENSORS)))) for d in DEVICES]
        outcomes = store.write_batches(second)
        assert [(o.status, o.readings_written, o.readings_overlapping) for o in outcomes] == [
            ("stored", 8, 8)
        ] * 3
        assert all(len(o.conflicting) == 8 for o in outcomes)  # the values differ: first kept

        for b1, b2 in zip(first, second, strict=True):
            frame = store.query(b1.device_id, sensors=list(SENSORS))
            assert frame.ts_us.tolist() == (T0 + np.arange(7) * 1_000_000).tolist()
            np.testing.assert_array_equal(frame.values[:5], b1.values)  # bit-exact, NaN where missing
            np.testing.assert_array_equal(frame.values[5:], b2.values[2:])
        assert store.counts()["readings"] == 3 * (19 + 8)

        # A redelivery stores nothing.
        again = store.write_batches(second)
        assert [o.status for o in again] == ["duplicate"] * 3
        assert store.counts()["readings"] == 3 * (19 + 8)
    finally:
        store.close()
