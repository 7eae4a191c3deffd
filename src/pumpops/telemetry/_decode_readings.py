"""The reading-level checks of :func:`~pumpops.telemetry.decode`: columns, units, timestamps, values.

Pure: each function takes the message's arrays and limits and returns what is
kept and why the rest is rejected (see ``_codec``'s docstring for the order).

Cheap path (issue 18, profiled with ``benchmarks/ingest.py --workers 1 --profile``):
a message's columns are resolved once per (profile, sensor names and units)
into a :class:`_ColumnPlan` with its unit maps and physical ranges as arrays
(:func:`column_plan`, cached); a message whose every cell is present, finite,
in range and in order with known columns is judged in a handful of whole-array
operations (:func:`_judge_clean`). Anything else takes the full path, which
names every rejected reading. Both give the same result on the same input
(``tests/telemetry/test_decode_cheap_path.py``).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final

import numpy as np

from pumpops.errors import MessageRejected, UnitError
from pumpops.fleet import ManufacturerProfile
from pumpops.schema import (
    CANONICAL_SENSORS,
    CanonicalSensor,
    DeadLetter,
    ReadingBatch,
    Rejection,
    TelemetryMessage,
    affine_to,
)
from pumpops.telemetry._codec import DecodeLimits, DecodeResult

_EXAMPLES = 3  # examples per reason in a dead letter's detail
# Timestamps outside this many ms from the epoch cannot become int64 microseconds;
# they are far outside any sane clock skew, so they are clamped before numpy sees them.
_TS_CLAMP_MS = 2**62 // 1000
# What pumpops lets pint parse: unit names joined by * or / (or spaces), with
# single-digit powers. pint evaluates numbers in unit strings, so an input such
# as "m**9**9**9" from the network could otherwise keep it busy for a very long time.
_UNIT_EXPR = re.compile(
    r"^[A-Za-z_°µΩ%]+(?:(?:\*\*|\^)-?[1-9])?(?:\s*[*/ ]\s*[A-Za-z_°µΩ%]+(?:(?:\*\*|\^)-?[1-9])?)*$"
)
# Mistakes seen in the field, and what to write instead.
_UNIT_HINTS: Final[Mapping[str, str]] = {
    "g": "gn (standard gravity; in pint 'g' is the gram)",
    "G": "gn (standard gravity)",
    "psig": "psi (pumpops stores gauge pressure)",
    "psia": "psi, as gauge pressure (pumpops stores gauge pressure)",
    "barg": "bar (pumpops stores gauge pressure)",
    "RPM": "rpm",
    "rev/min": "rpm",
    "gpm": "gallon/minute",
    "GPM": "gallon/minute",
    "m3/h": "m**3/hour",
    "m3/hr": "m**3/hour",
    "lpm": "L/min",
    "C": "degC (in pint 'C' is the coulomb)",
    "F": "degF (in pint 'F' is the farad)",
}


@dataclass(slots=True)
class _Incoming:
    """One message on its way through :func:`decode`, and what is known about it so far."""

    topic: str
    payload: bytes
    now_us: int
    limits: DecodeLimits
    device_id: str | None = None
    msg_id: str | None = None

    def dead_letter(self, reason: str, detail: str) -> DeadLetter:
        payload = self.payload
        if len(payload) > self.limits.max_payload_bytes:
            # keeping all of a payload refused for its size would defeat the limit
            payload = payload[: self.limits.max_payload_bytes]
        return DeadLetter(
            topic=self.topic,
            payload=payload,
            reason=reason,
            detail=detail,
            received_at_us=self.now_us,
            device_id=self.device_id,
            msg_id=self.msg_id,
        )


@dataclass(slots=True)
class _Column:
    name: str
    unit: str
    sensor: CanonicalSensor | None = None
    scale: float = 1.0
    offset: float = 0.0
    reason: str | None = None
    detail: str = ""


def _resolve_column(name: str, unit: str, profile: ManufacturerProfile) -> _Column:
    col = _Column(name, unit)
    declared = profile.sensor(name)
    if declared is None:
        col.reason = "unknown_sensor"
        natives = ", ".join(s.native for s in profile.sensors)
        col.detail = (
            f"sensor {name!r} is not in profile {profile.id!r} (its sensors: {natives}; canonical names "
            f"are accepted too) — fix the device's configuration or the profile"
        )
        return col
    sensor = CANONICAL_SENSORS[declared.canonical]
    col.sensor = sensor
    outcome = _unit_map(unit, sensor.unit)
    if isinstance(outcome, tuple):
        col.scale, col.offset = outcome
        return col
    col.reason = outcome.reason
    as_in = f"; profile {profile.id!r} declares {declared.unit!r} for {declared.native!r}"
    col.detail = f"column {name!r} ({sensor.name}): {outcome.detail}{as_in}"
    return col


@dataclass(frozen=True, slots=True)
class _ColumnPlan:
    """A message's resolved columns and, as arrays, their unit maps and physical ranges."""

    profile: ManufacturerProfile
    columns: tuple[_Column, ...]
    all_known: bool  # every column is a profile sensor with a unit that converts
    scale: np.ndarray
    offset: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    sensors: tuple[str, ...]  # canonical names, in column order (all_known only)


_PLANS: dict[tuple[int, tuple[tuple[str, str], ...]], _ColumnPlan] = {}
_MAX_PLANS: Final = 4096  # distinct (profile, columns) layouts kept; the cache restarts beyond


def column_plan(profile: ManufacturerProfile, names_units: tuple[tuple[str, str], ...]) -> _ColumnPlan:
    """The resolved columns of a message (cached per profile object and columns).

    >>> from pumpops.fleet import load_profiles
    >>> plan = column_plan(load_profiles()["nordhav-multistage"], (("p_in", "bar"), ("T_brg", "degC")))
    >>> plan.sensors, plan.scale.tolist(), plan.offset.tolist()
    (('suction_pressure', 'bearing_temperature'), [100000.0, 1.0], [0.0, 273.15])
    """
    key = (id(profile), names_units)
    plan = _PLANS.get(key)
    if plan is not None and plan.profile is profile:
        return plan
    plan = _build_plan(profile, names_units)
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[key] = plan
    return plan


def _build_plan(profile: ManufacturerProfile, names_units: tuple[tuple[str, str], ...]) -> _ColumnPlan:
    columns = tuple(_resolve_column(name, unit, profile) for name, unit in names_units)
    all_known = all(c.reason is None and c.sensor is not None for c in columns)
    return _ColumnPlan(
        profile=profile,
        columns=columns,
        all_known=all_known,
        scale=np.array([c.scale for c in columns], dtype=np.float64),
        offset=np.array([c.offset for c in columns], dtype=np.float64),
        lo=np.array([c.sensor.minimum if c.sensor else -np.inf for c in columns], dtype=np.float64),
        hi=np.array([c.sensor.maximum if c.sensor else np.inf for c in columns], dtype=np.float64),
        sensors=tuple(c.sensor.name for c in columns if c.sensor is not None) if all_known else (),
    )


def _check_columns_unique(columns: Sequence[_Column]) -> None:
    seen: dict[str, str] = {}
    for col in columns:
        key = col.sensor.name if col.sensor is not None else col.name
        if key in seen:
            same = f" (both are {key})" if seen[key] != col.name else ""
            raise MessageRejected(
                "duplicate_sensor",
                f"columns {seen[key]!r} and {col.name!r} name the same sensor{same}; send each sensor once",
            )
        seen[key] = col.name


@dataclass(frozen=True, slots=True)
class _UnitProblem:
    reason: str
    detail: str


@lru_cache(maxsize=1024)
def _unit_map(unit: str, target: str) -> tuple[float, float] | _UnitProblem:
    """The affine map from ``unit`` to ``target``, or why there is none (cached either way)."""
    hint = _UNIT_HINTS.get(unit)
    did_you_mean = f"; did you mean {hint}?" if hint else ""
    if not _UNIT_EXPR.match(unit):
        return _UnitProblem(
            "unknown_unit",
            f"unit {unit!r} is not a unit expression pumpops reads (unit names joined by * or /, "
            f"powers like m**3){did_you_mean}",
        )
    try:
        affine_to(unit, unit)
    except UnitError:
        return _UnitProblem("unknown_unit", f"unit {unit!r} is unknown{did_you_mean}")
    try:
        scale, offset = affine_to(unit, target)
    except UnitError as exc:
        return _UnitProblem("wrong_unit", f"{exc}{did_you_mean}")
    return scale, offset


@dataclass(slots=True)
class _Tally:
    """Rejected readings per reason, with a few examples each."""

    counts: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def add(self, reason: str, count: int, examples: list[str], *, rows: int = 0, note: str = "") -> None:
        if count <= 0:
            return
        self.counts[reason] = self.counts.get(reason, 0) + count
        self.rows[reason] = self.rows.get(reason, 0) + rows
        got = self.examples.setdefault(reason, [])
        got.extend(examples[: _EXAMPLES - len(got)])
        if note and reason not in self.notes:
            self.notes[reason] = note

    def rejections(self) -> tuple[Rejection, ...]:
        out = []
        for reason, count in self.counts.items():
            rows = f" in {self.rows[reason]} row(s)" if self.rows[reason] else ""
            text = f"{count} reading(s){rows}, e.g. " + ", ".join(self.examples[reason])
            note = self.notes.get(reason)
            out.append(Rejection(reason=reason, detail=f"{text} ({note})" if note else text, count=count))
        return tuple(out)


def _iso(ts_ms: int) -> str:
    try:
        when = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return f"ts_ms={ts_ms}"
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _judge_readings(
    msg: _Incoming, wire: TelemetryMessage, plan: _ColumnPlan, has_non_finite: bool, *, cheap: bool = True
) -> DecodeResult:
    m, n = len(wire.ts_ms), len(wire.sensors)
    ts = _timestamps(wire.ts_ms)
    raw = _values(wire.values, m, n)
    if cheap and plan.all_known and not has_non_finite and m > 0 and n > 0:
        clean = _judge_clean(msg, wire, plan, ts, raw)
        if clean is not None:
            return clean
    columns = list(plan.columns)
    # null cells are "not sampled"; only NaN/Infinity literals (fallback parser) are non-finite readings
    present = ~(_null_mask(wire.values, m, n) if has_non_finite else np.isnan(raw))
    rejected = np.zeros((m, n), dtype=bool)
    tally = _Tally()

    # columns first: a sensor the profile lacks, or a unit that is unknown or of the wrong dimension
    for j, col in enumerate(columns):
        if col.reason is not None:
            tally.add(col.reason, int(np.count_nonzero(present[:, j])), [col.detail])
            rejected[:, j] |= present[:, j]

    # then rows: timestamps too far ahead or behind, repeated, or stepping back
    for reason, rows, note in _bad_rows(ts, msg.now_us, msg.limits):
        cells = present & rows[:, None] & ~rejected
        examples = [f"row {i} at {_iso(int(ts[i]))}" for i in np.flatnonzero(rows)[:_EXAMPLES]]
        tally.add(reason, int(np.count_nonzero(cells)), examples, rows=int(np.count_nonzero(rows)), note=note)
        rejected |= cells

    # then cells: non-finite, then physically impossible once in SI units
    with np.errstate(invalid="ignore", over="ignore"):
        si = raw * plan.scale + plan.offset
    bad = present & ~np.isfinite(raw) & ~rejected
    if bad.any():
        tally.add("non_finite", int(np.count_nonzero(bad)), _cell_examples(bad, columns, ts, raw, None))
        rejected |= bad
    with np.errstate(invalid="ignore"):
        outside = present & ~rejected & ~((si >= plan.lo) & (si <= plan.hi))
    if outside.any():
        examples = _cell_examples(outside, columns, ts, raw, si)
        tally.add("out_of_range", int(np.count_nonzero(outside)), examples)
        rejected |= outside

    keep_cells = present & ~rejected
    kept = np.where(keep_cells, si, np.nan)
    return _result(msg, wire=wire, columns=columns, ts=ts, kept=kept, present=present, tally=tally)


def _judge_clean(
    msg: _Incoming, wire: TelemetryMessage, plan: _ColumnPlan, ts: np.ndarray, raw: np.ndarray
) -> DecodeResult | None:
    """The result of a message with nothing to reject, or None (then the full path judges it).

    Nothing to reject: every cell present and finite, every row's timestamp in
    the window and after the previous row's, every value in its physical range.
    The result is the one the full path gives: all cells kept, no dead letter.
    """
    now_ms = msg.now_us // 1000
    limits = msg.limits
    if int(ts[-1]) > now_ms + int(limits.max_future_skew_s * 1000):
        return None  # increasing (checked below), so the last row is the latest
    if int(ts[0]) < now_ms - int(limits.max_past_age_s * 1000):
        return None
    if ts.shape[0] > 1 and not bool((ts[1:] > ts[:-1]).all()):
        return None
    with np.errstate(invalid="ignore", over="ignore"):
        si = raw * plan.scale + plan.offset
        # NaN (a null cell) and ±inf fail both comparisons; finite raw values can still
        # overflow to ±inf in SI, which the full path calls out of range, as here
        if not bool(((si >= plan.lo) & (si <= plan.hi)).all()) or not bool(np.isfinite(raw).all()):
            return None
    batch = ReadingBatch(
        device_id=wire.device_id,
        msg_id=wire.msg_id,
        payload_sha256=hashlib.sha256(msg.payload).hexdigest(),
        ts_us=ts * 1000,
        sensors=plan.sensors,
        values=si,
        received_at_us=msg.now_us,
        rejections=(),
    )
    return DecodeResult(msg.topic, batch, (), int(si.size), 0)


def _bad_rows(ts: np.ndarray, now_us: int, limits: DecodeLimits) -> list[tuple[str, np.ndarray, str]]:
    """Rows to reject for their timestamp, per reason, with a note on what to do."""
    now_ms = now_us // 1000
    future = ts > now_ms + int(limits.max_future_skew_s * 1000)
    stale = ts < now_ms - int(limits.max_past_age_s * 1000)
    in_window = ~(future | stale)
    lowest = np.iinfo(np.int64).min
    prev_max = np.full(ts.shape[0], lowest, dtype=np.int64)
    if ts.shape[0] > 1:
        # the latest timestamp among the earlier rows that are in the window
        prev_max[1:] = np.maximum.accumulate(np.where(in_window, ts, lowest))[:-1]
    return [
        (
            "future_timestamp",
            future,
            f"the hub's clock is {_iso(now_ms)}; allowed {_span(limits.max_future_skew_s)} ahead "
            f"(ingest.max_future_skew_s) — check the device's clock (NTP)",
        ),
        (
            "stale_timestamp",
            stale,
            f"the hub's clock is {_iso(now_ms)}; readings older than {_span(limits.max_past_age_s)} "
            f"(ingest.max_past_age_s) are refused — check the device's clock, or raise the limit to backfill",
        ),
        (
            "duplicate_timestamp",
            in_window & (ts == prev_max),
            "a timestamp may appear once per message; the first row with it is kept",
        ),
        (
            "out_of_order",
            in_window & (ts < prev_max),
            "timestamps must increase within a message; rows behind an earlier row are rejected",
        ),
    ]


def _span(seconds: float) -> str:
    """A duration for people.

    >>> _span(300), _span(2_592_000), _span(5400)
    ('300 s', '30 days', '1.5 h')
    """
    if seconds >= 2 * 86_400:
        return f"{seconds / 86_400:g} days"
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds:g} s"


def _timestamps(ts_ms: list[int]) -> np.ndarray:
    if ts_ms and (max(ts_ms) > _TS_CLAMP_MS or min(ts_ms) < -_TS_CLAMP_MS):
        ts_ms = [min(max(t, -_TS_CLAMP_MS), _TS_CLAMP_MS) for t in ts_ms]
    return np.array(ts_ms, dtype=np.int64)


def _values(values: list[list[float | None]], m: int, n: int) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float64).reshape(m, n)
    except OverflowError:  # only the stdlib fallback parser hands over ints beyond float range
        return np.array([[_as_float(v) for v in row] for row in values], dtype=np.float64).reshape(m, n)


def _as_float(value: float | None) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _null_mask(values: list[list[float | None]], m: int, n: int) -> np.ndarray:
    return np.array([[v is None for v in row] for row in values], dtype=bool).reshape(m, n)


def _json_number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _cell_examples(
    mask: np.ndarray, columns: list[_Column], ts: np.ndarray, raw: np.ndarray, si: np.ndarray | None
) -> list[str]:
    out = []
    for i, j in zip(*np.nonzero(mask), strict=True):
        col = columns[int(j)]
        where = f"{col.name} at {_iso(int(ts[i]))}"
        if si is None or col.sensor is None:
            out.append(f"{where}: {_json_number(float(raw[i, j]))}")
        else:
            s = col.sensor
            # name the value in both units, unless it was sent in the SI unit already
            same = (col.scale, col.offset) == (1.0, 0.0) and col.unit == s.unit
            value = (
                f"{raw[i, j]:.6g} {s.unit}"
                if same
                else f"{raw[i, j]:.6g} {col.unit} = {si[i, j]:.6g} {s.unit}"
            )
            out.append(
                f"{where}: {value}, outside the physical range "
                f"[{s.minimum:.6g}, {s.maximum:.6g}] {s.unit} of {s.name}"
            )
        if len(out) == _EXAMPLES:
            break
    return out


def _result(
    msg: _Incoming,
    *,
    wire: TelemetryMessage,
    columns: list[_Column],
    ts: np.ndarray,
    kept: np.ndarray,
    present: np.ndarray,
    tally: _Tally,
) -> DecodeResult:
    """Assemble the batch (kept cells only; NaN elsewhere) and the one dead letter, if any."""
    readings_in = int(np.count_nonzero(present))
    n_kept = int(np.count_nonzero(~np.isnan(kept)))
    n_rejected = readings_in - n_kept
    rejections = tally.rejections()
    letters: tuple[DeadLetter, ...] = ()
    if rejections:
        # the reason covering most readings names the dead letter; its detail lists them all
        main = max(rejections, key=lambda r: r.count)
        listed = "; ".join(f"{r.reason} ×{r.count}: {r.detail}" for r in rejections)
        summary = f"stored {n_kept} of {readings_in} readings, rejected {n_rejected}: {listed}"
        letters = (msg.dead_letter(main.reason, summary),)
    if readings_in > 0 and n_kept == 0:
        return DecodeResult(msg.topic, None, letters, readings_in, n_rejected)
    keep_rows = ~np.isnan(kept).all(axis=1)
    keep_cols = np.array([c.reason is None for c in columns], dtype=bool)
    batch = ReadingBatch(
        device_id=wire.device_id,
        msg_id=wire.msg_id,
        payload_sha256=hashlib.sha256(msg.payload).hexdigest(),
        ts_us=ts[keep_rows] * 1000,
        sensors=tuple(c.sensor.name for c, keep in zip(columns, keep_cols, strict=True) if keep and c.sensor),
        values=np.ascontiguousarray(kept[np.ix_(keep_rows, keep_cols)]),
        received_at_us=msg.now_us,
        rejections=rejections,
    )
    return DecodeResult(msg.topic, batch, letters, readings_in, n_rejected)
