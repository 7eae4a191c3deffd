"""Readings in the device's own names and units → rows of the model's sensors, in SI, on the model's grid.

:class:`RowMapper` picks and converts the model's sensors out of a frame (the
manufacturer profile says which native channel measures which canonical
sensor; pint gives the affine map to the model's unit). :class:`Resampler`
puts rows on the training grid the way the pipeline's ``resample`` does:
readings are averaged into bins of ``period`` aligned to the epoch, and a
sensor silent for up to ``fill_rows`` bins keeps its last value; a longer
silence gives a row with NaN (the agent restarts its window there).
Readings that go back in time are refused (counted by the caller), never
reordered: the device's clock is the order.
May import: schema, fleet, errors, numpy.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from pumpops.errors import IncompatibleBundleError
from pumpops.fleet import ManufacturerProfile
from pumpops.schema import affine_to
from pumpops.sources import Channel

__all__ = ["Resampler", "RowMapper"]


@dataclass(frozen=True)
class _Column:
    index: int
    scale: float
    offset: float


class RowMapper:
    """Maps a frame's channels onto the model's sensors, converting units.

    Args:
        profile: the pump's manufacturer profile.
        sensors: the model's ``(canonical name, unit)`` pairs, in window column order.
    """

    def __init__(self, profile: ManufacturerProfile, sensors: Sequence[tuple[str, str]]) -> None:
        self.profile = profile
        self.sensors = tuple(sensors)
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
        for name, unit in self.sensors:
            if name not in by_canonical:
                raise IncompatibleBundleError(
                    f"the model needs sensor {name!r}, which this pump ({self.profile.id}) does not "
                    f"report; it reports {', '.join(sorted(by_canonical)) or 'nothing'}"
                )
            index, native_unit = by_canonical[name]
            scale, offset = affine_to(native_unit, unit)
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
