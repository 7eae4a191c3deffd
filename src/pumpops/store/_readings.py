"""Readings in the SQL store: idempotent batch writes and reads as arrays.

Owns :class:`SqlReadings` (a mixin of :class:`~pumpops.store._sql.SqlTelemetryStore`):
the rules of :meth:`~SqlReadings.write_batches` (what is a duplicate, an id
conflict, an overlap; with ``_plan.py``), :meth:`~SqlReadings.query` and
:meth:`~SqlReadings.query_minmax` (min and max per time bucket, in SQL). The
bulk paths are engine hooks: an engine module supplies ``_claim_messages``
and ``_insert_readings`` (and may replace ``_fetch_series``), not the rules.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pumpops.errors import InputError, NotFoundError
from pumpops.schema import ReadingBatch
from pumpops.store import _plan
from pumpops.store import _tables as tables
from pumpops.store._core import KEYS_PER_QUERY, SqlCore, at_least, build_select
from pumpops.store._devices import existing_devices
from pumpops.store._records import BatchOutcome, ReadingsFrame

_MAX_CONFLICTS = 10
_TS_VALUE = np.dtype([("ts_us", np.int64), ("value", np.float64)])

# The smallest sensor name of a device, then the next one after each: one index
# probe per distinct sensor ("loose index scan") instead of reading every row
# of the device, on both engines.
_DEVICE_SENSORS = sa.text(
    """
    WITH RECURSIVE s(sensor) AS (
        SELECT MIN(sensor) FROM readings WHERE device_id = :device_id
        UNION ALL
        SELECT (SELECT MIN(r.sensor) FROM readings r WHERE r.device_id = :device_id AND r.sensor > s.sensor)
        FROM s WHERE s.sensor IS NOT NULL
    )
    SELECT sensor FROM s WHERE sensor IS NOT NULL
    """
)


# Per time bucket of one sensor: the lowest and highest reading and the earliest
# instant of each. The bucket is an integer division (same on both engines), the
# formula of :func:`pumpops.web.minmax`: ``(ts - first) * buckets // (last + 1 - first)``.
_MINMAX = sa.text(
    """
    WITH b AS (
        SELECT ts_us, value, (ts_us - :first) * :buckets / :span AS k
        FROM readings
        WHERE device_id = :device_id AND sensor = :sensor AND ts_us >= :first AND ts_us <= :last
    ), m AS (
        SELECT k, MIN(value) AS lo, MAX(value) AS hi FROM b GROUP BY k
    )
    SELECT COUNT(*), MIN(CASE WHEN b.value = m.lo THEN b.ts_us END), m.lo,
           MIN(CASE WHEN b.value = m.hi THEN b.ts_us END), m.hi
    FROM b JOIN m ON b.k = m.k
    GROUP BY b.k, m.lo, m.hi
    ORDER BY b.k
    """
)

# The same points in one pass on PostgreSQL (3x faster than the join above,
# measured): the smallest ``[value, ts]`` array is the minimum at its earliest
# instant, the largest ``[value, -ts]`` the maximum at its earliest instant.
# ``ts_us`` as float8 is exact below 2**53 µs (year 2255).
_MINMAX_POSTGRES = sa.text(
    """
    SELECT COUNT(*), MIN(ARRAY[value, ts_us::float8]), MAX(ARRAY[value, -ts_us::float8])
    FROM readings
    WHERE device_id = :device_id AND sensor = :sensor AND ts_us >= :first AND ts_us <= :last
    GROUP BY (ts_us - :first) * :buckets / :span
    ORDER BY (ts_us - :first) * :buckets / :span
    """
)

#: Per sensor of :meth:`SqlReadings.query_minmax`: ``(sensor, ts_us, values, readings)``.
MinMaxSeries = tuple[str, np.ndarray, np.ndarray, int]


class SqlReadings(SqlCore):
    """:class:`~pumpops.store.ReadingStore` on SQL, with the engines' bulk paths as hooks."""

    # -- engine hooks -------------------------------------------------------------------------

    @abc.abstractmethod
    def _claim_messages(
        self, conn: Connection, batches: Sequence[ReadingBatch]
    ) -> dict[_plan.Key, str | None]:
        """Insert ledger rows for batches whose key is not stored yet.

        Args:
            conn: the write transaction.
            batches: batches with distinct keys.

        Returns:
            For every key: ``None`` if its row was inserted now, else the
            payload hash already stored (possibly by a concurrent writer).
        """

    @abc.abstractmethod
    def _insert_readings(self, conn: Connection, batches: Sequence[ReadingBatch]) -> list[tuple[int, int]]:
        """Insert the non-NaN readings of new batches, keeping stored ones.

        Returns:
            ``(written, overlapping)`` per batch: readings newly stored, and
            readings skipped because their key was already stored or came
            earlier in the same call.
        """

    def _fetch_series(
        self, conn: Connection, device_id: str, sensor: str, since_us: int | None, until_us: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(ts_us, values)`` of one sensor of a device, sorted by time."""
        t = tables.readings.c
        stmt = build_select(
            [t.ts_us, t.value],
            where=[
                t.device_id == device_id,
                t.sensor == sensor,
                at_least(t.ts_us, since_us),
                None if until_us is None else t.ts_us < until_us,
            ],
            order_by=[t.ts_us],
        )
        # The driver's own rows straight into one array: on SQLite, SQLAlchemy's Row objects were
        # half to three quarters of a training run's load step (benchmarks/store_read.py).
        # PostgreSQL overrides this with a binary COPY.
        result = conn.execute(stmt)
        try:
            pairs = np.fromiter(cast("Iterable[tuple[int, float]]", result.cursor), dtype=_TS_VALUE)
        finally:
            result.close()
        return pairs["ts_us"].copy(), pairs["value"].copy()

    @staticmethod
    def _minmax_buckets(
        conn: Connection, device_id: str, sensor: str, *, first: int, last: int, points: int
    ) -> tuple[int, np.ndarray, np.ndarray]:
        """``(readings, ts_us, values)``: min and max per bucket of a sensor's readings in ``[first, last]``.

        Buckets and ties as :func:`pumpops.web.minmax`; ``readings``: how many were in the range.
        """
        params = {"device_id": device_id, "sensor": sensor, "first": first, "last": last}
        params |= {"buckets": points // 2, "span": last + 1 - first}
        if conn.dialect.name == "postgresql":
            rows = [
                (n, lo_ts, lo, -hi_neg_ts, hi)
                for n, (lo, lo_ts), (hi, hi_neg_ts) in conn.execute(_MINMAX_POSTGRES, params)
            ]
        else:
            rows = list(conn.execute(_MINMAX, params))
        pairs = [
            point
            for _, lo_ts, lo, hi_ts, hi in rows
            for point in sorted({(int(lo_ts), float(lo)), (int(hi_ts), float(hi))})
        ]
        ts = np.array([p[0] for p in pairs], dtype=np.int64)
        values = np.array([p[1] for p in pairs], dtype=np.float64)
        return sum(int(row[0]) for row in rows), ts, values

    # -- writes -------------------------------------------------------------------------------

    def write_batches(self, batches: Sequence[ReadingBatch]) -> list[BatchOutcome]:
        """Store batches idempotently in one transaction; one outcome per batch, in order.

        For each batch, by its ``(device_id, msg_id)``: not seen before →
        ``stored`` (ledger row and its non-NaN readings); seen with the same
        payload hash → ``duplicate``; seen with another hash → ``id_conflict``;
        nothing is written for the last two. Batches repeated within the call
        are judged as if written one after the other. A reading whose
        ``(device, sensor, ts)`` is already stored keeps its first value and is
        counted in ``readings_overlapping``; up to 10 of those whose values
        differ are reported in ``conflicting``.

        Raises:
            InputError: a batch is malformed (shapes, lengths, repeated sensors).
            NotFoundError: a batch's device is not registered; nothing was stored.
            StoreError: the database failed; nothing of the call was stored.
        """
        if not batches:
            return []
        for batch in batches:
            _plan.check_batch(batch)
        firsts = [batches[i] for i in _plan.first_occurrences(batches)]
        with self._guard("write telemetry to"), self._writer.begin() as conn:
            wanted = {b.device_id for b in firsts}
            missing = wanted - existing_devices(conn, wanted)
            if missing:
                raise NotFoundError(
                    f"devices not registered: {', '.join(sorted(missing))}; register them first "
                    "(pumpops devices register)"
                )
            claimed = self._claim_messages(conn, firsts)
            statuses = _plan.classify(batches, claimed)
            new = [b for b, status in zip(batches, statuses, strict=True) if status == "stored"]
            counts = iter(self._insert_readings(conn, new) if new else [])
            outcomes = []
            for batch, status in zip(batches, statuses, strict=True):
                if status != "stored":
                    outcomes.append(BatchOutcome(batch.device_id, batch.msg_id, status))
                    continue
                written, overlapping = next(counts)
                conflicting = self._conflicts(conn, batch) if overlapping else ()
                outcomes.append(
                    BatchOutcome(batch.device_id, batch.msg_id, status, written, overlapping, conflicting)
                )
        return outcomes

    @staticmethod
    def stored_hashes(conn: Connection, keys: Sequence[_plan.Key]) -> dict[_plan.Key, str]:
        """Return the payload hash stored for each of ``keys`` that is in the ledger."""
        t = tables.messages.c
        found: dict[_plan.Key, str] = {}
        pair = sa.tuple_(t.device_id, t.msg_id)
        for start in range(0, len(keys), KEYS_PER_QUERY):
            chunk = list(keys[start : start + KEYS_PER_QUERY])
            stmt = build_select([t.device_id, t.msg_id, t.payload_sha256], where=[pair.in_(chunk)])
            for device_id, msg_id, digest in conn.execute(stmt):
                found[(device_id, msg_id)] = digest
        return found

    @staticmethod
    def ledger_row(batch: ReadingBatch) -> dict[str, Any]:
        """The ``messages`` row of a batch."""
        return {
            "device_id": batch.device_id,
            "msg_id": batch.msg_id,
            "payload_sha256": batch.payload_sha256,
            "received_at_us": int(batch.received_at_us),
            "readings": batch.n_readings,
        }

    @staticmethod
    def _conflicts(conn: Connection, batch: ReadingBatch) -> tuple[tuple[str, int, float, float], ...]:
        """Compare a batch with what is stored now (first values kept); return differing readings."""
        cols, ts, _ = _plan.batch_readings(batch)
        if not ts.size:
            return ()
        names = sorted({batch.sensors[c] for c in set(cols.tolist())})
        t = tables.readings.c
        stmt = build_select(
            [t.sensor, t.ts_us, t.value],
            where=[
                t.device_id == batch.device_id,
                t.sensor.in_(names),
                t.ts_us.between(int(ts.min()), int(ts.max())),
            ],
        )
        stored = {(sensor, ts_us): value for sensor, ts_us, value in conn.execute(stmt)}
        return _plan.find_conflicts(batch, stored, _MAX_CONFLICTS)

    # -- reads --------------------------------------------------------------------------------

    def query(
        self,
        device_id: str,
        *,
        sensors: Sequence[str] | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> ReadingsFrame:
        """Return a device's readings in ``[since_us, until_us)`` as arrays.

        Args:
            device_id: a registered device.
            sensors: the columns wanted, in this order (a column without
                readings is all NaN); default: every sensor with readings in
                the interval, in canonical order.
            since_us: first instant included, microseconds since the epoch (UTC).
            until_us: first instant excluded.

        Raises:
            InputError: ``sensors`` repeats a name.
            NotFoundError: the device is not registered.
            StoreError: the database failed.
        """
        if sensors is not None and len(set(sensors)) != len(sensors):
            raise InputError(f"sensors repeat: {list(sensors)}")
        with self._snapshot("query telemetry from") as conn:
            found = conn.scalar(
                build_select([tables.devices.c.device_id], where=[tables.devices.c.device_id == device_id])
            )
            if found is None:
                raise NotFoundError(f"device {device_id!r} is not registered")
            if sensors is None:
                names = _plan.sensor_order(list(conn.scalars(_DEVICE_SENSORS, {"device_id": device_id})))
            else:
                names = list(sensors)
            series = [self._fetch_series(conn, device_id, name, since_us, until_us) for name in names]
        if sensors is None:
            present = [i for i, (ts, _) in enumerate(series) if ts.size]
            names = [names[i] for i in present]
            series = [series[i] for i in present]
        ts_all, values = _plan.pivot(series)
        if not series:
            values = np.zeros((0, len(names)), dtype=np.float64)
        return ReadingsFrame(device_id=device_id, ts_us=ts_all, sensors=tuple(names), values=values)

    def query_minmax(
        self,
        device_id: str,
        *,
        sensors: Sequence[str] | None = None,
        since_us: int,
        until_us: int,
        points: int,
    ) -> list[MinMaxSeries]:
        """Each sensor's readings in ``[since_us, until_us)`` cut to ``points``: min and max per time bucket.

        The database does the work (one grouped query per sensor), not Python:
        a sensor with more than ``points`` readings is split into ``points // 2``
        equal buckets between its first and last reading, and each bucket's
        lowest and highest reading (earliest on ties) are kept in time order, so
        a one-reading spike still shows. Same points as
        :func:`pumpops.web.minmax` on the rows of :meth:`query`.

        Returns:
            ``(sensor, ts_us, values, readings)`` per sensor (``readings``: how
            many were in the range), in the order of ``sensors``; default: every
            sensor with readings in the range, in canonical order.

        Raises:
            InputError: ``points`` is below 2, the range is empty or reversed, or ``sensors`` repeats a name.
            NotFoundError: the device is not registered.
            StoreError: the database failed.
        """
        if points < 2:
            raise InputError(f"points: at least 2 (a bucket's min and max), got {points}")
        if until_us <= since_us:
            raise InputError(f"time range: 'until' ({until_us} µs) must be after 'since' ({since_us} µs)")
        if sensors is not None and len(set(sensors)) != len(sensors):
            raise InputError(f"sensors repeat: {list(sensors)}")
        t = tables.readings.c
        result: list[MinMaxSeries] = []
        with self._snapshot("query telemetry from") as conn:
            found = conn.scalar(
                build_select([tables.devices.c.device_id], where=[tables.devices.c.device_id == device_id])
            )
            if found is None:
                raise NotFoundError(f"device {device_id!r} is not registered")
            if sensors is None:
                names = _plan.sensor_order(list(conn.scalars(_DEVICE_SENSORS, {"device_id": device_id})))
            else:
                names = list(sensors)
            for name in names:
                # Two index probes (PostgreSQL and SQLite answer MIN/MAX alone from the index).
                first, last = conn.execute(
                    build_select(
                        [sa.func.min(t.ts_us), sa.func.max(t.ts_us)],
                        where=[
                            t.device_id == device_id,
                            t.sensor == name,
                            t.ts_us >= since_us,
                            t.ts_us < until_us,
                        ],
                    )
                ).one()
                if first is None:
                    if sensors is not None:
                        result.append((name, np.zeros(0, np.int64), np.zeros(0, np.float64), 0))
                    continue
                count, ts, values = self._minmax_buckets(
                    conn, device_id, name, first=first, last=last, points=points
                )
                if count <= points:  # as few readings as points: all of them
                    ts, values = self._fetch_series(conn, device_id, name, since_us, until_us)
                result.append((name, ts, values, count))
        return result
