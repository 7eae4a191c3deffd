"""Decisions of the store that need no database: checking, classifying, flattening, pivoting.

Everything here is pure (arrays and records in, arrays and decisions out), so
the rules of idempotent writing are tested without an engine; the SQL store's
concern mixins (``_readings.py``, ``_agent_messages.py``, ...) and the engine
modules do the I/O around them. May import: numpy, ``pumpops.schema``,
``pumpops.errors`` and ``_records.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pumpops.errors import ConfigError, InputError
from pumpops.schema import CANONICAL_SENSORS, IDENT_PATTERN, ReadingBatch
from pumpops.store._records import AGENT_KINDS, FEEDBACK_VERDICTS, AgentRecord, BatchStatus

Key = tuple[str, str]
"""A message's identity: ``(device_id, msg_id)``."""

#: Column widths of the schema (``_tables.py``); longer values are an input error,
#: not a database error halfway through a transaction.
MAX_DEVICE_ID = 64
MAX_MSG_ID = 128
MAX_SENSOR = 64

_IDENT = re.compile(IDENT_PATTERN)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: The largest ``seq`` of an agent message id: it is stored as a signed 64-bit integer.
MAX_AGENT_SEQ = 2**63 - 1
MAX_AGENT_VERSION = 32
#: Widths of the revision 0006 keys (rollout and alert ids, alarm ids, status, alert kind).
MAX_ROLLOUT_ID = 128
MAX_ALERT_ID = 128
MAX_ALARM_ID = 128
MAX_ROLLOUT_STATUS = 32
MAX_ALERT_KIND = 64


def check_ident(kind: str, value: str) -> None:
    """Raise :class:`InputError` unless ``value`` is a valid identifier (device, site, group, profile).

    >>> check_ident("device id", "p-0001")
    >>> check_ident("site", "no spaces")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pumpops.errors.InputError: site 'no spaces' is not a valid identifier ...
    """
    if not isinstance(value, str) or not _IDENT.match(value):
        raise InputError(f"{kind} {value!r} is not a valid identifier (letters, digits, ._:- ; at most 64)")


def check_batch(batch: ReadingBatch) -> None:
    """Raise :class:`InputError` if ``batch`` cannot be stored as it is.

    The ingest service builds batches through validation, so this only
    catches programming errors, but it catches them before a transaction
    starts rather than as a database error in the middle of one.
    """
    where = f"batch {batch.device_id!r}/{batch.msg_id!r}"
    if not batch.device_id or len(batch.device_id) > MAX_DEVICE_ID:
        raise InputError(f"{where}: device_id must have 1 to {MAX_DEVICE_ID} characters")
    if not batch.msg_id or len(batch.msg_id) > MAX_MSG_ID:
        raise InputError(f"{where}: msg_id must have 1 to {MAX_MSG_ID} characters")
    if not _SHA256.match(batch.payload_sha256):
        raise InputError(f"{where}: payload_sha256 must be 64 lowercase hex digits")
    if len(set(batch.sensors)) != len(batch.sensors):
        raise InputError(f"{where}: sensors repeat: {batch.sensors}")
    for name in batch.sensors:
        if not name or len(name) > MAX_SENSOR:
            raise InputError(f"{where}: sensor name {name!r} must have 1 to {MAX_SENSOR} characters")
    ts = np.asarray(batch.ts_us)
    values = np.asarray(batch.values)
    if ts.ndim != 1 or values.shape != (ts.shape[0], len(batch.sensors)):
        raise InputError(
            f"{where}: values must have shape (len(ts_us), len(sensors)) = "
            f"({ts.shape[0] if ts.ndim == 1 else '?'}, {len(batch.sensors)}), not {values.shape}"
        )
    if ts.dtype.kind not in "iu":
        raise InputError(f"{where}: ts_us must be integers (microseconds), not {ts.dtype}")


def first_occurrences(batches: Sequence[ReadingBatch]) -> list[int]:
    """Return the index of the first batch of every distinct ``(device_id, msg_id)``, in order.

    >>> import numpy as np
    >>> def b(msg):
    ...     return ReadingBatch("d", msg, "0" * 64, np.zeros(0, np.int64), (), np.zeros((0, 0)), 0)
    >>> first_occurrences([b("a"), b("b"), b("a"), b("c")])
    [0, 1, 3]
    """
    seen: set[Key] = set()
    firsts = []
    for index, batch in enumerate(batches):
        key = (batch.device_id, batch.msg_id)
        if key not in seen:
            seen.add(key)
            firsts.append(index)
    return firsts


def classify(batches: Sequence[ReadingBatch], claimed: Mapping[Key, str | None]) -> list[BatchStatus]:
    """Decide the outcome of every batch of one ``write_batches`` call.

    Args:
        batches: the call's batches, in order (the same id may appear more than once).
        claimed: for every distinct key, ``None`` if the ledger row was newly
            inserted by this call (for its first batch), else the payload hash
            already stored under that key.

    Returns:
        One status per batch. The result is what writing the batches one by
        one would give: the first batch of a new key is ``stored``; a later
        batch with the same key is a ``duplicate`` if its hash equals the hash
        that key now has, else an ``id_conflict``.

    >>> import numpy as np
    >>> def b(msg, digest):
    ...     return ReadingBatch("d", msg, digest * 64, np.zeros(0, np.int64), (), np.zeros((0, 0)), 0)
    >>> claimed = {("d", "m1"): None, ("d", "m2"): "f" * 64}
    >>> classify([b("m1", "a"), b("m1", "a"), b("m1", "b"), b("m2", "c")], claimed)
    ['stored', 'duplicate', 'id_conflict', 'id_conflict']
    """
    current: dict[Key, str] = {}
    statuses: list[BatchStatus] = []
    for batch in batches:
        key = (batch.device_id, batch.msg_id)
        if key not in current:
            stored = claimed[key]
            current[key] = batch.payload_sha256 if stored is None else stored
            if stored is None:
                statuses.append("stored")
                continue
        statuses.append("duplicate" if current[key] == batch.payload_sha256 else "id_conflict")
    return statuses


def batch_readings(batch: ReadingBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the non-NaN readings of a batch as flat arrays, row by row.

    Returns:
        ``(column, ts_us, value)``: the column index into ``batch.sensors``
        (int64), the timestamp (int64) and the value (float64) of each reading,
        in the batch's order (time row by time row, sensors left to right).

    >>> import numpy as np
    >>> batch = ReadingBatch("d", "m", "0" * 64, np.array([10, 20]), ("a", "b"),
    ...                      np.array([[1.0, np.nan], [3.0, 4.0]]), 0)
    >>> [a.tolist() for a in batch_readings(batch)]
    [[0, 0, 1], [10, 20, 20], [1.0, 3.0, 4.0]]
    """
    values = np.asarray(batch.values, dtype=np.float64)
    present = ~np.isnan(values)
    rows, cols = np.nonzero(present)
    ts = np.asarray(batch.ts_us, dtype=np.int64)[rows]
    return cols.astype(np.int64), ts, values[present]


@dataclass(frozen=True, slots=True)
class StagedReadings:
    """Readings of several new batches, deduplicated and sorted for a bulk insert.

    Attributes:
        devices: the device id of each batch (index ``b`` is batch ``b``).
        sensors: every sensor name of the batches, sorted.
        batch: shape ``(K,)`` int32, the batch each staged reading comes from.
        sensor: shape ``(K,)`` int16, index into ``sensors``.
        ts_us: shape ``(K,)`` int64.
        value: shape ``(K,)`` float64.
        staged_per_batch: shape ``(B,)``, staged readings per batch.
        repeated_per_batch: shape ``(B,)``, readings of each batch left out
            because an earlier reading of the same call (an earlier batch, or an
            earlier row of the same batch) has the same ``(device, sensor, ts)``.
    """

    devices: tuple[str, ...]
    sensors: tuple[str, ...]
    batch: np.ndarray
    sensor: np.ndarray
    ts_us: np.ndarray
    value: np.ndarray
    staged_per_batch: np.ndarray
    repeated_per_batch: np.ndarray


def stage_readings(batches: Sequence[ReadingBatch]) -> StagedReadings:
    """Flatten the readings of new batches, keep the first of each key, sort by primary key.

    The first reading of a ``(device, sensor, ts)`` in call order is kept, as
    writing the batches one by one would keep it; the rest are counted as
    repeated for their batch. The staged rows are sorted by
    ``(device_id, sensor, ts_us)``, the readings table's primary key, so a bulk
    insert walks the index in order.

    >>> import numpy as np
    >>> a = ReadingBatch("d", "m1", "0" * 64, np.array([1, 2]), ("x",), np.array([[1.0], [2.0]]), 0)
    >>> b = ReadingBatch("d", "m2", "1" * 64, np.array([2, 3]), ("x",), np.array([[9.0], [3.0]]), 0)
    >>> staged = stage_readings([a, b])
    >>> staged.ts_us.tolist(), staged.value.tolist(), staged.repeated_per_batch.tolist()
    ([1, 2, 3], [1.0, 2.0, 3.0], [0, 1])
    """
    sensors = tuple(sorted({name for batch in batches for name in batch.sensors}))
    sensor_index = {name: i for i, name in enumerate(sensors)}
    device_ids = tuple(batch.device_id for batch in batches)
    device_order = {name: i for i, name in enumerate(sorted(set(device_ids)))}
    device_code = np.array([device_order[d] for d in device_ids], dtype=np.int64)

    parts_batch, parts_sensor, parts_ts, parts_value = [], [], [], []
    for b, batch in enumerate(batches):
        cols, ts, values = batch_readings(batch)
        to_global = np.array([sensor_index[name] for name in batch.sensors], dtype=np.int64)
        parts_batch.append(np.full(ts.shape[0], b, dtype=np.int64))
        parts_sensor.append(to_global[cols] if cols.size else cols)
        parts_ts.append(ts)
        parts_value.append(values)
    n_batches = len(batches)
    if not parts_ts:
        empty = np.zeros(0, dtype=np.int64)
        zeros = np.zeros(n_batches, dtype=np.int64)
        return StagedReadings(
            device_ids, sensors, empty.astype(np.int32), empty.astype(np.int16), empty,
            empty.astype(np.float64), zeros, zeros,
        )  # fmt: skip
    batch_of = np.concatenate(parts_batch)
    sensor_of = np.concatenate(parts_sensor)
    ts_of = np.concatenate(parts_ts)
    value_of = np.concatenate(parts_value)

    # lexsort is stable: among equal keys the original (call) order survives,
    # so the first of each run of equal keys is the one to keep.
    order = np.lexsort((ts_of, sensor_of, device_code[batch_of]))
    dev_sorted = device_code[batch_of][order]
    sen_sorted = sensor_of[order]
    ts_sorted = ts_of[order]
    repeat = np.zeros(order.shape[0], dtype=bool)
    repeat[1:] = (
        (dev_sorted[1:] == dev_sorted[:-1])
        & (sen_sorted[1:] == sen_sorted[:-1])
        & (ts_sorted[1:] == ts_sorted[:-1])
    )
    keep = order[~repeat]
    dropped = order[repeat]
    return StagedReadings(
        devices=device_ids,
        sensors=sensors,
        batch=batch_of[keep].astype(np.int32),
        sensor=sensor_of[keep].astype(np.int16),
        ts_us=ts_of[keep],
        value=value_of[keep],
        staged_per_batch=np.bincount(batch_of[keep], minlength=n_batches),
        repeated_per_batch=np.bincount(batch_of[dropped], minlength=n_batches),
    )


def find_conflicts(
    batch: ReadingBatch, stored: Mapping[tuple[str, int], float], limit: int = 10
) -> tuple[tuple[str, int, float, float], ...]:
    """Return up to ``limit`` readings of ``batch`` whose stored value differs.

    Args:
        batch: a batch that was just written and had overlapping readings.
        stored: ``(sensor, ts_us) -> value`` as stored now, covering the batch.
        limit: most conflicts to report.

    Returns:
        ``(sensor, ts_us, stored_value, new_value)`` in the batch's order.

    >>> import numpy as np
    >>> batch = ReadingBatch("d", "m", "0" * 64, np.array([1, 2]), ("x",), np.array([[1.0], [2.0]]), 0)
    >>> find_conflicts(batch, {("x", 1): 1.0, ("x", 2): 5.0})
    (('x', 2, 5.0, 2.0),)
    """
    cols, ts, values = batch_readings(batch)
    found: list[tuple[str, int, float, float]] = []
    for col, t, new in zip(cols.tolist(), ts.tolist(), values.tolist(), strict=True):
        name = batch.sensors[col]
        old = stored.get((name, t))
        if old is not None and old != new:
            found.append((name, t, old, new))
            if len(found) == limit:
                break
    return tuple(found)


def sensor_order(names: Sequence[str]) -> list[str]:
    """Order sensor names as the canonical list does; unknown names follow, sorted.

    >>> sensor_order(["motor_speed", "zz", "suction_pressure", "aa"])
    ['suction_pressure', 'motor_speed', 'aa', 'zz']
    """
    rank = {name: i for i, name in enumerate(CANONICAL_SENSORS)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def pivot(series: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Join per-sensor time series into one ``(M, N)`` array on the union of their timestamps.

    Args:
        series: for each of N sensors, ``(ts_us, values)`` sorted by time with
            unique timestamps.

    Returns:
        ``(ts_us, values)``: the sorted union of timestamps (int64, shape
        ``(M,)``) and the values (float64, shape ``(M, N)``), NaN where a
        sensor has no reading at that instant.

    >>> import numpy as np
    >>> a = (np.array([1, 3]), np.array([1.0, 3.0]))
    >>> b = (np.array([2, 3]), np.array([20.0, 30.0]))
    >>> ts, values = pivot([a, b])
    >>> ts.tolist(), values.tolist()
    ([1, 2, 3], [[1.0, nan], [nan, 20.0], [3.0, 30.0]])
    """
    if not series:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float64)
    ts_all = np.unique(np.concatenate([np.asarray(ts, dtype=np.int64) for ts, _ in series]))
    values = np.full((ts_all.shape[0], len(series)), np.nan, dtype=np.float64)
    for column, (ts, vals) in enumerate(series):
        values[np.searchsorted(ts_all, ts), column] = vals
    return ts_all, values


def clean_text(text: str) -> str:
    r"""Make a string storable as text on every engine, keeping what it says.

    PostgreSQL text cannot hold NUL, and neither engine can store lone
    surrogates (what ``surrogateescape`` decoding leaves for undecodable bytes);
    both become visible escapes. The raw bytes of a dead letter live in its
    ``payload``, which is stored untouched.

    >>> clean_text("ok\x00\udcff")
    'ok\\x00\\udcff'
    """
    cleaned = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return cleaned.replace("\x00", "\\x00")


def check_agent_record(record: AgentRecord) -> None:
    """Raise :class:`InputError` if an agent message cannot be stored as it is.

    >>> ok = AgentRecord("p-1:7", "p-1", "s1", "alarm", 5, "0.1.0", "{}", "a" * 64, 9)
    >>> check_agent_record(ok)
    >>> import dataclasses
    >>> check_agent_record(dataclasses.replace(ok, msg_id="p-2:7"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pumpops.errors.InputError: agent message 'p-2:7': msg_id must be '<device_id>:<seq>' ...
    """
    where = f"agent message {record.msg_id!r}"
    check_ident("device id", record.device_id)
    check_ident("site", record.site)
    head, _, seq = record.msg_id.rpartition(":")
    if head != record.device_id or not seq.isascii() or not seq.isdigit() or len(record.msg_id) > MAX_MSG_ID:
        raise InputError(
            f"{where}: msg_id must be '<device_id>:<seq>' with device {record.device_id!r}, "
            f"seq a non-negative integer, at most {MAX_MSG_ID} characters"
        )
    if int(seq) > MAX_AGENT_SEQ:
        raise InputError(f"{where}: seq {seq} is larger than {MAX_AGENT_SEQ}")
    if record.kind not in AGENT_KINDS:
        raise InputError(f"{where}: kind {record.kind!r} is not one of {', '.join(AGENT_KINDS)}")
    if type(record.ts_us) is not int or record.ts_us < 0:
        raise InputError(f"{where}: ts_us must be a non-negative integer, not {record.ts_us!r}")
    if type(record.received_at_us) is not int or record.received_at_us < 0:
        raise InputError(f"{where}: received_at_us must be a non-negative integer")
    if not record.agent_version or len(record.agent_version) > MAX_AGENT_VERSION:
        raise InputError(f"{where}: agent_version must have 1 to {MAX_AGENT_VERSION} characters")
    if not _SHA256.match(record.payload_sha256):
        raise InputError(f"{where}: payload_sha256 must be 64 lowercase hex digits")
    try:
        body = json.loads(record.body_json)
    except (TypeError, ValueError):
        raise InputError(f"{where}: body_json is not JSON text") from None
    if not isinstance(body, dict):
        raise InputError(f"{where}: body_json must be a JSON object")


def classify_keyed(items: Sequence[tuple[str, str]], claimed: Mapping[str, str | None]) -> list[BatchStatus]:
    """Decide the outcome of every ``(key, payload hash)`` of one call, as :func:`classify` does for batches.

    Args:
        items: the call's keys and payload hashes, in order (a key may repeat).
        claimed: for every distinct key, ``None`` if its row was newly
            inserted by this call (for its first item), else the hash already stored.

    >>> classify_keyed([("m1", "a"), ("m1", "a"), ("m1", "b"), ("m2", "c")], {"m1": None, "m2": "f"})
    ['stored', 'duplicate', 'id_conflict', 'id_conflict']
    """
    current: dict[str, str] = {}
    statuses: list[BatchStatus] = []
    for key, digest in items:
        if key not in current:
            stored = claimed[key]
            current[key] = digest if stored is None else stored
            if stored is None:
                statuses.append("stored")
                continue
        statuses.append("duplicate" if current[key] == digest else "id_conflict")
    return statuses


def agent_conflict_detail(record: AgentRecord) -> str:
    """The dead letter's sentence for an agent message whose id was stored with other content."""
    return (
        f"message id {record.msg_id!r} of device {record.device_id!r} was already stored with different "
        f"content; the stored message was kept and this one was not stored. An agent never reuses an id: "
        f"was its outbox reset (a new state folder) without a new device id?"
    )


# -- rollouts, fleet alerts, alarm feedback (revision 0006) --------------------------------------


def check_time_us(what: str, time_us: int | None) -> None:
    """Raise :class:`InputError` unless ``time_us`` is None or a non-negative integer.

    >>> check_time_us("rollout 'r-1'", 0)
    >>> check_time_us("rollout 'r-1'", -1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pumpops.errors.InputError: rollout 'r-1': time_us must be a non-negative integer, not -1
    """
    if time_us is not None and (type(time_us) is not int or time_us < 0):
        raise InputError(f"{what}: time_us must be a non-negative integer, not {time_us!r}")


def check_text(
    what: str, name: str, value: str, *, max_length: int | None = None, empty: bool = False
) -> None:
    """Raise :class:`InputError` unless ``value`` is text both engines can store (no NUL, valid Unicode).

    Args:
        what: the record, for the message.
        name: the field, for the message.
        value: the text.
        max_length: the column's width, if it has one.
        empty: whether an empty (or blank) value is allowed.
    """
    if not isinstance(value, str):
        raise InputError(f"{what}: {name} must be text, not {type(value).__name__}")
    if not empty and not value.strip():
        raise InputError(f"{what}: {name} must not be empty")
    if max_length is not None and len(value) > max_length:
        raise InputError(f"{what}: {name} must have at most {max_length} characters")
    if "\x00" in value:
        raise InputError(f"{what}: {name} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{what}: {name} is not valid Unicode text: {exc}") from exc


def check_json_object(what: str, name: str, text: str) -> None:
    """Raise :class:`InputError` unless ``text`` is JSON text of an object that both engines can store.

    >>> check_json_object("rollout 'r-1'", "state_json", '{"waves": []}')
    >>> check_json_object("rollout 'r-1'", "state_json", "{waves")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pumpops.errors.InputError: rollout 'r-1': state_json is not JSON text: ...
    """
    check_text(what, name, text)
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{what}: {name} is not JSON text: {exc}") from None
    if not isinstance(value, dict):
        raise InputError(f"{what}: {name} must be JSON of an object, not {type(value).__name__}")


def check_rollout(
    rollout_id: str, *, group: str, release: str, status: str, state_json: str, time_us: int | None
) -> None:
    """Raise :class:`InputError` if a rollout cannot be stored as it is."""
    what = f"rollout {rollout_id!r}"
    check_text(what, "rollout_id", rollout_id, max_length=MAX_ROLLOUT_ID)
    check_ident(f"{what}: group", group)
    check_text(what, "release", release)
    check_text(what, "status", status, max_length=MAX_ROLLOUT_STATUS)
    check_json_object(what, "state_json", state_json)
    check_time_us(what, time_us)


def check_fleet_alert(alert_id: str, *, group: str, kind: str, detail_json: str, time_us: int | None) -> None:
    """Raise :class:`InputError` if a fleet alert cannot be stored as it is."""
    what = f"fleet alert {alert_id!r}"
    check_text(what, "alert_id", alert_id, max_length=MAX_ALERT_ID)
    check_ident(f"{what}: group", group)
    check_text(what, "kind", kind, max_length=MAX_ALERT_KIND)
    check_json_object(what, "detail_json", detail_json)
    check_time_us(what, time_us)


def alarm_device_id(alarm_id: str) -> str:
    """Return the device of an alarm id ``<device_id>:<started_ms>`` (the part before the last ``:``).

    >>> alarm_device_id("site-a:p-1:1767225600000")
    'site-a:p-1'
    >>> alarm_device_id("p-1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pumpops.errors.InputError: alarm id 'p-1' must be '<device_id>:<started_ms>' ...

    Raises:
        InputError: the id is not of that form.
    """
    head, sep, started = str(alarm_id).rpartition(":")
    if not sep or not _IDENT.match(head) or not (started.isascii() and started.isdigit()):
        raise InputError(
            f"alarm id {alarm_id!r} must be '<device_id>:<started_ms>' (a device id, ':' and an integer)"
        )
    if len(alarm_id) > MAX_ALARM_ID:
        raise InputError(f"alarm id {alarm_id!r} must have at most {MAX_ALARM_ID} characters")
    return head


def check_feedback(alarm_id: str, *, verdict: str, actor: str, note: str, time_us: int | None) -> str:
    """Check a verdict on an alarm before it is stored; return the alarm's device id.

    Raises:
        ConfigError: ``actor`` is empty (it comes from settings or a flag).
        InputError: ``alarm_id``, ``verdict``, ``note`` or ``time_us`` is malformed.
    """
    device_id = alarm_device_id(alarm_id)
    what = f"feedback on alarm {alarm_id!r}"
    if verdict not in FEEDBACK_VERDICTS:
        raise InputError(f"{what}: verdict {verdict!r} is not one of {', '.join(FEEDBACK_VERDICTS)}")
    if not isinstance(actor, str) or not actor.strip():
        raise ConfigError(
            f"{what}: actor must not be empty: set `actor` in pumpops.toml, PUMPOPS_ACTOR or --actor"
        )
    check_text(what, "actor", actor)
    check_text(what, "note", note, empty=True)
    check_time_us(what, time_us)
    return device_id
