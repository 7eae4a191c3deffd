"""Dataset snapshots: the exact arrays a run trained and was scored on, content-addressed by SHA-256.

A snapshot is a folder ``<workspace>/snapshots/<digest>/`` with two files:
``data.bin`` (every array, little-endian, C order, back to back) and
``header.json`` (canonical JSON: format, sensors, recordings, and for every
array its dtype, shape, offset and length, plus the SHA-256 of ``data.bin``).
The digest is the SHA-256 of ``header.json``'s bytes, so it covers every byte
of data. The same data always gives the same bytes and the same digest; a
snapshot is written once (atomically) and never changed.

The same bundle format (:func:`write_bundle` / :func:`read_bundle`) holds the
cached outputs of the features step.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pumpops.errors import IntegrityError, NotFoundError
from pumpops.pipeline._config import canonical_json

SNAPSHOT_FORMAT = "pumpops.snapshot/1"
_DTYPES = {"int64": "<i8", "float64": "<f8", "int8": "|i1", "bool": "|b1"}

Split = Literal["train", "test"]


@dataclass(frozen=True, slots=True)
class Recording:
    """The readings of one device (or one recording file) for one split.

    Attributes:
        device_id: the device, or the recording's name for files.
        split: ``train`` (normal data to fit and calibrate on) or ``test`` (holdout).
        ts_us: shape ``(M,)`` int64, µs since the epoch, increasing.
        values: shape ``(M, S)`` float64, canonical SI units, NaN where missing.
        anomaly: shape ``(M,)`` int8 labels, or None when the source has none.
    """

    device_id: str
    split: Split
    ts_us: np.ndarray
    values: np.ndarray
    anomaly: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class Dataset:
    """What a run saw: sensors, recordings, and a description of where they came from."""

    group: str
    sensors: tuple[str, ...]
    recordings: tuple[Recording, ...]
    meta: dict[str, Any] = field(default_factory=dict)


def _as_le(array: np.ndarray) -> tuple[str, bytes]:
    name = array.dtype.name
    if name not in _DTYPES:
        raise TypeError(f"unsupported dtype {name} in a bundle")
    return name, np.ascontiguousarray(array, dtype=np.dtype(_DTYPES[name])).tobytes()


def bundle_bytes(meta: dict[str, Any], arrays: Sequence[tuple[str, np.ndarray]]) -> tuple[bytes, bytes]:
    """Return ``(header, data)`` bytes for named arrays: deterministic for equal inputs.

    >>> header, data = bundle_bytes({"a": 1}, [("x", np.arange(3, dtype=np.int64))])
    >>> len(data), json.loads(header)["arrays"][0]["shape"]
    (24, [3])
    """
    entries = []
    chunks = []
    offset = 0
    for name, array in arrays:
        dtype, raw = _as_le(array)
        entries.append({"name": name, "dtype": dtype, "shape": list(array.shape), "offset": offset})
        chunks.append(raw)
        offset += len(raw)
    data = b"".join(chunks)
    header = canonical_json(
        {
            "meta": meta,
            "arrays": entries,
            "data_bytes": len(data),
            "data_sha256": hashlib.sha256(data).hexdigest(),
        }
    )
    return header, data


def write_bundle(folder: Path, meta: dict[str, Any], arrays: Sequence[tuple[str, np.ndarray]]) -> str:
    """Write ``header.json`` and ``data.bin`` into ``folder``; return the header's SHA-256."""
    header, data = bundle_bytes(meta, arrays)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.bin").write_bytes(data)
    (folder / "header.json").write_bytes(header)
    return hashlib.sha256(header).hexdigest()


def read_bundle(folder: Path) -> tuple[dict[str, Any], dict[str, np.ndarray], str]:
    """Read a bundle back, checking the data against the header.

    Returns:
        ``(meta, arrays by name, header SHA-256)``.

    Raises:
        NotFoundError: the folder holds no bundle.
        IntegrityError: the data does not match the header.
    """
    try:
        header = (folder / "header.json").read_bytes()
        data = (folder / "data.bin").read_bytes()
    except FileNotFoundError as exc:
        raise NotFoundError(f"no bundle in {folder}") from exc
    doc = json.loads(header)
    if len(data) != doc["data_bytes"] or hashlib.sha256(data).hexdigest() != doc["data_sha256"]:
        raise IntegrityError(f"{folder}/data.bin does not match its header")
    arrays = {}
    for entry in doc["arrays"]:
        dtype = np.dtype(_DTYPES[entry["dtype"]])
        count = int(np.prod(entry["shape"], dtype=np.int64))
        arr = np.frombuffer(data, dtype=dtype, count=count, offset=entry["offset"]).reshape(entry["shape"])
        arrays[entry["name"]] = arr.astype(np.dtype(entry["dtype"]))
    return doc["meta"], arrays, hashlib.sha256(header).hexdigest()


def _dataset_arrays(dataset: Dataset) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    records = []
    arrays: list[tuple[str, np.ndarray]] = []
    for i, rec in enumerate(dataset.recordings):
        records.append({"device_id": rec.device_id, "split": rec.split, "rows": int(rec.ts_us.shape[0])})
        arrays.append((f"{i}.ts_us", np.asarray(rec.ts_us, dtype=np.int64)))
        arrays.append((f"{i}.values", np.asarray(rec.values, dtype=np.float64)))
        if rec.anomaly is not None:
            arrays.append((f"{i}.anomaly", np.asarray(rec.anomaly, dtype=np.int8)))
    meta = {
        "format": SNAPSHOT_FORMAT,
        "group": dataset.group,
        "sensors": list(dataset.sensors),
        "recordings": records,
        "source": dataset.meta,
    }
    return meta, arrays


def snapshot_digest(dataset: Dataset) -> str:
    """Return the SHA-256 digest a dataset's snapshot has (without writing it)."""
    meta, arrays = _dataset_arrays(dataset)
    header, _ = bundle_bytes(meta, arrays)
    return hashlib.sha256(header).hexdigest()


def write_snapshot(root: Path, dataset: Dataset) -> tuple[str, Path, bool]:
    """Write a dataset under ``root/<digest>`` unless it is already there.

    Returns:
        ``(digest, folder, written)``; ``written`` is False when the snapshot existed.
    """
    meta, arrays = _dataset_arrays(dataset)
    header, data = bundle_bytes(meta, arrays)
    digest = hashlib.sha256(header).hexdigest()
    final = root / digest
    if (final / "header.json").is_file():
        return digest, final, False
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=root))
    try:
        (tmp / "data.bin").write_bytes(data)
        (tmp / "header.json").write_bytes(header)
        try:
            os.replace(tmp, final)
        except OSError:
            # Another run wrote the same snapshot first: same digest, same bytes.
            if not (final / "header.json").is_file():
                raise
            return digest, final, False
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return digest, final, True


def read_snapshot(folder: Path) -> Dataset:
    """Read a snapshot folder back into a :class:`Dataset`, checking its digest.

    Raises:
        NotFoundError: no snapshot there.
        IntegrityError: the bytes do not match the folder's name or header.
    """
    meta, arrays, digest = read_bundle(folder)
    if digest != folder.name:
        raise IntegrityError(f"snapshot {folder} has digest {digest}, not its folder name")
    recordings = []
    for i, rec in enumerate(meta["recordings"]):
        recordings.append(
            Recording(
                device_id=rec["device_id"],
                split=rec["split"],
                ts_us=arrays[f"{i}.ts_us"],
                values=arrays[f"{i}.values"],
                anomaly=arrays.get(f"{i}.anomaly"),
            )
        )
    return Dataset(
        group=meta["group"], sensors=tuple(meta["sensors"]), recordings=tuple(recordings), meta=meta["source"]
    )
