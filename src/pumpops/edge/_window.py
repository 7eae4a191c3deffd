"""The window buffer: the last ``window_rows`` readings of a device, the model's input.

The agent pushes one row of canonical SI readings per sample (sensors in the
bundle's order) and, once :attr:`WindowBuffer.ready`, hands
:meth:`WindowBuffer.window` (oldest row first) to the ONNX model as one
``(W, S)`` slice of its ``(B, W, S)`` input. Rows are kept in a
preallocated ring, so a push is O(sensors) and a window O(window) with no
allocation beyond the copy returned. A row with a missing value is refused
(:class:`~pumpops.errors.InputError` naming the sensor indexes): the agent
quarantines it rather than letting a NaN reach the model.

May import: the standard library, numpy and ``pumpops.errors`` only.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pumpops.errors import ConfigError, InputError

__all__ = ["WindowBuffer"]


class WindowBuffer:
    """A ring buffer of the last ``window_rows`` rows of ``n_sensors`` readings.

    Args:
        n_sensors: sensors per row ``S`` (the bundle's ``inputs.sensors``).
        window_rows: rows per window ``W`` (the bundle's ``inputs.window_rows``).

    Raises:
        ConfigError: ``n_sensors`` or ``window_rows`` below 1.

    >>> buf = WindowBuffer(n_sensors=2, window_rows=3)
    >>> for i in range(4):
    ...     buf.push(np.array([i, 10.0 * i]))
    >>> buf.ready, buf.rows_seen
    (True, 4)
    >>> buf.window().tolist()
    [[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]
    """

    def __init__(self, n_sensors: int, window_rows: int) -> None:
        if n_sensors < 1 or window_rows < 1:
            raise ConfigError(
                f"a window needs at least one sensor and one row, got n_sensors={n_sensors}, "
                f"window_rows={window_rows}"
            )
        self.n_sensors = int(n_sensors)
        self.window_rows = int(window_rows)
        self._ring: NDArray[np.float64] = np.zeros((self.window_rows, self.n_sensors), dtype=np.float64)
        self._next = 0  # ring index the next row goes to
        self._seen = 0

    @property
    def rows_seen(self) -> int:
        """Rows accepted since creation or the last :meth:`clear` (refused rows do not count)."""
        return self._seen

    @property
    def ready(self) -> bool:
        """Whether ``window_rows`` rows have been seen, so :meth:`window` is a full window."""
        return self._seen >= self.window_rows

    def push(self, row: ArrayLike) -> None:
        """Append one row of readings, dropping the oldest once the window is full.

        Args:
            row: ``(n_sensors,)`` canonical SI values in the model's sensor order.

        Raises:
            InputError: the row has the wrong shape, is not numeric, or has a NaN
                or infinite value (the message names the sensor indexes); the
                buffer is left unchanged.
        """
        try:
            values = np.asarray(row, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"a reading row must be numeric: {exc}") from exc
        if values.shape != (self.n_sensors,):
            raise InputError(f"a reading row must have shape ({self.n_sensors},), got {values.shape}")
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise InputError(
                f"reading row refused: sensor index(es) {bad.tolist()} are NaN or infinite; "
                "the row is not added to the window"
            )
        self._ring[self._next] = values
        self._next = (self._next + 1) % self.window_rows
        self._seen += 1

    def window(self) -> NDArray[np.float64]:
        """The last ``window_rows`` rows, oldest first, as a new ``(window_rows, n_sensors)`` array.

        Raises:
            InputError: fewer than ``window_rows`` rows seen yet (see :attr:`ready`).
        """
        if not self.ready:
            raise InputError(f"the window is not full yet: {self._seen} of {self.window_rows} rows seen")
        # The oldest row is where the next one will go.
        return np.concatenate([self._ring[self._next :], self._ring[: self._next]])

    def clear(self) -> None:
        """Forget every row (after a model change or a gap in the readings)."""
        self._ring.fill(0.0)
        self._next = 0
        self._seen = 0
