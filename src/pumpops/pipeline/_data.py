"""Reading the data a run trains on: a store query by device group, or SKAB-format files.

The I/O shell of the snapshot step: it turns ``[data]`` (and the holdout range
of ``[evaluation]``) into a :class:`~pumpops.pipeline._snapshot.Dataset` in
canonical SI units. Nothing here decides what is normal; the features step
does that from the snapshot and the hygiene settings.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from pumpops.errors import ConfigError, InputError
from pumpops.fleet import get_profile
from pumpops.pipeline._config import FilesData, PipelineConfig, StoreData
from pumpops.pipeline._snapshot import Dataset, Recording
from pumpops.schema import CANONICAL_SENSORS, affine_to
from pumpops.sources import SKAB_PROFILE_ID, read_skab_csv, skab_files
from pumpops.store import TelemetryStore


def _us(value: datetime) -> int:
    return round(value.timestamp() * 1_000_000)


def load_store_dataset(config: PipelineConfig, store: TelemetryStore) -> Dataset:
    """Query one device group's readings: training range, plus the holdout range if configured.

    Raises:
        ConfigError: the group has no devices, a listed device is not in it,
            or its devices do not share the requested sensors.
    """
    data = config.data
    if not isinstance(data, StoreData):
        raise TypeError("load_store_dataset needs a store [data] section")
    devices = [d for d in store.devices() if d.group == data.group]
    if data.devices:
        known = {d.device_id for d in devices}
        missing = [d for d in data.devices if d not in known]
        if missing:
            raise ConfigError(f"data.devices: {missing} are not registered devices of group {data.group!r}")
        devices = [d for d in devices if d.device_id in set(data.devices)]
    if not devices:
        raise ConfigError(f"data.group: no registered devices in group {data.group!r}")
    sensors = data.sensors
    if not sensors:
        profile = get_profile(devices[0].profile_id)
        sensors = tuple(s.canonical for s in profile.sensors)
    ranges: list[tuple[str, int, int]] = [("train", _us(data.since), _us(data.until))]
    ev = config.evaluation
    if ev.enabled and ev.since is not None and ev.until is not None:
        ranges.append(("test", _us(ev.since), _us(ev.until)))
    recordings = []
    for device in sorted(devices, key=lambda d: d.device_id):
        for split, since_us, until_us in ranges:
            frame = store.query(device.device_id, sensors=sensors, since_us=since_us, until_us=until_us)
            if tuple(frame.sensors) != tuple(sensors):
                raise ConfigError(
                    f"device {device.device_id} returned sensors {list(frame.sensors)}, not {list(sensors)}"
                )
            recordings.append(
                Recording(
                    device_id=device.device_id,
                    split=split,  # type: ignore[arg-type]
                    ts_us=np.asarray(frame.ts_us, dtype=np.int64),
                    values=np.asarray(frame.values, dtype=np.float64),
                )
            )
    meta = {"source": "store", "group": data.group, "ranges_us": [list(r) for r in ranges]}
    return Dataset(group=data.group, sensors=tuple(sensors), recordings=tuple(recordings), meta=meta)


def load_files_dataset(config: PipelineConfig) -> Dataset:
    """Read SKAB-format files: the first ``train_rows`` rows train, the labelled rest is the holdout.

    Raises:
        NotFoundError: a path does not exist or holds no CSV file.
        InputError: a file is malformed.
        ConfigError: a requested sensor is not in the files.
    """
    data = config.data
    if not isinstance(data, FilesData):
        raise TypeError("load_files_dataset needs a files [data] section")
    profile = get_profile(SKAB_PROFILE_ID)
    available = [s.canonical for s in profile.sensors]
    sensors = data.sensors or tuple(available)
    missing = [s for s in sensors if s not in available]
    if missing:
        raise ConfigError(f"data.sensors: {missing} are not in SKAB files (they have {available})")
    conversions = []
    for name in sensors:
        sensor = profile.sensor(name)
        assert sensor is not None  # checked against `available` above
        conversions.append((available.index(name), *affine_to(sensor.unit, CANONICAL_SENSORS[name].unit)))
    recordings = []
    seen: set[str] = set()
    read: set[Path] = set()
    for root in data.paths:
        base = root if root.is_dir() else root.parent
        for path in skab_files(root):
            if path.resolve() in read:
                continue  # the same file reached through two paths
            read.add(path.resolve())
            name = path.relative_to(base).with_suffix("").as_posix()
            if name in seen:  # another file of the same name under another path: keep both
                name = f"{base.name}/{name}"
            seen.add(name)
            table = read_skab_csv(path, experiment=name, utc_offset_s=data.utc_offset_s, profile=profile)
            if table.anomaly is None and not data.include_unlabelled:
                continue
            values = np.column_stack(
                [table.values[:, j] * scale + offset for j, scale, offset in conversions]
            )
            ts_us = np.asarray(table.ts_ms, dtype=np.int64) * 1000
            anomaly = None if table.anomaly is None else np.asarray(table.anomaly, dtype=np.int8)
            cut = (
                table.n_rows
                if (data.train_rows == 0 or anomaly is None)
                else min(data.train_rows, table.n_rows)
            )
            recordings.append(
                Recording(
                    name, "train", ts_us[:cut], values[:cut], None if anomaly is None else anomaly[:cut]
                )
            )
            if anomaly is not None and cut < table.n_rows and config.evaluation.enabled:
                recordings.append(Recording(name, "test", ts_us[cut:], values[cut:], anomaly[cut:]))
    if not recordings:
        raise InputError(f"data.paths: no usable recordings in {[str(p) for p in data.paths]}")
    meta = {"source": "files", "format": data.format, "train_rows": data.train_rows}
    return Dataset(group=SKAB_PROFILE_ID, sensors=tuple(sensors), recordings=tuple(recordings), meta=meta)


def read_intervals_file(path: Path) -> list[dict[str, Any]]:
    """Read an alarm-interval file: a JSON list of ``{"start", "end", "device_id"?}`` objects.

    ``{"intervals": [...]}`` is accepted too.

    Raises:
        ConfigError: the file cannot be read or is not such a list.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read alarm intervals {path}: {exc}") from exc
    items = doc.get("intervals") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise ConfigError(f"{path}: expected a JSON list of intervals")
    return items


def read_ground_truth(path: Path) -> list[dict[str, Any]]:
    """Read a ground-truth file (``pumpops.ground-truth/1``) and return its events.

    Raises:
        ConfigError: the file cannot be read or is not in that format.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        events = doc["events"]
        for e in events:
            int(e["start_ms"]), int(e["end_ms"]), str(e["device_id"]), str(e["category"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read ground truth {path}: {exc}") from exc
    return list(events)


def read_ground_truth_makes(path: Path) -> dict[str, str]:
    """The make (profile id) of each device a ground-truth file lists (``devices[].profile``).

    Raises:
        ConfigError: the file cannot be read.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read ground truth {path}: {exc}") from exc
    devices = doc.get("devices", []) if isinstance(doc, dict) else []
    return {
        str(d["device_id"]): str(d["profile"])
        for d in devices
        if isinstance(d, dict) and "device_id" in d and "profile" in d
    }
