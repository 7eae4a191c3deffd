"""The sensor-source interface: anything that yields frames of native readings."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pumpops.errors import InputError


@dataclass(frozen=True, slots=True)
class Channel:
    """One column of a frame: the device's own sensor name and unit."""

    name: str
    unit: str


@dataclass(frozen=True, slots=True)
class Frame:
    """Consecutive readings of one device, in the device's own names and units.

    Attributes:
        device_id: the device the readings belong to.
        ts_ms: shape ``(M,)`` int64, milliseconds since the Unix epoch (UTC),
            strictly increasing.
        channels: the ``N`` columns.
        values: shape ``(M, N)`` float64; NaN where a sensor was not sampled.
    """

    device_id: str
    ts_ms: np.ndarray
    channels: tuple[Channel, ...]
    values: np.ndarray


class Source(abc.ABC):
    """Where readings come from: a simulator, a file replay, later Modbus or OPC UA.

    Subclasses implement :meth:`_frames`; the base class checks every frame's
    invariants (shapes, increasing time) so a broken source fails loudly at the
    source instead of as bad data at the hub.
    """

    def frames(self) -> Iterator[Frame]:
        """Yield frames in time order per device.

        Raises:
            InputError: a frame breaks the invariants of :class:`Frame`.
        """
        for frame in self._frames():
            m = frame.ts_ms.shape[0]
            if frame.values.shape != (m, len(frame.channels)):
                raise InputError(
                    f"source {self!r} made a frame of shape {frame.values.shape} "
                    f"for {m} timestamps and {len(frame.channels)} channels"
                )
            if m > 1 and not bool(np.all(np.diff(frame.ts_ms) > 0)):
                raise InputError(f"source {self!r} made a frame whose timestamps do not increase")
            yield frame

    @abc.abstractmethod
    def _frames(self) -> Iterator[Frame]:
        """Yield the frames; see :meth:`frames`."""
