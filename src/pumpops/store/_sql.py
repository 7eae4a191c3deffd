"""The SQLAlchemy Core implementation of :class:`TelemetryStore` shared by both engines.

Owns transactions, migrations (Alembic, run in code), error conversion and
every query that is the same on SQLite and PostgreSQL. An engine module
(``_sqlite.py``, ``_postgres.py``) subclasses :class:`SqlTelemetryStore` and
supplies only the bulk paths of :meth:`~SqlTelemetryStore.write_batches`
(``_claim_messages`` and ``_insert_readings``) and its dialect's upsert; the
rules (what is a duplicate, an id conflict, an overlap) live here and in
``_plan.py``, not in the engines.
May import: SQLAlchemy, Alembic, numpy, ``pumpops.schema``, ``pumpops.fleet``,
``pumpops.audit`` (the chain, no I/O), ``pumpops.errors`` and the store's own modules.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from pumpops.audit import GENESIS_HASH, AuditEntry, canonical_json, check_fields, entry_hash
from pumpops.errors import ConfigError, InputError, NotFoundError, StoreError
from pumpops.fleet import Device
from pumpops.schema import DeadLetter, ReadingBatch
from pumpops.store import _plan
from pumpops.store import _tables as tables
from pumpops.store._base import (
    AGENT_KINDS,
    ROLLOUT_ACTIVE_STATUSES,
    AgentPut,
    AgentRecord,
    AliasRecord,
    BatchOutcome,
    EventRecord,
    FeedbackRecord,
    FleetAlertRecord,
    ReadingsFrame,
    ReleaseRecord,
    RolloutRecord,
    TelemetryStore,
)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Execution option that marks a write transaction (SQLite takes its write lock at BEGIN).
WRITE_OPTION = "pumpops_write"

#: Keys per ``IN`` list: far below SQLite's 32,766 bound parameters and PostgreSQL's 65,535.
_KEYS_PER_QUERY = 500
_MAX_CONFLICTS = 10

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


def now_us() -> int:
    """Microseconds since the Unix epoch, now."""
    return time.time_ns() // 1000


def alembic_config() -> Config:
    """Alembic configuration built in code: the revisions shipped inside the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


class SqlTelemetryStore(TelemetryStore):
    """A :class:`TelemetryStore` on a SQLAlchemy engine; see the module docstring.

    Args:
        engine: the engine, configured by the engine module (pragmas, pool).
    """

    #: Exceptions of the driver that escape SQLAlchemy (raw DBAPI cursors used by bulk paths).
    driver_errors: ClassVar[tuple[type[Exception], ...]] = ()

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE_OPTION: True})

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

    @abc.abstractmethod
    def _upsert(self, table: sa.Table) -> Any:
        """Return the dialect's ``insert(table)`` construct that has ``on_conflict_do_update``."""

    def _prepare_upgrade(self, conn: Connection) -> None:
        """Run engine-specific steps before migrating (locks, schema creation)."""

    def _lock_audit(self, conn: Connection) -> None:
        """Exclude other audit appenders until ``conn``'s transaction ends.

        Nothing to do where a write transaction already excludes every other
        writer (SQLite: ``BEGIN IMMEDIATE``).
        """

    def _read_options(self) -> dict[str, Any]:
        """Execution options for read transactions that need one consistent snapshot."""
        return {}

    def _is_missing_table(self, exc: BaseException) -> bool:
        """Whether ``exc`` says a table does not exist (the schema was never upgraded)."""
        return "no such table" in str(exc)

    def _fetch_series(
        self, conn: Connection, device_id: str, sensor: str, since_us: int | None, until_us: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(ts_us, values)`` of one sensor of a device, sorted by time."""
        stmt = sa.select(tables.readings.c.ts_us, tables.readings.c.value).where(
            tables.readings.c.device_id == device_id, tables.readings.c.sensor == sensor
        )
        if since_us is not None:
            stmt = stmt.where(tables.readings.c.ts_us >= since_us)
        if until_us is not None:
            stmt = stmt.where(tables.readings.c.ts_us < until_us)
        rows = conn.execute(stmt.order_by(tables.readings.c.ts_us)).all()
        ts = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        values = np.fromiter((row[1] for row in rows), dtype=np.float64, count=len(rows))
        return ts, values

    # -- plumbing -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self._engine.url.render_as_string(hide_password=True)

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn database errors into :class:`StoreError` (the cause stays attached)."""
        errors: tuple[type[BaseException], ...] = (SQLAlchemyError, CommandError, *self.driver_errors)
        try:
            yield
        except errors as exc:
            cause = getattr(exc, "orig", None) or exc
            first_line = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
            message = f"cannot {action} {self.url}: {first_line}"
            if self._is_missing_table(cause):
                message += " (is the schema created? run `pumpops db upgrade`)"
            raise StoreError(message) from exc

    # -- schema -------------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent).

        Runs in one transaction holding the engine's upgrade lock, so two
        processes upgrading at once do not both create tables.

        Raises:
            StoreError: the database failed or a migration could not be applied.
        """
        config = alembic_config()
        with self._guard("upgrade the schema of"), self._writer.begin() as conn:
            self._prepare_upgrade(conn)
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def current_revision(self) -> str | None:
        """Return the schema's Alembic revision, or None if it was never upgraded.

        Raises:
            StoreError: the database failed.
        """
        with self._guard("read the schema revision of"), self._engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @staticmethod
    def head_revision() -> str | None:
        """Return the newest revision this version of pumpops ships."""
        return ScriptDirectory.from_config(alembic_config()).get_current_head()

    # -- devices ------------------------------------------------------------------------------

    def register_devices(self, devices: Iterable[Device]) -> int:
        """Insert or update devices; return how many were new.

        A device already registered keeps its registration time; its site,
        profile and group are updated. If the same id appears twice, the last wins.

        Raises:
            InputError: an id, site, profile or group is not a valid identifier.
            StoreError: the database failed; nothing was registered.
        """
        wanted: dict[str, Device] = {}
        for device in devices:
            _plan.check_ident("device id", device.device_id)
            _plan.check_ident("site", device.site)
            _plan.check_ident("profile id", device.profile_id)
            _plan.check_ident("group", device.group)
            wanted[device.device_id] = device
        if not wanted:
            return 0
        registered_at = now_us()
        rows = [
            {
                "device_id": d.device_id,
                "site": d.site,
                "profile_id": d.profile_id,
                "group_name": d.group,
                "registered_at_us": registered_at,
            }
            for d in wanted.values()
        ]
        with self._guard("register devices in"), self._writer.begin() as conn:
            existing = self._existing_devices(conn, wanted)
            stmt = self._upsert(tables.devices)
            stmt = stmt.on_conflict_do_update(
                index_elements=[tables.devices.c.device_id],
                set_={
                    "site": stmt.excluded.site,
                    "profile_id": stmt.excluded.profile_id,
                    "group_name": stmt.excluded.group_name,
                },
            )
            conn.execute(stmt, rows)
        return len(wanted.keys() - existing)

    def devices(self) -> list[Device]:
        """Return every registered device, sorted by id.

        Raises:
            StoreError: the database failed.
        """
        stmt = sa.select(
            tables.devices.c.device_id,
            tables.devices.c.site,
            tables.devices.c.profile_id,
            tables.devices.c.group_name,
        )
        with self._guard("list devices in"), self._engine.connect() as conn:
            rows = conn.execute(stmt.order_by(tables.devices.c.device_id)).all()
        return [Device(*row) for row in rows]

    def device(self, device_id: str) -> Device | None:
        """Return one device, or None if it is not registered.

        Raises:
            StoreError: the database failed.
        """
        stmt = sa.select(
            tables.devices.c.device_id,
            tables.devices.c.site,
            tables.devices.c.profile_id,
            tables.devices.c.group_name,
        )
        with self._guard("read a device from"), self._engine.connect() as conn:
            row = conn.execute(stmt.where(tables.devices.c.device_id == device_id)).first()
        return None if row is None else Device(*row)

    @staticmethod
    def _existing_devices(conn: Connection, ids: Iterable[str]) -> set[str]:
        wanted = sorted(set(ids))
        found: set[str] = set()
        for start in range(0, len(wanted), _KEYS_PER_QUERY):
            chunk = wanted[start : start + _KEYS_PER_QUERY]
            found.update(
                conn.scalars(
                    sa.select(tables.devices.c.device_id).where(tables.devices.c.device_id.in_(chunk))
                )
            )
        return found

    # -- telemetry ----------------------------------------------------------------------------

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
            missing = wanted - self._existing_devices(conn, wanted)
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
        found: dict[_plan.Key, str] = {}
        pair = sa.tuple_(tables.messages.c.device_id, tables.messages.c.msg_id)
        for start in range(0, len(keys), _KEYS_PER_QUERY):
            chunk = list(keys[start : start + _KEYS_PER_QUERY])
            stmt = sa.select(
                tables.messages.c.device_id, tables.messages.c.msg_id, tables.messages.c.payload_sha256
            )
            for device_id, msg_id, digest in conn.execute(stmt.where(pair.in_(chunk))):
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
        stmt = sa.select(tables.readings.c.sensor, tables.readings.c.ts_us, tables.readings.c.value).where(
            tables.readings.c.device_id == batch.device_id,
            tables.readings.c.sensor.in_(names),
            tables.readings.c.ts_us.between(int(ts.min()), int(ts.max())),
        )
        stored = {(sensor, ts_us): value for sensor, ts_us, value in conn.execute(stmt)}
        return _plan.find_conflicts(batch, stored, _MAX_CONFLICTS)

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
        with (
            self._guard("query telemetry from"),
            self._engine.connect() as plain,
        ):
            conn = plain.execution_options(**self._read_options())
            with conn.begin():
                found = conn.scalar(
                    sa.select(tables.devices.c.device_id).where(tables.devices.c.device_id == device_id)
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

    # -- dead letters -------------------------------------------------------------------------

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Store dead letters (never deduplicated: each rejection is a fact).

        The payload is stored byte for byte. Text fields that an engine cannot
        hold (NUL characters, lone surrogates) are stored with visible escapes.

        Raises:
            StoreError: the database failed; none of them was stored.
        """
        if not letters:
            return
        rows = self._dead_letter_rows(letters)
        with self._guard("write dead letters to"), self._writer.begin() as conn:
            conn.execute(sa.insert(tables.dead_letters), rows)

    @staticmethod
    def _dead_letter_rows(letters: Sequence[DeadLetter]) -> list[dict[str, Any]]:
        clean = _plan.clean_text
        return [
            {
                "received_at_us": int(letter.received_at_us),
                "topic": clean(letter.topic),
                "device_id": None if letter.device_id is None else clean(letter.device_id),
                "msg_id": None if letter.msg_id is None else clean(letter.msg_id),
                "reason": clean(letter.reason),
                "detail": clean(letter.detail),
                "payload": bytes(letter.payload),
            }
            for letter in letters
        ]

    def dead_letters(self, *, limit: int = 100, reason: str | None = None) -> list[DeadLetter]:
        """Return the newest dead letters first, optionally of one reason.

        Raises:
            InputError: ``limit`` is negative.
            StoreError: the database failed.
        """
        if limit < 0:
            raise InputError(f"limit must be 0 or more, not {limit}")
        t = tables.dead_letters.c
        stmt = sa.select(
            t.topic, t.payload, t.reason, t.detail, t.received_at_us, t.device_id, t.msg_id
        ).order_by(t.received_at_us.desc(), t.id.desc())
        if reason is not None:
            stmt = stmt.where(t.reason == reason)
        with self._guard("read dead letters from"), self._engine.connect() as conn:
            rows = conn.execute(stmt.limit(limit)).all()
        return [
            DeadLetter(
                topic=topic,
                payload=bytes(payload),
                reason=reason_,
                detail=detail,
                received_at_us=received,
                device_id=device_id,
                msg_id=msg_id,
            )
            for topic, payload, reason_, detail, received, device_id, msg_id in rows
        ]

    # -- agent messages -----------------------------------------------------------------------

    def put_agent_messages(self, messages: Sequence[AgentRecord]) -> AgentPut:
        """Store agent messages idempotently by ``msg_id``, in one transaction.

        Not stored yet → stored; stored with the same payload hash → duplicate
        (nothing written); stored with another hash → id conflict: never
        overwritten, written as a ``msg_id_conflict`` dead letter in the same
        transaction. Repeats within the call are judged one after the other.

        ``INSERT ... ON CONFLICT DO NOTHING`` in ``msg_id`` order: two ingest
        workers given the same resend store it once, with no unique-violation
        error and no deadlock (PostgreSQL waits for the other writer's key, then
        skips it; SQLite's write transaction excludes the other writer).

        Raises:
            InputError: a message is malformed; nothing was stored.
            StoreError: the database failed; nothing of the call was stored.
        """
        if not messages:
            return AgentPut(0, 0)
        for record in messages:
            _plan.check_agent_record(record)
        firsts: dict[str, AgentRecord] = {}
        for record in messages:
            firsts.setdefault(record.msg_id, record)
        rows = [self._agent_row(firsts[msg_id]) for msg_id in sorted(firsts)]
        t = tables.agent_messages.c
        with self._guard("store agent messages in"), self._writer.begin() as conn:
            inserted: set[str] = set()
            for start in range(0, len(rows), _KEYS_PER_QUERY // 10):
                stmt = (
                    self._upsert(tables.agent_messages)
                    .values(rows[start : start + _KEYS_PER_QUERY // 10])
                    .on_conflict_do_nothing(index_elements=[t.msg_id])
                    .returning(t.msg_id)
                )
                inserted.update(conn.scalars(stmt))
            others = sorted(firsts.keys() - inserted)
            claimed: dict[str, str | None] = dict.fromkeys(inserted)
            for start in range(0, len(others), _KEYS_PER_QUERY):
                chunk = others[start : start + _KEYS_PER_QUERY]
                stmt2 = sa.select(t.msg_id, t.payload_sha256).where(t.msg_id.in_(chunk))
                claimed.update({row.msg_id: row.payload_sha256 for row in conn.execute(stmt2)})
            statuses = _plan.classify_keyed([(m.msg_id, m.payload_sha256) for m in messages], claimed)
            conflicts = [
                self._agent_conflict_letter(record)
                for record, status in zip(messages, statuses, strict=True)
                if status == "id_conflict"
            ]
            if conflicts:
                conn.execute(sa.insert(tables.dead_letters), self._dead_letter_rows(conflicts))
        return AgentPut(statuses.count("stored"), statuses.count("duplicate"))

    @staticmethod
    def _agent_row(record: AgentRecord) -> dict[str, Any]:
        return {
            "msg_id": record.msg_id,
            "device_id": record.device_id,
            "seq": record.seq,
            "site": record.site,
            "kind": record.kind,
            "ts_us": int(record.ts_us),
            "received_at_us": int(record.received_at_us),
            "agent_version": _plan.clean_text(record.agent_version),
            "body": _plan.clean_text(record.body_json),
            "payload_sha256": record.payload_sha256,
        }

    @staticmethod
    def _agent_conflict_letter(record: AgentRecord) -> DeadLetter:
        payload = record.payload
        if not payload:  # rebuild the envelope from the fields (the body as it came)
            envelope = {
                "schema": "pumpops.agent/1",
                "msg_id": record.msg_id,
                "device_id": record.device_id,
                "site": record.site,
                "kind": record.kind,
                "ts_ms": record.ts_ms,
                "agent_version": record.agent_version,
                "body": json.loads(record.body_json),
            }
            payload = json.dumps(envelope, separators=(",", ":")).encode()
        return DeadLetter(
            topic=record.topic or f"(agent {record.kind} of {record.device_id} at {record.site})",
            payload=payload,
            reason="msg_id_conflict",
            detail=_plan.agent_conflict_detail(record),
            received_at_us=int(record.received_at_us),
            device_id=record.device_id,
            msg_id=record.msg_id,
        )

    def agent_messages(
        self,
        *,
        device_id: str | None = None,
        kind: str | None = None,
        since_us: int | None = None,
        limit: int | None = None,
    ) -> list[AgentRecord]:
        """Return stored agent messages ordered by device, then ``seq`` (numerically).

        Raises:
            InputError: ``limit`` is negative or ``kind`` is unknown.
            StoreError: the database failed.
        """
        if limit is not None and limit < 0:
            raise InputError(f"limit must be 0 or more, not {limit}")
        if kind is not None and kind not in AGENT_KINDS:
            raise InputError(f"agent message kind {kind!r} is not one of {', '.join(AGENT_KINDS)}")
        t = tables.agent_messages.c
        stmt = sa.select(
            t.msg_id,
            t.device_id,
            t.site,
            t.kind,
            t.ts_us,
            t.agent_version,
            t.body,
            t.payload_sha256,
            t.received_at_us,
        )
        if device_id is not None:
            stmt = stmt.where(t.device_id == device_id)
        if kind is not None:
            stmt = stmt.where(t.kind == kind)
        if since_us is not None:
            stmt = stmt.where(t.ts_us >= since_us)
        order = (t.device_id, t.seq, t.msg_id)
        if limit is not None:
            stmt = stmt.order_by(*(c.desc() for c in order)).limit(limit)
        else:
            stmt = stmt.order_by(*order)
        with self._guard("read agent messages from"), self._engine.connect() as conn:
            rows = conn.execute(stmt).all()
        found = [
            AgentRecord(
                msg_id=row.msg_id,
                device_id=row.device_id,
                site=row.site,
                kind=row.kind,
                ts_us=int(row.ts_us),
                agent_version=row.agent_version,
                body_json=row.body,
                payload_sha256=row.payload_sha256,
                received_at_us=int(row.received_at_us),
            )
            for row in rows
        ]
        return found[::-1] if limit is not None else found

    # -- rollouts (revision 0006) ---------------------------------------------------------------

    @staticmethod
    def _rollout_record(row: Any) -> RolloutRecord:
        return RolloutRecord(
            rollout_id=row.rollout_id,
            group=row.group_name,
            release=row.release,
            status=row.status,
            state_json=row.state,
            created_at_us=int(row.created_at_us),
            updated_at_us=int(row.updated_at_us),
        )

    def put_rollout(
        self,
        rollout_id: str,
        *,
        group: str,
        release: str,
        status: str,
        state_json: str,
        time_us: int | None = None,
    ) -> RolloutRecord:
        """Insert a rollout or update the stored one (``created_at_us`` kept); return it as stored.

        One ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``: two writers of
        the same id never fail on the key, the later one's fields win.

        Raises:
            InputError: a field is malformed or ``state_json`` is not JSON of an object.
            StoreError: the database failed; nothing was stored.
        """
        _plan.check_rollout(
            rollout_id, group=group, release=release, status=status, state_json=state_json, time_us=time_us
        )
        when = now_us() if time_us is None else time_us
        t = tables.rollouts.c
        stmt = self._upsert(tables.rollouts).values(
            rollout_id=rollout_id,
            group_name=group,
            release=release,
            status=status,
            state=state_json,
            created_at_us=when,
            updated_at_us=when,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.rollout_id],
            set_={
                "group_name": stmt.excluded.group_name,
                "release": stmt.excluded.release,
                "status": stmt.excluded.status,
                "state": stmt.excluded.state,
                "updated_at_us": stmt.excluded.updated_at_us,
            },
        ).returning(*tables.rollouts.c)
        with self._guard("store a rollout in"), self._writer.begin() as conn:
            row = conn.execute(stmt).one()
        return self._rollout_record(row)

    def get_rollout(self, rollout_id: str) -> RolloutRecord | None:
        """Return the rollout with this id, or None.

        Raises:
            StoreError: the database failed.
        """
        t = tables.rollouts.c
        with self._guard("read a rollout of"), self._engine.connect() as conn:
            row = conn.execute(sa.select(tables.rollouts).where(t.rollout_id == rollout_id)).first()
        return None if row is None else self._rollout_record(row)

    def rollouts(self, *, group: str | None = None, active_only: bool = False) -> list[RolloutRecord]:
        """Return rollouts ordered by ``created_at_us`` (then id); of one group, or only active ones.

        Raises:
            StoreError: the database failed.
        """
        t = tables.rollouts.c
        stmt = sa.select(tables.rollouts)
        if group is not None:
            stmt = stmt.where(t.group_name == group)
        if active_only:
            stmt = stmt.where(t.status.in_(ROLLOUT_ACTIVE_STATUSES))
        with self._guard("read the rollouts of"), self._engine.connect() as conn:
            rows = conn.execute(stmt.order_by(t.created_at_us, t.rollout_id)).all()
        return [self._rollout_record(row) for row in rows]

    # -- fleet alerts (revision 0006) -----------------------------------------------------------

    @staticmethod
    def _fleet_alert_record(row: Any) -> FleetAlertRecord:
        return FleetAlertRecord(
            alert_id=row.alert_id,
            group=row.group_name,
            kind=row.kind,
            opened_at_us=int(row.opened_at_us),
            closed_at_us=None if row.closed_at_us is None else int(row.closed_at_us),
            detail_json=row.detail,
        )

    def open_fleet_alert(
        self, alert_id: str, *, group: str, kind: str, detail_json: str, time_us: int | None = None
    ) -> bool:
        """Open a fleet alert; False (nothing changed) if the id exists already, open or closed.

        ``INSERT ... ON CONFLICT DO NOTHING``: two monitors raising the same
        alert at once store it once, and exactly one of them gets True.

        Raises:
            InputError: a field is malformed or ``detail_json`` is not JSON of an object.
            StoreError: the database failed; nothing was stored.
        """
        _plan.check_fleet_alert(alert_id, group=group, kind=kind, detail_json=detail_json, time_us=time_us)
        when = now_us() if time_us is None else time_us
        t = tables.fleet_alerts.c
        stmt = (
            self._upsert(tables.fleet_alerts)
            .values(
                alert_id=alert_id,
                group_name=group,
                kind=kind,
                opened_at_us=when,
                closed_at_us=None,
                detail=detail_json,
            )
            .on_conflict_do_nothing(index_elements=[t.alert_id])
            .returning(t.alert_id)
        )
        with self._guard("open a fleet alert in"), self._writer.begin() as conn:
            inserted = conn.execute(stmt).first()
        return inserted is not None

    def close_fleet_alert(self, alert_id: str, *, time_us: int | None = None) -> bool:
        """Close an open fleet alert; False if the id is unknown or the alert already closed.

        Raises:
            InputError: ``time_us`` is not a non-negative integer.
            StoreError: the database failed.
        """
        _plan.check_time_us(f"fleet alert {alert_id!r}", time_us)
        when = now_us() if time_us is None else time_us
        t = tables.fleet_alerts.c
        stmt = (
            sa.update(tables.fleet_alerts)
            .where(t.alert_id == alert_id, t.closed_at_us.is_(None))
            .values(closed_at_us=when)
            .returning(t.alert_id)
        )
        with self._guard("close a fleet alert in"), self._writer.begin() as conn:
            closed = conn.execute(stmt).first()
        return closed is not None

    def fleet_alerts(self, *, group: str | None = None, open_only: bool = False) -> list[FleetAlertRecord]:
        """Return fleet alerts ordered by ``opened_at_us`` (then id); of one group, or only open ones.

        Raises:
            StoreError: the database failed.
        """
        t = tables.fleet_alerts.c
        stmt = sa.select(tables.fleet_alerts)
        if group is not None:
            stmt = stmt.where(t.group_name == group)
        if open_only:
            stmt = stmt.where(t.closed_at_us.is_(None))
        with self._guard("read the fleet alerts of"), self._engine.connect() as conn:
            rows = conn.execute(stmt.order_by(t.opened_at_us, t.alert_id)).all()
        return [self._fleet_alert_record(row) for row in rows]

    # -- alarm feedback (revision 0006) ---------------------------------------------------------

    @staticmethod
    def _feedback_record(row: Any) -> FeedbackRecord:
        return FeedbackRecord(
            alarm_id=row.alarm_id,
            device_id=row.device_id,
            verdict=row.verdict,
            actor=row.actor,
            note=row.note,
            at_us=int(row.at_us),
        )

    def put_feedback(
        self, alarm_id: str, *, verdict: str, actor: str, note: str = "", time_us: int | None = None
    ) -> FeedbackRecord:
        """Store a verdict on an alarm unless a newer one is stored; return the one stored now.

        The upsert replaces the stored verdict only if this one's ``at_us`` is
        at or after it, so verdicts put out of order still keep the newest.

        Raises:
            ConfigError: ``actor`` is empty.
            InputError: ``alarm_id`` or ``verdict`` is malformed; nothing was stored.
            StoreError: the database failed; nothing was stored.
        """
        device_id = _plan.check_feedback(alarm_id, verdict=verdict, actor=actor, note=note, time_us=time_us)
        when = now_us() if time_us is None else time_us
        table = tables.alarm_feedback
        stmt = self._upsert(table).values(
            alarm_id=alarm_id, device_id=device_id, verdict=verdict, actor=actor, note=note, at_us=when
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.alarm_id],
            set_={
                "verdict": stmt.excluded.verdict,
                "actor": stmt.excluded.actor,
                "note": stmt.excluded.note,
                "at_us": stmt.excluded.at_us,
            },
            where=stmt.excluded.at_us >= table.c.at_us,
        )
        with self._guard("store alarm feedback in"), self._writer.begin() as conn:
            conn.execute(stmt)
            row = conn.execute(sa.select(table).where(table.c.alarm_id == alarm_id)).one()
        return self._feedback_record(row)

    def feedback(self, *, device_id: str | None = None, since_us: int | None = None) -> list[FeedbackRecord]:
        """Return stored verdicts ordered by ``at_us`` (then alarm id); of one device, or since an instant.

        Raises:
            StoreError: the database failed.
        """
        t = tables.alarm_feedback.c
        stmt = sa.select(tables.alarm_feedback)
        if device_id is not None:
            stmt = stmt.where(t.device_id == device_id)
        if since_us is not None:
            stmt = stmt.where(t.at_us >= since_us)
        with self._guard("read alarm feedback of"), self._engine.connect() as conn:
            rows = conn.execute(stmt.order_by(t.at_us, t.alarm_id)).all()
        return [self._feedback_record(row) for row in rows]

    # -- audit trail --------------------------------------------------------------------------

    def _append_audit(
        self, actor: str, action: str, subject: str, payload_json: str, time_us: int | None
    ) -> AuditEntry:
        """Read the tail and insert the next entry in one write transaction holding the audit lock.

        Raises:
            StoreError: the database failed; nothing was appended.
        """
        t = tables.audit.c
        with self._guard("append to the audit trail of"), self._writer.begin() as conn:
            self._lock_audit(conn)
            tail = conn.execute(sa.select(t.seq, t.hash).order_by(t.seq.desc()).limit(1)).first()
            seq, prev_hash = (1, GENESIS_HASH) if tail is None else (int(tail[0]) + 1, str(tail[1]))
            when = now_us() if time_us is None else time_us
            digest = entry_hash(
                seq=seq,
                time_us=when,
                actor=actor,
                action=action,
                subject=subject,
                payload_json=payload_json,
                prev_hash=prev_hash,
            )
            entry = AuditEntry(seq, when, actor, action, subject, payload_json, prev_hash, digest)
            conn.execute(
                sa.insert(tables.audit).values(
                    seq=seq,
                    time_us=when,
                    actor=actor,
                    action=action,
                    subject=subject,
                    payload=payload_json,
                    prev_hash=prev_hash,
                    hash=digest,
                )
            )
        return entry

    def audit_entries(
        self,
        *,
        since_seq: int | None = None,
        since_us: int | None = None,
        subject: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Return audit entries in sequence order, as stored (tampering included: verify them).

        Args:
            since_seq: first sequence number included.
            since_us: first ``time_us`` included.
            subject: only entries about this subject.
            limit: only the newest ``limit`` of the entries selected (still oldest first).

        Raises:
            InputError: ``limit`` is negative.
            StoreError: the database failed.
        """
        if limit is not None and limit < 0:
            raise InputError(f"limit must be 0 or more, not {limit}")
        t = tables.audit.c
        stmt = sa.select(t.seq, t.time_us, t.actor, t.action, t.subject, t.payload, t.prev_hash, t.hash)
        if since_seq is not None:
            stmt = stmt.where(t.seq >= since_seq)
        if since_us is not None:
            stmt = stmt.where(t.time_us >= since_us)
        if subject is not None:
            stmt = stmt.where(t.subject == subject)
        stmt = stmt.order_by(t.seq.desc()).limit(limit) if limit is not None else stmt.order_by(t.seq)
        with self._guard("read the audit trail of"), self._engine.connect() as plain:
            conn = plain.execution_options(**self._read_options())
            with conn.begin():
                rows = conn.execute(stmt).all()
        entries = [AuditEntry(*row) for row in rows]
        return entries[::-1] if limit is not None else entries

    # -- registry: alias history and events -----------------------------------------------------

    @staticmethod
    def _alias_record(row: Any) -> AliasRecord:
        return AliasRecord(
            group=row.group_name,
            alias=row.alias,
            model_name=row.model_name,
            version=int(row.version),
            from_us=int(row.from_us),
            to_us=None if row.to_us is None else int(row.to_us),
            set_by=row.set_by,
            reason=row.reason,
        )

    def set_alias(
        self,
        group: str,
        alias: str,
        model_name: str,
        version: int,
        *,
        set_by: str,
        reason: str | None = None,
        time_us: int | None = None,
    ) -> AliasRecord:
        """Close the alias's open period and open the next, in one transaction.

        Raises:
            ConfigError: ``set_by`` is empty.
            InputError: ``group``/``alias``/``model_name`` is empty.
            StoreError: the database failed; nothing was recorded.
        """
        check_fields(set_by, alias, f"{model_name}/{version}")
        if not group.strip() or not model_name.strip():
            raise InputError("alias history: group and model name must not be empty")
        t = tables.alias_history.c
        when = now_us() if time_us is None else time_us
        with self._guard("record an alias change in"), self._writer.begin() as conn:
            # The audit lock also serialises alias changes (both are rare
            # writes), so two promotions cannot both leave a period open.
            self._lock_audit(conn)
            conn.execute(
                sa.update(tables.alias_history)
                .where(t.group_name == group, t.alias == alias, t.to_us.is_(None))
                .values(to_us=when)
            )
            conn.execute(
                sa.insert(tables.alias_history).values(
                    group_name=group,
                    alias=alias,
                    model_name=model_name,
                    version=int(version),
                    from_us=when,
                    to_us=None,
                    set_by=set_by,
                    reason=reason,
                )
            )
        return AliasRecord(group, alias, model_name, int(version), when, None, set_by, reason)

    def end_alias(self, group: str, alias: str, *, time_us: int | None = None) -> AliasRecord | None:
        """Close the alias's open period; return it (closed), or None if none was open.

        Raises:
            StoreError: the database failed.
        """
        t = tables.alias_history.c
        when = now_us() if time_us is None else time_us
        with self._guard("record an alias change in"), self._writer.begin() as conn:
            self._lock_audit(conn)
            row = conn.execute(
                sa.select(tables.alias_history).where(
                    t.group_name == group, t.alias == alias, t.to_us.is_(None)
                )
            ).first()
            if row is None:
                return None
            conn.execute(sa.update(tables.alias_history).where(t.id == row.id).values(to_us=when))
        return dataclasses.replace(self._alias_record(row), to_us=when)

    def alias_history(self, *, group: str | None = None, alias: str | None = None) -> list[AliasRecord]:
        """Return alias periods oldest first, optionally of one group and/or alias.

        Raises:
            StoreError: the database failed.
        """
        t = tables.alias_history.c
        stmt = sa.select(tables.alias_history)
        if group is not None:
            stmt = stmt.where(t.group_name == group)
        if alias is not None:
            stmt = stmt.where(t.alias == alias)
        with self._guard("read the alias history of"), self._engine.connect() as conn:
            rows = conn.execute(stmt.order_by(t.from_us, t.id)).all()
        return [self._alias_record(row) for row in rows]

    def append_event(
        self, kind: str, subject: str, payload: Mapping[str, Any] | None = None, *, time_us: int | None = None
    ) -> EventRecord:
        """Store one lifecycle event and return it with its sequence number.

        Raises:
            InputError: ``kind``/``subject`` is empty or ``payload`` is not a JSON object.
            StoreError: the database failed; nothing was stored.
        """
        for name, value in (("kind", kind), ("subject", subject)):
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"event {name} must not be empty")
        payload_json = canonical_json(dict(payload or {}))
        when = now_us() if time_us is None else time_us
        with self._guard("store an event in"), self._writer.begin() as conn:
            seq = conn.execute(
                sa.insert(tables.events)
                .values(time_us=when, kind=kind, subject=subject, payload=payload_json)
                .returning(tables.events.c.seq)
            ).scalar_one()
        return EventRecord(int(seq), when, kind, subject, payload_json)

    def events(
        self, *, since_seq: int | None = None, kind: str | None = None, limit: int | None = None
    ) -> list[EventRecord]:
        """Return stored events in sequence order.

        Raises:
            InputError: ``limit`` is negative.
            StoreError: the database failed.
        """
        if limit is not None and limit < 0:
            raise InputError(f"limit must be 0 or more, not {limit}")
        t = tables.events.c
        stmt = sa.select(t.seq, t.time_us, t.kind, t.subject, t.payload)
        if since_seq is not None:
            stmt = stmt.where(t.seq >= since_seq)
        if kind is not None:
            stmt = stmt.where(t.kind == kind)
        stmt = stmt.order_by(t.seq.desc()).limit(limit) if limit is not None else stmt.order_by(t.seq)
        with self._guard("read the events of"), self._engine.connect() as conn:
            rows = conn.execute(stmt).all()
        found = [EventRecord(int(r[0]), int(r[1]), r[2], r[3], r[4]) for r in rows]
        return found[::-1] if limit is not None else found

    # -- releases ---------------------------------------------------------------------------

    @staticmethod
    def _release_record(row: Any) -> ReleaseRecord:
        return ReleaseRecord(
            release_id=int(row.id),
            model_name=row.model_name,
            version=int(row.version),
            group=row.group_name,
            targets=tuple(t for t in row.targets.split(",") if t),
            created_us=int(row.created_us),
            created_by=row.created_by,
            bundle_root=row.bundle_root,
            record_json=row.record,
        )

    def add_release(
        self,
        model_name: str,
        version: int,
        group: str,
        targets: Sequence[str],
        *,
        created_by: str,
        bundle_root: str,
        record: Mapping[str, Any],
        time_us: int | None = None,
    ) -> ReleaseRecord:
        """Store one release and return it with its id.

        Raises:
            ConfigError: ``created_by`` is empty.
            InputError: a name is empty, ``targets`` is empty or ``record`` is not a JSON object.
            StoreError: the database failed; nothing was stored.
        """
        check_fields(created_by, "release.created", f"{model_name}/{version}")
        if not model_name.strip() or not group.strip() or not targets:
            raise InputError("a release needs a model name, a group and at least one target")
        if any("," in t or not t.strip() for t in targets):
            raise InputError(f"target ids must be non-empty and without commas: {list(targets)}")
        record_json = canonical_json(dict(record))
        when = now_us() if time_us is None else time_us
        values = {
            "model_name": model_name,
            "version": int(version),
            "group_name": group,
            "targets": ",".join(targets),
            "created_us": when,
            "created_by": created_by,
            "bundle_root": bundle_root,
            "record": record_json,
        }
        with self._guard("store a release in"), self._writer.begin() as conn:
            rid = conn.execute(
                sa.insert(tables.releases).values(**values).returning(tables.releases.c.id)
            ).scalar_one()
        return ReleaseRecord(
            int(rid),
            model_name,
            int(version),
            group,
            tuple(targets),
            when,
            created_by,
            bundle_root,
            record_json,
        )

    def releases(self, *, group: str | None = None) -> list[ReleaseRecord]:
        """Return releases oldest first, optionally of one device group.

        Raises:
            StoreError: the database failed.
        """
        t = tables.releases.c
        stmt = sa.select(tables.releases)
        if group is not None:
            stmt = stmt.where(t.group_name == group)
        with self._guard("read the releases of"), self._engine.connect() as conn:
            rows = conn.execute(stmt.order_by(t.id)).all()
        return [self._release_record(row) for row in rows]

    def get_release(self, release_id: int) -> ReleaseRecord | None:
        """Return release ``release_id``, or None.

        Raises:
            StoreError: the database failed.
        """
        t = tables.releases.c
        with self._guard("read a release of"), self._engine.connect() as conn:
            row = conn.execute(sa.select(tables.releases).where(t.id == int(release_id))).first()
        return None if row is None else self._release_record(row)

    # -- housekeeping -------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Return row counts: ``devices``, ``messages``, ``readings``, ``dead_letters``.

        Exact counts: on PostgreSQL this scans the tables, so it is for status
        pages and tests, not for a hot loop.

        Raises:
            StoreError: the database failed.
        """
        to_count: Mapping[str, sa.Table] = {
            "devices": tables.devices,
            "messages": tables.messages,
            "readings": tables.readings,
            "dead_letters": tables.dead_letters,
        }
        with self._guard("count rows in"), self._engine.connect() as plain:
            conn = plain.execution_options(**self._read_options())
            with conn.begin():
                return {
                    name: int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
                    for name, table in to_count.items()
                }

    def close(self) -> None:
        """Release connections (the store can still be used; it reconnects)."""
        self._engine.dispose()


def open_sql_store(url: str) -> SqlTelemetryStore:
    """Open the store at ``url`` (see :func:`pumpops.store.open_store`), typed as the SQL store.

    The command line uses this to reach :meth:`SqlTelemetryStore.current_revision`.

    Raises:
        ConfigError: the URL's scheme or options are not supported.
    """
    from pumpops.store import _postgres, _sqlite  # noqa: PLC0415 - each engine module imports the other's driver lazily

    scheme = url.split(":", 1)[0].lower()
    if scheme in ("sqlite", "sqlite+pysqlite"):
        return _sqlite.SqliteTelemetryStore(_sqlite.create_sqlite_engine(url))
    if scheme in ("postgresql", "postgresql+psycopg"):
        engine, schema = _postgres.create_postgres_engine(url)
        return _postgres.PostgresTelemetryStore(engine, schema)
    raise ConfigError(
        f"unsupported database URL scheme {scheme!r}: use sqlite:///path or postgresql+psycopg://..."
    )
