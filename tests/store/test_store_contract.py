"""The store contract: every test runs on SQLite and on PostgreSQL (see ``conftest.py``)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import cast

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pumpops.errors import InputError, NotFoundError, StoreError
from pumpops.fleet import Device
from pumpops.schema import DeadLetter, ReadingBatch, convert
from pumpops.store import BatchOutcome, TelemetryStore, open_store
from pumpops.store._partitions import is_partition_name
from pumpops.store._sql import SqlTelemetryStore
from pumpops.store._tables import METADATA

StoreFactory = Callable[[], TelemetryStore]

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds
SECOND = 1_000_000


def make_batch(
    msg_id: str,
    ts_s: list[float],
    values: dict[str, list[float]],
    *,
    device_id: str = "p-1",
    received_at_us: int = T0,
    salt: str = "",
) -> ReadingBatch:
    """A batch whose payload hash is derived from its content (and ``salt``)."""
    sensors = tuple(values)
    matrix = np.array([values[s] for s in sensors], dtype=np.float64).T.reshape(len(ts_s), len(sensors))
    ts_us = T0 + np.round(np.asarray(ts_s, dtype=np.float64) * SECOND).astype(np.int64)
    digest = hashlib.sha256(
        repr((device_id, msg_id, ts_us.tolist(), sensors, matrix.tolist(), salt)).encode()
    )
    return ReadingBatch(device_id, msg_id, digest.hexdigest(), ts_us, sensors, matrix, received_at_us)


def sql_store(store: TelemetryStore) -> SqlTelemetryStore:
    return cast(SqlTelemetryStore, store)


# -- schema ----------------------------------------------------------------------------------------


def test_upgrade_repeated_is_idempotent(store: TelemetryStore) -> None:
    store.write_batches([make_batch("m1", [0], {"motor_speed": [150.0]})])
    before = store.counts()
    store.upgrade()
    store.upgrade()
    assert store.counts() == before
    assert sql_store(store).current_revision() == SqlTelemetryStore.head_revision() == "0010"


def test_upgrade_migrated_schema_matches_table_metadata(store: TelemetryStore) -> None:
    with sql_store(store)._engine.connect() as conn:
        # Partitions (PostgreSQL, revision 0009) are tables of their own, not in the metadata.
        context = MigrationContext.configure(
            conn,
            opts={"include_name": lambda name, kind, _parent: kind != "table" or not is_partition_name(name)},
        )
        diff = compare_metadata(context, METADATA)
    assert diff == []


def test_upgrade_concurrent_from_two_stores_both_succeed(store_url: Callable[[], str]) -> None:
    # Several hub processes may start at once on a fresh database.
    url = store_url()
    stores = [open_store(url), open_store(url)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def upgrade(store: TelemetryStore) -> None:
        barrier.wait()
        try:
            store.upgrade()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=upgrade, args=(s,)) for s in stores]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        assert sql_store(stores[1]).current_revision() == "0010"
    finally:
        for store in stores:
            store.close()


def test_store_without_schema_raises_store_error_naming_upgrade(store_url: Callable[[], str]) -> None:
    with open_store(store_url()) as fresh:
        with pytest.raises(StoreError, match="pumpops db upgrade"):
            fresh.counts()
        assert sql_store(fresh).current_revision() is None


# -- devices ---------------------------------------------------------------------------------------


def test_register_devices_counts_new_and_updates_existing(store: TelemetryStore) -> None:
    assert [d.device_id for d in store.devices()] == ["p-1", "p-2"]
    new = store.register_devices(
        [Device("p-1", "site-z", "nordhav-multistage", "g9"), Device("a-0", "site-a", "acme-ansi", "g1")]
    )
    assert new == 1
    assert [d.device_id for d in store.devices()] == ["a-0", "p-1", "p-2"]
    assert store.device("p-1") == Device("p-1", "site-z", "nordhav-multistage", "g9")
    assert store.device("nope") is None
    assert store.counts()["devices"] == 3


def test_register_devices_same_id_twice_in_one_call_last_wins(store: TelemetryStore) -> None:
    assert (
        store.register_devices([Device("x-1", "s1", "acme-ansi", "g"), Device("x-1", "s2", "acme-ansi", "g")])
        == 1
    )
    assert store.device("x-1") == Device("x-1", "s2", "acme-ansi", "g")


@pytest.mark.parametrize(
    "device",
    [
        Device("has space", "s", "acme-ansi", "g"),
        Device("ok", "", "acme-ansi", "g"),
        Device("ok", "s", "p", "g/h"),
    ],
)
def test_register_devices_invalid_identifier_is_input_error(store: TelemetryStore, device: Device) -> None:
    with pytest.raises(InputError):
        store.register_devices([device])
    assert store.device("ok") is None


# -- writing and reading telemetry ------------------------------------------------------------------


def test_write_then_query_round_trips_si_values_with_nan_gaps(store: TelemetryStore) -> None:
    # Native readings of an ACME pump (psi, °F, US gpm) converted to SI, as ingest does.
    pressure_pa = convert(np.array([94.5, 95.25, 96.0]), "psi", "Pa")
    bearing_k = convert(np.array([149.0, 150.5, np.nan]), "degF", "K")
    flow_m3s = convert(np.array([np.nan, 410.0, 412.5]), "gallon/minute", "m**3/s")
    batch = make_batch(
        "m1",
        [0, 1, 2],
        {
            "discharge_pressure": pressure_pa.tolist(),
            "bearing_temperature": bearing_k.tolist(),
            "flow_rate": flow_m3s.tolist(),
        },
    )
    [outcome] = store.write_batches([batch])
    assert (outcome.status, outcome.readings_written, outcome.readings_overlapping) == ("stored", 7, 0)

    frame = store.query("p-1")
    assert frame.device_id == "p-1"
    assert frame.sensors == ("discharge_pressure", "flow_rate", "bearing_temperature")  # canonical order
    assert frame.ts_us.dtype == np.int64
    assert frame.ts_us.tolist() == [T0, T0 + SECOND, T0 + 2 * SECOND]
    assert frame.values.dtype == np.float64
    assert frame.values.shape == (3, 3)
    expected = np.column_stack([pressure_pa, flow_m3s, bearing_k])
    np.testing.assert_array_equal(frame.values, expected)  # bit-exact, NaN where no reading
    assert frame.values[0, 0] == pytest.approx(651_554.56, rel=1e-7)  # 94.5 psi in Pa
    assert store.counts() == {"devices": 2, "messages": 1, "readings": 7, "dead_letters": 0}


def test_write_extreme_float_values_round_trip_exactly(store: TelemetryStore) -> None:
    values = [5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308, 0.1 + 0.2]
    store.write_batches([make_batch("m1", list(range(len(values))), {"motor_power": values})])
    frame = store.query("p-1", sensors=["motor_power"])
    assert frame.values[:, 0].tolist() == values


def test_write_redelivered_batch_is_duplicate_and_stored_once(store: TelemetryStore) -> None:
    batch = make_batch("m1", [0, 1], {"motor_speed": [150.0, 151.0]})
    assert store.write_batches([batch])[0].status == "stored"
    [again] = store.write_batches([batch])
    assert (again.status, again.readings_written, again.readings_overlapping) == ("duplicate", 0, 0)
    assert store.counts()["messages"] == 1
    assert store.counts()["readings"] == 2


def test_write_same_msg_id_with_other_payload_is_id_conflict(store: TelemetryStore) -> None:
    store.write_batches([make_batch("m1", [0], {"motor_speed": [150.0]})])
    [outcome] = store.write_batches([make_batch("m1", [5], {"motor_speed": [99.0]})])
    assert outcome.status == "id_conflict"
    assert outcome.readings_written == 0
    assert store.query("p-1").ts_us.tolist() == [T0]
    assert store.counts()["readings"] == 1


def test_write_same_msg_id_on_other_device_is_a_new_message(store: TelemetryStore) -> None:
    store.write_batches([make_batch("m1", [0], {"motor_speed": [150.0]}, device_id="p-1")])
    [outcome] = store.write_batches([make_batch("m1", [0], {"motor_speed": [150.0]}, device_id="p-2")])
    assert outcome.status == "stored"
    assert store.counts()["readings"] == 2


def test_write_overlapping_readings_keep_first_value_and_report_conflicts(store: TelemetryStore) -> None:
    store.write_batches([make_batch("m1", [0, 1, 2], {"motor_speed": [150.0, 151.0, 152.0]})])
    # Another message carrying two of the same instants (one value differs) and a new one.
    [outcome] = store.write_batches([make_batch("m2", [1, 2, 3], {"motor_speed": [151.0, 999.0, 153.0]})])
    assert outcome.status == "stored"
    assert (outcome.readings_written, outcome.readings_overlapping) == (1, 2)
    assert outcome.conflicting == (("motor_speed", T0 + 2 * SECOND, 152.0, 999.0),)
    assert store.query("p-1").values[:, 0].tolist() == [150.0, 151.0, 152.0, 153.0]


def test_write_overlap_reports_at_most_ten_conflicts(store: TelemetryStore) -> None:
    ts = list(range(25))
    store.write_batches([make_batch("m1", ts, {"motor_current": [float(t) for t in ts]})])
    [outcome] = store.write_batches([make_batch("m2", ts, {"motor_current": [t + 0.5 for t in ts]})])
    assert (outcome.readings_written, outcome.readings_overlapping) == (0, 25)
    assert len(outcome.conflicting) == 10
    assert outcome.conflicting[0] == ("motor_current", T0, 0.0, 0.5)


def test_write_overlap_with_equal_values_reports_no_conflict(store: TelemetryStore) -> None:
    store.write_batches([make_batch("m1", [0, 1], {"motor_speed": [150.0, 151.0]})])
    [outcome] = store.write_batches(
        [make_batch("m2", [0, 1], {"motor_speed": [150.0, 151.0]}, salt="resent")]
    )
    assert (outcome.status, outcome.readings_written, outcome.readings_overlapping) == ("stored", 0, 2)
    assert outcome.conflicting == ()


def test_write_two_copies_in_one_call_stores_once(store: TelemetryStore) -> None:
    batch = make_batch("m1", [0, 1], {"motor_speed": [150.0, 151.0]})
    outcomes = store.write_batches([batch, batch])
    assert [o.status for o in outcomes] == ["stored", "duplicate"]
    assert outcomes[0].readings_written == 2
    assert store.counts()["readings"] == 2
    assert store.counts()["messages"] == 1


def test_write_same_id_other_payload_in_one_call_is_id_conflict(store: TelemetryStore) -> None:
    first = make_batch("m1", [0], {"motor_speed": [150.0]})
    other = make_batch("m1", [9], {"motor_speed": [1.0]})
    outcomes = store.write_batches([first, other, first])
    assert [o.status for o in outcomes] == ["stored", "id_conflict", "duplicate"]
    assert store.query("p-1").ts_us.tolist() == [T0]


def test_write_stored_id_repeated_in_one_call_judged_against_stored_hash(store: TelemetryStore) -> None:
    stored = make_batch("m1", [0], {"motor_speed": [150.0]})
    store.write_batches([stored])
    other = make_batch("m1", [9], {"motor_speed": [1.0]})
    assert [o.status for o in store.write_batches([other, other, stored])] == [
        "id_conflict",
        "id_conflict",
        "duplicate",
    ]


def test_write_overlapping_batches_in_one_call_keep_the_earlier(store: TelemetryStore) -> None:
    a = make_batch("m1", [0, 1], {"motor_speed": [150.0, 151.0]})
    b = make_batch("m2", [1, 2], {"motor_speed": [777.0, 152.0]})
    c = make_batch("m3", [0], {"motor_speed": [150.0]}, device_id="p-2")
    out_a, out_b, out_c = store.write_batches([a, b, c])
    assert (out_a.readings_written, out_a.readings_overlapping) == (2, 0)
    assert (out_b.readings_written, out_b.readings_overlapping) == (1, 1)
    assert out_b.conflicting == (("motor_speed", T0 + SECOND, 151.0, 777.0),)
    assert (out_c.readings_written, out_c.readings_overlapping) == (1, 0)
    assert store.query("p-1").values[:, 0].tolist() == [150.0, 151.0, 152.0]


def test_write_repeated_timestamp_within_batch_keeps_first(store: TelemetryStore) -> None:
    [outcome] = store.write_batches([make_batch("m1", [0, 0, 1], {"motor_speed": [150.0, 160.0, 151.0]})])
    assert (outcome.readings_written, outcome.readings_overlapping) == (2, 1)
    assert outcome.conflicting == (("motor_speed", T0, 150.0, 160.0),)
    assert store.query("p-1").values[:, 0].tolist() == [150.0, 151.0]


def test_write_batch_of_only_nan_is_stored_without_readings(store: TelemetryStore) -> None:
    [outcome] = store.write_batches([make_batch("m1", [0, 1], {"motor_speed": [np.nan, np.nan]})])
    assert (outcome.status, outcome.readings_written) == ("stored", 0)
    assert store.counts()["messages"] == 1
    assert store.counts()["readings"] == 0
    assert (
        store.write_batches([make_batch("m1", [0, 1], {"motor_speed": [np.nan, np.nan]})])[0].status
        == "duplicate"
    )


def test_write_empty_list_returns_no_outcomes(store: TelemetryStore) -> None:
    assert store.write_batches([]) == []


def test_write_unregistered_device_is_not_found_and_writes_nothing(store: TelemetryStore) -> None:
    good = make_batch("m1", [0], {"motor_speed": [150.0]})
    stranger = make_batch("m1", [0], {"motor_speed": [150.0]}, device_id="ghost-7")
    with pytest.raises(NotFoundError, match="ghost-7"):
        store.write_batches([good, stranger])
    assert store.counts()["messages"] == 0
    assert store.write_batches([good])[0].status == "stored"


@pytest.mark.parametrize(
    "broken",
    [
        ReadingBatch("p-1", "m1", "0" * 64, np.array([1, 2]), ("a",), np.zeros((3, 1)), 0),
        ReadingBatch("p-1", "m1", "0" * 64, np.array([1]), ("a", "a"), np.zeros((1, 2)), 0),
        ReadingBatch("p-1", "m1", "not-a-hash", np.array([1]), ("a",), np.zeros((1, 1)), 0),
        ReadingBatch("p-1", "m" * 129, "0" * 64, np.array([1]), ("a",), np.zeros((1, 1)), 0),
        ReadingBatch("p-1", "m1", "0" * 64, np.array([1.5]), ("a",), np.zeros((1, 1)), 0),
    ],
    ids=["shape", "repeated-sensor", "hash", "long-msg-id", "float-ts"],
)
def test_write_malformed_batch_is_input_error(store: TelemetryStore, broken: ReadingBatch) -> None:
    with pytest.raises(InputError):
        store.write_batches([make_batch("m0", [0], {"motor_speed": [1.0]}), broken])
    assert store.counts()["messages"] == 0


def test_write_failure_mid_transaction_leaves_nothing_written(store: TelemetryStore) -> None:
    engine = sql_store(store)._engine
    store.write_batches([make_batch("m0", [0], {"motor_speed": [1.0]})])
    before = store.counts()
    # The ledger insert succeeds, then the readings insert fails: a real database error mid-transaction.
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE readings RENAME TO readings_hidden")
    try:
        with pytest.raises(StoreError):
            store.write_batches([make_batch("m1", [1], {"motor_speed": [2.0]})])
    finally:
        store.close()  # PostgreSQL: pooled connections cache plans of the old table
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE readings_hidden RENAME TO readings")
    assert store.counts() == before
    [outcome] = store.write_batches([make_batch("m1", [1], {"motor_speed": [2.0]})])
    assert (outcome.status, outcome.readings_written) == ("stored", 1)


def test_query_bounds_are_half_open_and_sensor_filter_orders_columns(store: TelemetryStore) -> None:
    store.write_batches(
        [
            make_batch(
                "m1",
                [0, 1, 2, 3],
                {"motor_speed": [1.0, 2.0, 3.0, 4.0], "motor_current": [10.0, np.nan, 30.0, 40.0]},
            )
        ]
    )
    frame = store.query(
        "p-1", sensors=["motor_current", "motor_speed"], since_us=T0 + SECOND, until_us=T0 + 3 * SECOND
    )
    assert frame.sensors == ("motor_current", "motor_speed")
    assert frame.ts_us.tolist() == [T0 + SECOND, T0 + 2 * SECOND]
    np.testing.assert_array_equal(frame.values, [[np.nan, 2.0], [30.0, 3.0]])

    only_current = store.query("p-1", sensors=["motor_current"], since_us=T0 + SECOND)
    assert only_current.ts_us.tolist() == [T0 + 2 * SECOND, T0 + 3 * SECOND]  # no row where it has no reading

    with_absent = store.query("p-1", sensors=["flow_rate", "motor_speed"], until_us=T0 + SECOND)
    assert with_absent.sensors == ("flow_rate", "motor_speed")
    np.testing.assert_array_equal(with_absent.values, [[np.nan, 1.0]])

    default = store.query("p-1", since_us=T0 + SECOND, until_us=T0 + 2 * SECOND)
    assert default.sensors == ("motor_speed",)  # only sensors with readings in the interval


def test_query_other_device_readings_are_not_mixed_in(store: TelemetryStore) -> None:
    store.write_batches(
        [
            make_batch("m1", [0], {"motor_speed": [1.0]}, device_id="p-1"),
            make_batch("m1", [0, 5], {"motor_speed": [2.0, 3.0], "flow_rate": [0.1, 0.2]}, device_id="p-2"),
        ]
    )
    frame = store.query("p-1")
    assert frame.sensors == ("motor_speed",)
    assert frame.values.tolist() == [[1.0]]


def test_query_registered_device_without_readings_is_empty(store: TelemetryStore) -> None:
    frame = store.query("p-2")
    assert frame.ts_us.shape == (0,)
    assert frame.sensors == ()
    assert frame.values.shape == (0, 0)
    named = store.query("p-2", sensors=["motor_speed", "flow_rate"])
    assert named.values.shape == (0, 2)


def test_query_unknown_device_is_not_found(store: TelemetryStore) -> None:
    with pytest.raises(NotFoundError, match="ghost"):
        store.query("ghost")


def test_query_repeated_sensor_is_input_error(store: TelemetryStore) -> None:
    with pytest.raises(InputError):
        store.query("p-1", sensors=["motor_speed", "motor_speed"])


# -- dead letters ----------------------------------------------------------------------------------


def test_dead_letters_keep_raw_bytes_and_filter_by_reason(store: TelemetryStore) -> None:
    binary = b"\xff\xfe\x00\x80not utf-8 \x00\x01" + bytes(range(256))
    letters = [
        DeadLetter(
            "pumpops/v1/s/p-1/telemetry", b'{"schema": 1', "malformed_json", "line 1", T0, "p-1", None
        ),
        DeadLetter("pumpops/v1/s/x/telemetry", binary, "malformed_json", "not UTF-8", T0 + 2),
        DeadLetter("bad/topic", b"", "bad_topic", "topic has 2 levels, not 5", T0 + 1, None, "m-9"),
    ]
    store.write_dead_letters(letters)
    store.write_dead_letters(letters[:1])  # never deduplicated
    assert store.counts()["dead_letters"] == 4

    newest_first = store.dead_letters()
    assert [d.received_at_us for d in newest_first] == [T0 + 2, T0 + 1, T0, T0]
    assert newest_first[0] == letters[1]
    assert newest_first[0].payload == binary
    assert newest_first[1] == letters[2]
    assert store.dead_letters(reason="bad_topic") == [letters[2]]
    assert store.dead_letters(reason="malformed_json", limit=1) == [letters[1]]
    assert store.dead_letters(reason="nothing_like_it") == []
    assert store.dead_letters(limit=0) == []
    with pytest.raises(InputError):
        store.dead_letters(limit=-1)


def test_dead_letters_text_fields_with_nul_and_surrogates_are_stored_escaped(store: TelemetryStore) -> None:
    raw = b"dev\x00\xff"
    garbled = raw.decode("utf-8", "surrogateescape")
    store.write_dead_letters(
        [DeadLetter(f"t/{garbled}", raw, "bad_topic", f"got {garbled}", T0, garbled, None)]
    )
    [letter] = store.dead_letters()
    assert letter.payload == raw
    assert letter.device_id == "dev\\x00\\udcff"
    assert letter.topic == "t/dev\\x00\\udcff"


def test_write_dead_letters_empty_list_writes_nothing(store: TelemetryStore) -> None:
    store.write_dead_letters([])
    assert store.counts()["dead_letters"] == 0


# -- the idempotency property ----------------------------------------------------------------------

DEVICES = ("p-1", "p-2")
SENSORS = ("motor_speed", "motor_current", "flow_rate", "bearing_temperature")


@st.composite
def batch_lists(draw: st.DrawFn) -> list[ReadingBatch]:
    """Batches of two devices with overlapping times; a key always has the same content.

    A reading's value depends only on its ``(device, sensor, ts)``, so the
    stored state cannot depend on which overlapping message arrived first;
    a ``(device, msg_id)`` drawn twice is the same message (a redelivery).
    """
    table = draw(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=6))
    by_key: dict[tuple[str, str], ReadingBatch] = {}
    batches = []
    for _ in range(draw(st.integers(1, 6))):
        device = draw(st.sampled_from(DEVICES))
        msg_id = f"m{draw(st.integers(0, 4))}"
        if (device, msg_id) not in by_key:
            ts = draw(st.lists(st.integers(0, 12), min_size=1, max_size=5))
            sensors = tuple(draw(st.lists(st.sampled_from(SENSORS), min_size=1, max_size=4, unique=True)))
            mask = draw(
                st.lists(st.booleans(), min_size=len(ts) * len(sensors), max_size=len(ts) * len(sensors))
            )
            values = np.array(
                [
                    [
                        table[(DEVICES.index(device) * 7 + SENSORS.index(s) * 3 + t) % len(table)]
                        for s in sensors
                    ]
                    for t in ts
                ],
                dtype=np.float64,
            )
            values[np.array(mask, dtype=bool).reshape(values.shape)] = np.nan
            digest = hashlib.sha256(repr((device, msg_id, ts, sensors, mask)).encode()).hexdigest()
            by_key[(device, msg_id)] = ReadingBatch(
                device, msg_id, digest, T0 + np.array(ts, dtype=np.int64) * SECOND, sensors, values, T0
            )
        batches.append(by_key[(device, msg_id)])
    return batches


def _snapshot(
    store: TelemetryStore,
) -> tuple[dict[str, int], list[tuple[list[int], tuple[str, ...], np.ndarray]]]:
    frames = [store.query(device) for device in DEVICES]
    return store.counts(), [(f.ts_us.tolist(), f.sensors, f.values) for f in frames]


# Each example opens two fresh stores from the function-scoped factory, so
# state is never shared between examples.
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=batch_lists(), data=st.data())
def test_write_batches_twice_in_any_order_equals_once(
    make_store: StoreFactory, batches: list[ReadingBatch], data: st.DataObject
) -> None:
    devices = [Device(d, "site-a", "acme-ansi", "g") for d in DEVICES]
    once, twice = make_store(), make_store()
    try:
        for target in (once, twice):
            target.register_devices(devices)
        outcomes = once.write_batches(batches)
        distinct = {(b.device_id, b.msg_id) for b in batches}
        assert sum(o.status == "stored" for o in outcomes) == len(distinct)
        assert all(o.status != "id_conflict" for o in outcomes)

        redelivered = data.draw(st.permutations(batches + batches))
        cuts = sorted(data.draw(st.sets(st.integers(1, len(redelivered) - 1), max_size=3)))
        stored = 0
        for start, stop in zip([0, *cuts], [*cuts, len(redelivered)], strict=True):
            stored += sum(o.status == "stored" for o in twice.write_batches(redelivered[start:stop]))
        assert stored == len(distinct)

        counts_once, frames_once = _snapshot(once)
        counts_twice, frames_twice = _snapshot(twice)
        assert counts_once == counts_twice
        assert counts_once["readings"] == sum(int(np.count_nonzero(~np.isnan(f[2]))) for f in frames_once)
        for (ts_a, sensors_a, values_a), (ts_b, sensors_b, values_b) in zip(
            frames_once, frames_twice, strict=True
        ):
            assert ts_a == ts_b
            assert sensors_a == sensors_b
            np.testing.assert_array_equal(values_a, values_b)
    finally:
        once.close()
        twice.close()


@pytest.mark.parametrize("other_ids", [False, True], ids=["same-messages", "same-readings-other-ids"])
def test_write_concurrent_writers_store_each_reading_once(
    store_url: Callable[[], str], other_ids: bool
) -> None:
    # Two writers (two ingest workers) get the same data in opposite orders at
    # the same moment: either the very same messages (a redelivery to another
    # worker) or the same readings under other message ids. Neither may fail
    # (no unique violation, no deadlock) nor store anything twice.
    url = store_url()
    first, second = open_store(url), open_store(url)
    try:
        first.upgrade()
        first.register_devices(
            [Device("p-1", "site-a", "acme-ansi", "g"), Device("p-2", "site-a", "acme-ansi", "g")]
        )

        def batches(salt: str) -> list[ReadingBatch]:
            return [
                make_batch(
                    f"{salt}m{i}",
                    [i, i + 1],
                    {"motor_speed": [float(i), i + 1.0]},
                    device_id=f"p-{1 + i % 2}",
                )
                for i in range(60)
            ]

        barrier = threading.Barrier(2)
        results: dict[str, list[BatchOutcome]] = {}

        def write(name: str, store: TelemetryStore, order: list[ReadingBatch]) -> None:
            barrier.wait()
            outcomes: list[BatchOutcome] = []
            for start in range(0, len(order), 20):
                outcomes += store.write_batches(order[start : start + 20])
            results[name] = outcomes

        threads = [
            threading.Thread(target=write, args=("a", first, batches(""))),
            threading.Thread(target=write, args=("b", second, batches("x-" if other_ids else "")[::-1])),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(results) == ["a", "b"]
        outcomes = results["a"] + results["b"]
        statuses = [o.status for o in outcomes]
        assert statuses.count("stored") == (120 if other_ids else 60)
        assert statuses.count("duplicate") == (0 if other_ids else 60)
        # p-1 holds ts 0..59 (even i, two instants each), p-2 ts 1..60: 120 distinct readings.
        assert sum(o.readings_written for o in outcomes) == 120
        assert sum(o.readings_overlapping for o in outcomes) == (120 if other_ids else 0)
        counts = first.counts()
        assert (counts["messages"], counts["readings"]) == (120 if other_ids else 60, 120)
    finally:
        first.close()
        second.close()
