"""Readings in the device's own names and units → rows of the model's sensors, in SI, on the model's grid.

:class:`RowMapper` picks and converts the model's sensors out of a frame (the
manufacturer profile says which native channel measures which canonical
sensor; the bundle carries the affine map from each known unit to the model's,
computed by the hub with pint, so the device never loads a units library). :class:`Resampler`
puts rows on the training grid the way the pipeline's ``resample`` does:
readings are averaged into bins of ``period`` aligned to the epoch, and a
sensor silent for up to ``fill_rows`` bins keeps its last value; a longer
silence gives a row with NaN (the agent restarts its window there).
Readings that go back in time are refused (counted by the caller), never
reordered: the device's clock is the order.
May import: sources, errors, numpy.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pumpops.errors import IncompatibleBundleError
from pumpops.sources import Channel

__all__ = ["Resampler", "RowMapper"]


@dataclass(frozen=True)
class _Column:
    index: int
    scale: float
    offset: float


class _Sensor(Protocol):
    @property
    def canonical(self) -> str: ...


class Profile(Protocol):
    """What :class:`RowMapper` reads of a manufacturer profile (``pumpops.edge._device`` or ``fleet``)."""

    @property
    def id(self) -> str: ...

    def sensor(self, name: str) -> _Sensor | None: ...


class RowMapper:
    """Maps a frame's channels onto the model's sensors, converting units.

    Args:
        profile: the pump's manufacturer profile.
        sensors: the model's ``(canonical name, unit)`` pairs, in window column order.
        from_units: per sensor, ``{unit: (scale, offset)}`` into its model unit (the bundle's
            ``BundleSensor.from_units``); a reading already in the model's unit needs none.
    """

    def __init__(
        self,
        profile: Profile,
        sensors: Sequence[tuple[str, str]],
        from_units: Sequence[Mapping[str, tuple[float, float]]] = (),
    ) -> None:
        self.profile = profile
        self.sensors = tuple(sensors)
        self.from_units = tuple(from_units) or tuple({} for _ in self.sensors)
        if len(self.from_units) != len(self.sensors):
            raise IncompatibleBundleError("the bundle gives unit conversions for some sensors only")
        self._cache: dict[tuple[Channel, ...], list[_Column]] = {}

    def columns(self, channels: tuple[Channel, ...]) -> list[_Column]:
        """How to build a model row from a frame with these channels.

        Raises:
            IncompatibleBundleError: the pump does not report a sensor the model needs.
        """
        found = self._cache.get(channels)
        if found is not None:
            return found
        by_canonical: dict[str, tuple[int, str]] = {}
        for i, channel in enumerate(channels):
            sensor = self.profile.sensor(channel.name)
            if sensor is not None:
                by_canonical[sensor.canonical] = (i, channel.unit)
        out = []
        for (name, unit), pairs in zip(self.sensors, self.from_units, strict=True):
            if name not in by_canonical:
                raise IncompatibleBundleError(
                    f"the model needs sensor {name!r}, which this pump ({self.profile.id}) does not "
                    f"report; it reports {', '.join(sorted(by_canonical)) or 'nothing'}"
                )
            index, native_unit = by_canonical[name]
            if native_unit == unit:
                scale, offset = 1.0, 0.0
            elif native_unit in pairs:
                scale, offset = (float(x) for x in pairs[native_unit])
            else:
                raise IncompatibleBundleError(
                    f"sensor {name!r}: this pump reports it in {native_unit!r} and the bundle has no "
                    f"conversion from that unit to the model's {unit!r} (it knows "
                    f"{', '.join(sorted(pairs)) or 'none'}); rebuild the release with this pump's "
                    "profile on the hub"
                )
            out.append(_Column(index, scale, offset))
        self._cache[channels] = out
        return out

    def rows(self, channels: tuple[Channel, ...], values: np.ndarray) -> np.ndarray:
        """``values`` (M, channels) in native units → (M, model sensors) in the model's units."""
        cols = self.columns(channels)
        out = np.empty((values.shape[0], len(cols)), dtype=np.float64)
        for j, c in enumerate(cols):
            out[:, j] = values[:, c.index] * c.scale + c.offset
        return out


class Resampler:
    """Streams rows onto a grid of ``period_ms``: bin means, short gaps carried forward.

    Args:
        n_sensors: columns per row.
        period_ms: the grid period.
        fill_rows: bins a silent sensor keeps its last value for.

    >>> r = Resampler(1, 1000, 1)
    >>> out = [x for t, v in [(0, 1.0), (1000, 2.0), (3000, 4.0), (3500, 6.0), (4000, 7.0)]
    ...        for x in r.push(t, np.array([v]))]
    >>> [(t, float(v[0])) for t, v in out]
    [(0, 1.0), (1000, 2.0), (2000, 2.0), (3000, 5.0)]
    """

    def __init__(self, n_sensors: int, period_ms: int, fill_rows: int) -> None:
        self.n_sensors = n_sensors
        self.period_ms = max(1, int(period_ms))
        self.fill_rows = max(0, int(fill_rows))
        self._bin: int | None = None
        self._sum = np.zeros(n_sensors)
        self._count = np.zeros(n_sensors, dtype=np.int64)
        self._last = np.full(n_sensors, np.nan)
        self._last_bin = np.full(n_sensors, -(2**62), dtype=np.int64)
        self.last_ts_ms: int | None = None

    def push(self, ts_ms: int, row: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Add one reading; yield ``(bin start ms, row)`` for every bin it completes.

        Raises:
            ValueError: ``ts_ms`` is not after the previous reading (the caller quarantines it).
        """
        if self.last_ts_ms is not None and ts_ms <= self.last_ts_ms:
            raise ValueError(f"reading at {ts_ms} ms is not after the previous one at {self.last_ts_ms} ms")
        self.last_ts_ms = ts_ms
        b = ts_ms // self.period_ms
        if self._bin is not None and b > self._bin:
            yield from self._close(b)
        if self._bin is None or b > self._bin:
            self._bin = b
        ok = np.isfinite(row)
        self._sum[ok] += row[ok]
        self._count[ok] += 1

    def _close(self, next_bin: int) -> Iterator[tuple[int, np.ndarray]]:
        assert self._bin is not None
        yield self._bin * self.period_ms, self._finish(self._bin)
        # Empty bins up to the next reading: carried forward while every sensor may be, else one gap row.
        gap = next_bin - self._bin - 1
        if gap > 0:
            fillable = min(gap, self.fill_rows)
            for k in range(1, fillable + 1):
                yield (self._bin + k) * self.period_ms, self._finish(self._bin + k)
            if gap > fillable:
                yield (self._bin + fillable + 1) * self.period_ms, np.full(self.n_sensors, np.nan)

    def _finish(self, b: int) -> np.ndarray:
        have = self._count > 0
        out = np.where(have, self._sum / np.maximum(self._count, 1), np.nan)
        self._last[have] = out[have]
        self._last_bin[have] = b
        carry = (~have) & (b - self._last_bin <= self.fill_rows)
        out[carry] = self._last[carry]
        self._sum[:] = 0.0
        self._count[:] = 0
        return out
