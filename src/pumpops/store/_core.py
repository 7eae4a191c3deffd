"""The SQL store's shared core: the engine holder every concern's mixin builds on.

Owns the engine and its write variant, the conversion of database errors into
:class:`~pumpops.errors.StoreError` (:meth:`SqlCore._guard`), the hooks an
engine module overrides (dialect upsert, audit lock, snapshot reads, missing
table test), and the one query helper for the select–filter–order shape that
every reader uses (:func:`build_select`, :meth:`SqlCore._select`).
May import: SQLAlchemy, Alembic (its error type), ``pumpops.errors``.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import sqlalchemy as sa
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from pumpops.errors import StoreError

#: Execution option that marks a write transaction (SQLite takes its write lock at BEGIN).
WRITE_OPTION = "pumpops_write"

#: Keys per ``IN`` list: far below SQLite's 32,766 bound parameters and PostgreSQL's 65,535.
KEYS_PER_QUERY = 500

#: A condition of :func:`build_select`; ``None`` (a filter not asked for) is skipped.
Condition = ColumnElement[bool] | None

#: What :func:`build_select` selects: a table (all its columns) or some columns.
Selectable = sa.Table | Sequence[sa.ColumnElement[Any]]


def now_us() -> int:
    """Microseconds since the Unix epoch, now."""
    return time.time_ns() // 1000


def build_select(
    what: Selectable,
    *,
    where: Iterable[Condition] = (),
    order_by: Sequence[sa.ColumnElement[Any]] = (),
    limit: int | None = None,
    last: int | None = None,
) -> sa.Select[Any]:
    """Build ``SELECT what WHERE ... ORDER BY ... LIMIT ...``: the one shape of the store's readers.

    Args:
        what: a table (every column) or the columns wanted.
        where: conditions joined with AND; ``None`` entries (filters not asked for) are skipped.
        order_by: the order of the result.
        limit: at most this many rows, the first of ``order_by``.
        last: at most this many rows, the *last* of ``order_by``: the query
            runs in reverse order with ``LIMIT``; :meth:`SqlCore._select`
            turns the rows back into ``order_by`` order. Not with ``limit``.

    >>> t = sa.table("events", sa.column("seq"), sa.column("kind"))
    >>> stmt = build_select([t.c.seq], where=[t.c.kind == "a", None], order_by=[t.c.seq], last=2)
    >>> " ".join(str(stmt).split())
    'SELECT events.seq FROM events WHERE events.kind = :kind_1 ORDER BY events.seq DESC LIMIT :param_1'
    """
    stmt = sa.select(what) if isinstance(what, sa.Table) else sa.select(*what)
    for condition in where:
        if condition is not None:
            stmt = stmt.where(condition)
    if last is not None:
        return stmt.order_by(*(column.desc() for column in order_by)).limit(last)
    stmt = stmt.order_by(*order_by)
    return stmt if limit is None else stmt.limit(limit)


def eq(column: sa.ColumnElement[Any], value: object) -> Condition:
    """``column = value``, or None (no filter) if ``value`` is None."""
    return None if value is None else column == value


def at_least(column: sa.ColumnElement[Any], value: object) -> Condition:
    """``column >= value``, or None (no filter) if ``value`` is None."""
    return None if value is None else column >= value


class SqlCore(abc.ABC):
    """The engine holder under every concern's mixin of :class:`~pumpops.store._sql.SqlTelemetryStore`.

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
    def _upsert(self, table: sa.Table) -> Any:
        """Return the dialect's ``insert(table)`` construct that has ``on_conflict_do_update``."""

    def _lock_audit(self, conn: Connection) -> None:  # noqa: B027 - an optional hook, empty by default
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

    @contextmanager
    def _snapshot(self, action: str) -> Iterator[Connection]:
        """A read transaction that sees one consistent snapshot (errors guarded)."""
        with self._guard(action), self._engine.connect() as plain:
            conn = plain.execution_options(**self._read_options())
            with conn.begin():
                yield conn

    def _select(
        self,
        action: str,
        what: Selectable,
        *,
        where: Iterable[Condition] = (),
        order_by: Sequence[sa.ColumnElement[Any]] = (),
        limit: int | None = None,
        last: int | None = None,
        snapshot: bool = False,
    ) -> list[Any]:
        """Run :func:`build_select` in a read connection; return its rows in ``order_by`` order.

        The rows are SQLAlchemy ``Row`` objects (a tuple, with attribute access by column).

        Args:
            action: what is being done, for the error message (``read the releases of``).
            what: as for :func:`build_select`.
            where: as for :func:`build_select`.
            order_by: as for :func:`build_select`.
            limit: as for :func:`build_select`.
            last: as for :func:`build_select`.
            snapshot: read in one consistent snapshot (:meth:`_read_options`).

        Raises:
            StoreError: the database failed.
        """
        stmt = build_select(what, where=where, order_by=order_by, limit=limit, last=last)
        if snapshot:
            with self._snapshot(action) as conn:
                rows = list(conn.execute(stmt).all())
        else:
            with self._guard(action), self._engine.connect() as conn:
                rows = list(conn.execute(stmt).all())
        return rows[::-1] if last is not None else rows

    def _select_one(self, action: str, what: Selectable, *, where: Iterable[Condition] = ()) -> Any:
        """The first row of :meth:`_select` (a lookup by key; attribute access by column), or None.

        Raises:
            StoreError: the database failed.
        """
        stmt = build_select(what, where=where)
        with self._guard(action), self._engine.connect() as conn:
            return conn.execute(stmt).first()
