"""Replay of SKAB CSV recordings (the Skoltech pump testbed) as a source, with their labels.

The SKAB format: ``;``-separated, one header line, CRLF or LF line ends,
``datetime`` as ``YYYY-MM-DD hh:mm:ss`` in local time without a zone, one
column per sensor (the ``skab-testbed`` profile's native names), and optional
``anomaly`` / ``changepoint`` label columns of ``0.0`` / ``1.0``.

Parsing (:func:`read_skab_csv`) is strict and names the file and line of the
first problem: a replay that silently skipped a bad row would hand training a
hole the labels do not know about.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from pumpops.errors import ConfigError, InputError, NotFoundError
from pumpops.schema import IDENT_PATTERN
from pumpops.sources._base import Channel, Frame, Source

if TYPE_CHECKING:  # pumpops.fleet (pydantic, pint) loads only when no profile is given
    from pumpops.fleet import Device


class _Sensor(Protocol):
    @property
    def native(self) -> str: ...
    @property
    def unit(self) -> str: ...


class ColumnProfile(Protocol):
    """What the reader uses of a manufacturer profile: its sensors' native names and units."""

    @property
    def sensors(self) -> Sequence[_Sensor]: ...


def _skab_profile() -> ColumnProfile:
    from pumpops.fleet import get_profile  # noqa: PLC0415 - see TYPE_CHECKING above

    return get_profile(SKAB_PROFILE_ID)


SKAB_PROFILE_ID = "skab-testbed"
LABEL_COLUMNS = ("anomaly", "changepoint")

_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_IDENT = re.compile(IDENT_PATTERN)
_SLUG_BAD = re.compile(r"[^A-Za-z0-9._:-]+")


@dataclass(frozen=True, slots=True)
class SkabTable:
    """One SKAB experiment file, parsed.

    Attributes:
        path: the file.
        experiment: its name relative to the folder it was found in, without
            ``.csv`` (``valve1/0``, ``anomaly-free/anomaly-free``).
        ts_ms: shape ``(M,)`` int64, ms since the Unix epoch, strictly increasing.
        channels: the sensor columns, in the profile's order.
        values: shape ``(M, N)`` float64, in the profile's native units.
        anomaly: shape ``(M,)`` int8 labels, or None if the file has none.
        changepoint: shape ``(M,)`` int8 labels, or None if the file has none.
    """

    path: Path
    experiment: str
    ts_ms: np.ndarray
    channels: tuple[Channel, ...]
    values: np.ndarray
    anomaly: np.ndarray | None
    changepoint: np.ndarray | None

    @property
    def n_rows(self) -> int:
        """Number of data rows."""
        return int(self.ts_ms.shape[0])


@dataclass(frozen=True, slots=True)
class SkabLabels:
    """The labels of one replayed experiment, on the same timestamps as its frames.

    Attributes:
        device_id: the device the experiment is replayed as.
        experiment: the experiment name (see :class:`SkabTable`).
        ts_ms: shape ``(M,)`` int64, the frames' timestamps.
        anomaly: shape ``(M,)`` int8, or None for a label-free file.
        changepoint: shape ``(M,)`` int8, or None for a label-free file.
    """

    device_id: str
    experiment: str
    ts_ms: np.ndarray
    anomaly: np.ndarray | None
    changepoint: np.ndarray | None


def _natural_key(path: Path) -> tuple[tuple[int, int | str], ...]:
    # valve1/2.csv before valve1/10.csv, as a person would list them.
    parts = re.split(r"(\d+)", path.as_posix())
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p)


def skab_files(path: str | Path) -> tuple[Path, ...]:
    """Return the CSV files at ``path``: the file itself, or every ``*.csv`` below a folder.

    Whatever experiment files exist are taken, in natural order (``2`` before ``10``).

    Raises:
        NotFoundError: the path does not exist, or the folder holds no CSV file.
    """
    root = Path(path)
    if root.is_file():
        return (root,)
    if not root.is_dir():
        raise NotFoundError(f"SKAB path {root} does not exist")
    found = sorted(
        (p for p in root.rglob("*.csv") if p.is_file()), key=lambda p: _natural_key(p.relative_to(root))
    )
    if not found:
        raise NotFoundError(f"no *.csv files under {root}")
    return tuple(found)


def _fail(path: Path, line: int, message: str) -> InputError:
    return InputError(f"{path}:{line}: {message}")


def _parse_floats(path: Path, name: str, cells: Sequence[str]) -> np.ndarray:
    # An empty cell is a reading that was not taken: NaN, as a Frame spells it.
    cells = [cell if cell.strip() else "nan" for cell in cells]
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        for i, cell in enumerate(cells):
            try:
                float(cell)
            except ValueError:
                raise _fail(path, i + 2, f"column {name!r}: {cell!r} is not a number") from None
        raise  # pragma: no cover - numpy and float() agree on what a number is
    bad = np.flatnonzero(np.isinf(values))
    if bad.size:
        raise _fail(path, int(bad[0]) + 2, f"column {name!r}: infinite value {cells[bad[0]]!r}")
    return values


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc}") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        lineno = raw[: exc.start].count(b"\n") + 1
        raise _fail(path, lineno, f"not UTF-8/ASCII text (byte {exc.start})") from exc


def _split(path: Path, text: str) -> tuple[list[str], list[tuple[str, ...]]]:
    """Return the header names and the columns of cells, checking every row's width."""
    if not text:
        raise _fail(path, 1, "the file is empty")
    lines = text.split("\n")
    if lines[-1] != "":
        raise _fail(path, len(lines), "the last line has no line break: the file is truncated")
    lines.pop()
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    header = [name.strip() for name in lines[0].split(";")]
    if len(set(header)) != len(header):
        raise _fail(path, 1, "column names repeat in the header")
    rows = []
    width = len(header)
    for lineno, line in enumerate(lines[1:], start=2):
        fields = line.split(";")
        if len(fields) != width:
            what = "an empty line" if not line.strip() else f"{len(fields)} fields"
            raise _fail(path, lineno, f"expected {width} fields, found {what} (truncated or malformed row)")
        rows.append(fields)
    if not rows:
        raise _fail(path, 2, "no data rows after the header")
    return header, list(zip(*rows, strict=True))


def _parse_times(path: Path, stamps: Sequence[str], utc_offset_s: int) -> np.ndarray:
    """Return ms since the epoch for SKAB's naive local times, checking that they increase."""
    for i, stamp in enumerate(stamps):
        if not _DATETIME.fullmatch(stamp.strip()):
            raise _fail(path, i + 2, f"datetime {stamp!r} is not 'YYYY-MM-DD hh:mm:ss'")
    try:
        seconds = np.array([s.strip().replace(" ", "T") for s in stamps], dtype="datetime64[s]")
    except ValueError:
        for i, stamp in enumerate(stamps):
            try:
                np.datetime64(stamp.strip().replace(" ", "T"), "s")
            except ValueError:
                raise _fail(path, i + 2, f"datetime {stamp!r} is not a valid date and time") from None
        raise  # pragma: no cover - the per-row loop finds what the array parse rejected
    ts_ms: np.ndarray = (seconds.astype(np.int64) - utc_offset_s) * 1000
    back = np.flatnonzero(np.diff(ts_ms) <= 0)
    if back.size:
        i = int(back[0]) + 1
        raise _fail(path, i + 2, f"time {stamps[i]!r} does not come after {stamps[i - 1]!r}")
    return ts_ms


def _parse_labels(path: Path, name: str, cells: Sequence[str]) -> np.ndarray:
    column = _parse_floats(path, name, cells)
    bad = np.flatnonzero((column != 0.0) & (column != 1.0))
    if bad.size:
        raise _fail(path, int(bad[0]) + 2, f"label {name!r} must be 0 or 1, found {cells[bad[0]]!r}")
    return column.astype(np.int8)


def read_skab_csv(
    path: str | Path,
    *,
    experiment: str | None = None,
    utc_offset_s: int = 0,
    profile: ColumnProfile | None = None,
) -> SkabTable:
    """Read and check one SKAB CSV file.

    A file must end with a line break: SKAB files all do, and a missing one is
    the only reliable sign of a cut-off copy (a row cut inside its last number
    still parses as a number).

    Args:
        path: the file.
        experiment: the name to give it (default: the file name without ``.csv``).
        utc_offset_s: the recording's local time offset from UTC, in seconds
            (SKAB was recorded in Moscow, UTC+3: pass ``10800`` for true UTC;
            the default treats local time as UTC).
        profile: the profile whose native names are the columns (default ``skab-testbed``).

    Raises:
        InputError: the file is not readable text, is truncated, lacks a
            column, has a row of the wrong width, a bad time, number or label,
            or time that does not increase; the message names file and line.
    """
    path = Path(path)
    profile = profile or _skab_profile()
    header, columns = _split(path, _read_text(path))
    index = {name: i for i, name in enumerate(header)}
    missing = [s.native for s in profile.sensors if s.native not in index]
    if "datetime" not in index or missing:
        names = ", ".join(map(repr, (["datetime"] if "datetime" not in index else []) + missing))
        raise _fail(path, 1, f"missing column(s) {names} in the header")
    ts_ms = _parse_times(path, columns[index["datetime"]], utc_offset_s)
    values = np.column_stack(
        [_parse_floats(path, s.native, columns[index[s.native]]) for s in profile.sensors]
    )
    labels = {
        name: None if name not in index else _parse_labels(path, name, columns[index[name]])
        for name in LABEL_COLUMNS
    }
    anomaly, changepoint = labels["anomaly"], labels["changepoint"]
    return SkabTable(
        path=path,
        experiment=experiment or path.stem,
        ts_ms=_frozen(ts_ms),
        channels=tuple(Channel(s.native, s.unit) for s in profile.sensors),
        values=_frozen(values),
        anomaly=None if anomaly is None else _frozen(anomaly),
        changepoint=None if changepoint is None else _frozen(changepoint),
    )


def _frozen(array: np.ndarray) -> np.ndarray:
    # Frames and labels hand out views of these arrays: read-only keeps one
    # consumer's in-place edit from changing what the next one sees.
    array.flags.writeable = False
    return array


def _slug(experiment: str) -> str:
    """Return an experiment name fit for a device id.

    >>> _slug("valve1/0"), _slug("anomaly-free/anomaly-free")
    ('valve1-0', 'anomaly-free')
    """
    parts = experiment.split("/")
    if len(parts) > 1 and parts[-1] == parts[-2]:
        parts.pop()  # anomaly-free/anomaly-free says the same thing twice
    return _SLUG_BAD.sub("-", "-".join(parts)).strip("-.") or "x"


class SkabCsvSource(Source):
    """Replays SKAB CSV files as frames of the ``skab-testbed`` profile.

    Every file found is read (and checked) when the source is made.

    Device ids:

    * ``device_id=None`` (default): one device per file, ``skab-<experiment>``
      (``skab-valve1-0``), each with its own recorded times;
    * a string with ``{experiment}``: one device per file, named by the template;
    * any other string: every file is one device, replayed back to back in
      file order (each file starts one second after the previous one ends;
      SKAB recordings overlap in time, and a device's clock must not run back).

    Args:
        path: a SKAB CSV file, or a folder searched for ``*.csv`` recursively.
        device_id: see above.
        site: the site of the device(s), for topics.
        utc_offset_s: local time offset of the recording from UTC (see
            :func:`read_skab_csv`).
        rebase_to_ms: shift each device's times so its first row is at this
            instant (ms since the epoch), for replays "now"; gaps are kept.
        chunk_rows: at most this many rows per frame.
        profile: the ``skab-testbed`` profile as the caller already has it (default: read
            through ``pumpops.fleet``; the device agent passes its own light copy).

    Raises:
        NotFoundError: no such path or no CSV file under it.
        InputError: a file is malformed (file and line named).
        ConfigError: ``chunk_rows`` < 1 or a device id is not a valid identifier.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        device_id: str | None = None,
        site: str = "skoltech",
        utc_offset_s: int = 0,
        rebase_to_ms: int | None = None,
        chunk_rows: int = 1000,
        profile: ColumnProfile | None = None,
    ) -> None:
        if chunk_rows < 1:
            raise ConfigError("chunk_rows must be at least 1")
        self.path = Path(path)
        self.chunk_rows = chunk_rows
        self.site = site
        self.profile = profile or _skab_profile()
        tables = [
            read_skab_csv(
                f, experiment=self._experiment_name(f), utc_offset_s=utc_offset_s, profile=self.profile
            )
            for f in skab_files(self.path)
        ]
        self._replays: list[tuple[str, SkabTable]] = []
        if device_id is None or "{experiment}" in device_id:
            template = device_id or "skab-{experiment}"
            for table in tables:
                self._replays.append((template.format(experiment=_slug(table.experiment)), table))
                if rebase_to_ms is not None:
                    self._rebase(-1, rebase_to_ms - int(table.ts_ms[0]))
        else:
            shift = 0 if rebase_to_ms is None else rebase_to_ms - int(tables[0].ts_ms[0])
            for table in tables:
                if self._replays:
                    # Back to back: one second after the previous file's last row.
                    after = int(self._replays[-1][1].ts_ms[-1]) + 1000
                    shift = after - int(table.ts_ms[0])
                self._replays.append((device_id, table))
                self._rebase(-1, shift)
        for dev, _ in self._replays:
            if not _IDENT.fullmatch(dev):
                raise ConfigError(f"device id {dev!r} is not a valid identifier ({IDENT_PATTERN})")

    def _experiment_name(self, file: Path) -> str:
        if self.path.is_dir():
            relative = file.relative_to(self.path)
            if len(relative.parts) > 1:
                return relative.with_suffix("").as_posix()
        # A file directly in the folder (or given alone) keeps its folder's name,
        # so valve1/0.csv is "valve1/0" however the path was given.
        return f"{file.parent.name}/{file.stem}" if file.parent.name else file.stem

    def _rebase(self, i: int, shift_ms: int) -> None:
        dev, table = self._replays[i]
        if shift_ms:
            self._replays[i] = (dev, replace(table, ts_ms=_frozen(table.ts_ms + shift_ms)))

    def __repr__(self) -> str:
        return f"SkabCsvSource({str(self.path)!r}, files={len(self._replays)})"

    @property
    def devices(self) -> tuple[Device, ...]:
        """The devices this source yields frames for, in first-seen order."""
        from pumpops.fleet import Device  # noqa: PLC0415 - see TYPE_CHECKING above

        seen = dict.fromkeys(dev for dev, _ in self._replays)
        return tuple(Device(dev, self.site, SKAB_PROFILE_ID, SKAB_PROFILE_ID) for dev in seen)

    @property
    def experiments(self) -> tuple[SkabTable, ...]:
        """The parsed files, with the times the frames carry (after offset and rebase)."""
        return tuple(table for _, table in self._replays)

    def labels(self) -> tuple[SkabLabels, ...]:
        """Return the labels of every replayed file, aligned with the frames' timestamps."""
        return tuple(
            SkabLabels(dev, table.experiment, table.ts_ms, table.anomaly, table.changepoint)
            for dev, table in self._replays
        )

    def _frames(self) -> Iterator[Frame]:
        for dev, table in self._replays:
            for lo in range(0, table.n_rows, self.chunk_rows):
                hi = lo + self.chunk_rows
                yield Frame(dev, table.ts_ms[lo:hi], table.channels, table.values[lo:hi])
