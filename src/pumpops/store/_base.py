"""The store interface: what code above ``store`` may ask of the hub's database.

One interface, two engines (SQLite, PostgreSQL); callers never learn which.
Implementations live in underscore modules and are chosen by URL in
:func:`pumpops.store.open_store`.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pumpops.fleet import Device
from pumpops.schema import DeadLetter, ReadingBatch

BatchStatus = Literal["stored", "duplicate", "id_conflict"]


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What happened to one batch in :meth:`TelemetryStore.write_batches`.

    Attributes:
        device_id: the batch's device.
        msg_id: the batch's message id.
        status: ``stored`` (new message), ``duplicate`` (same id and same
            payload hash already stored: a redelivery, nothing written) or
            ``id_conflict`` (same id, different payload: nothing written; the
            caller dead-letters it).
        readings_written: readings newly stored.
        readings_overlapping: readings whose ``(device, sensor, ts)`` was
            already stored by another message; the first value is kept.
        conflicting: up to 10 ``(sensor, ts_us, stored_value, new_value)`` of
            the overlapping readings whose values differ.
    """

    device_id: str
    msg_id: str
    status: BatchStatus
    readings_written: int = 0
    readings_overlapping: int = 0
    conflicting: tuple[tuple[str, int, float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class ReadingsFrame:
    """Readings of one device as arrays, ready for training.

    Attributes:
        device_id: the device.
        ts_us: shape ``(M,)`` int64, sorted, microseconds since the epoch (UTC).
        sensors: ``N`` canonical sensor names.
        values: shape ``(M, N)`` float64 in SI units; NaN where a sensor has
            no reading at that instant.
    """

    device_id: str
    ts_us: np.ndarray
    sensors: tuple[str, ...]
    values: np.ndarray


class TelemetryStore(abc.ABC):
    """The hub's telemetry database."""

    @abc.abstractmethod
    def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent)."""

    @abc.abstractmethod
    def register_devices(self, devices: Iterable[Device]) -> int:
        """Insert or update devices; return how many were new."""

    @abc.abstractmethod
    def devices(self) -> list[Device]:
        """Return every registered device, sorted by id."""

    @abc.abstractmethod
    def device(self, device_id: str) -> Device | None:
        """Return one device, or None if it is not registered."""

    @abc.abstractmethod
    def write_batches(self, batches: Sequence[ReadingBatch]) -> list[BatchOutcome]:
        """Store batches idempotently in one transaction; one outcome per batch, in order.

        Raises:
            StoreError: the database failed; nothing of the call was stored.
        """

    @abc.abstractmethod
    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Store dead letters (never deduplicated: each rejection is a fact)."""

    @abc.abstractmethod
    def dead_letters(self, *, limit: int = 100, reason: str | None = None) -> list[DeadLetter]:
        """Return the newest dead letters first, optionally of one reason."""

    @abc.abstractmethod
    def query(
        self,
        device_id: str,
        *,
        sensors: Sequence[str] | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> ReadingsFrame:
        """Return a device's readings in ``[since_us, until_us)`` as arrays.

        Raises:
            NotFoundError: the device is not registered.
        """

    @abc.abstractmethod
    def counts(self) -> dict[str, int]:
        """Return row counts: ``devices``, ``messages``, ``readings``, ``dead_letters``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> TelemetryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
