"""The pipeline config (``pipeline.toml``): what to train on, how, and where to log it.

Pure data and validation, no I/O except :func:`load_config` reading one file.
Every table forbids unknown keys; every bad value is a
:class:`~pumpops.errors.ConfigError` that names the key. ``docs/pipeline.md``
documents every key.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pumpops.errors import ConfigError
from pumpops.schema import CANONICAL_SENSORS

_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a time needs an offset, e.g. 2025-06-01T00:00:00Z")
    return value.astimezone(UTC)


def _check_sensors(value: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [s for s in value if s not in CANONICAL_SENSORS]
    if unknown:
        raise ValueError(f"unknown canonical sensor(s) {unknown}; known: {', '.join(CANONICAL_SENSORS)}")
    if len(set(value)) != len(value):
        raise ValueError("sensors repeat")
    return value


UtcTime = Annotated[datetime, AfterValidator(_utc)]
Sensors = Annotated[tuple[str, ...], AfterValidator(_check_sensors)]


class Interval(_Section):
    """A time interval ``[start, end)`` to leave out of training, optionally for one device."""

    start: UtcTime
    end: UtcTime
    device_id: str | None = Field(default=None, pattern=_ID)

    @model_validator(mode="after")
    def _order(self) -> Interval:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class HygieneConfig(_Section):
    """Which periods are left out of the training data, so faults are not learnt as normal."""

    ground_truth: Path | None = None
    exclude_categories: tuple[Literal["fault", "drift"], ...] = ("fault",)
    exclude_labelled: bool = True
    alarm_intervals: tuple[Interval, ...] = ()
    alarm_intervals_file: Path | None = None
    margin_s: float = Field(default=300.0, ge=0, le=7 * 86_400)


class StoreData(_Section):
    """Training data from the telemetry store: one device group over a time range."""

    source: Literal["store"]
    group: str = Field(pattern=_ID)
    devices: tuple[str, ...] = ()
    since: UtcTime
    until: UtcTime
    sensors: Sensors = ()
    database_url: str = ""
    hygiene: HygieneConfig = HygieneConfig()

    @model_validator(mode="after")
    def _order(self) -> StoreData:
        if self.until <= self.since:
            raise ValueError("until must be after since")
        return self


class FilesData(_Section):
    """Training data from SKAB-format CSV files: each file is one recording (one "device")."""

    source: Literal["files"]
    paths: tuple[Path, ...] = Field(min_length=1)
    format: Literal["skab"] = "skab"
    train_rows: int = Field(default=400, ge=0, le=10_000_000)
    include_unlabelled: bool = True
    utc_offset_s: int = Field(default=0, ge=-14 * 3600, le=14 * 3600)
    sensors: Sensors = ()
    hygiene: HygieneConfig = HygieneConfig()


class FeaturesConfig(_Section):
    """How raw readings become the regular rows, and the window features the detector computes."""

    resample_period_s: float = Field(default=1.0, gt=0, le=3600)
    max_gap_fill_s: float = Field(default=5.0, ge=0, le=86_400)
    min_segment_samples: int = Field(default=60, ge=2, le=10_000_000)
    window_samples: int = Field(default=30, ge=1, le=100_000)
    baseline_window_samples: int = Field(default=0, ge=0, le=1_000_000)
    score_window_samples: int = Field(default=1, ge=1, le=100_000)
    detrend: Sensors | None = None
    detrend_weight: float = Field(default=1.0, gt=0, le=10)

    @model_validator(mode="after")
    def _baseline(self) -> FeaturesConfig:
        if self.baseline_window_samples and self.baseline_window_samples <= self.window_samples:
            raise ValueError("baseline_window_samples must be 0 or larger than window_samples")
        return self


#: Detector arguments set by other sections, never in ``[detector.hyper]``.
_OWNED = {
    "sensors": "data.sensors",
    "seed": "seed",
    "window": "features.window_samples",
    "baseline_window": "features.baseline_window_samples",
    "score_window": "features.score_window_samples",
    "detrend": "features.detrend",
    "detrend_weight": "features.detrend_weight",
    "trim_z": "threshold.trim_z",
    "alarm_release": "smoothing.release_factor",
    "alarm_hold": "smoothing.hold_samples",
    "threshold_quantile": "threshold.quantile",
    "threshold_factor": "threshold.factor",
    "alarm_k": "smoothing.k",
    "alarm_n": "smoothing.n",
}


class DetectorConfig(_Section):
    """Which detector and its hyper-parameters (checked by the detector registry)."""

    kind: str = Field(default="pca_t2q", pattern=r"^[a-z0-9_]{1,32}$")
    hyper: dict[str, Any] = Field(default_factory=dict)

    @field_validator("hyper")
    @classmethod
    def _not_owned(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in sorted(value):
            if name in _OWNED:
                raise ValueError(f"{name!r} is not a hyper-parameter here: set {_OWNED[name]}")
        return value


class ThresholdConfig(_Section):
    """How each device's alarm threshold comes from its own normal period."""

    quantile: float = Field(default=0.995, gt=0.0, le=1.0)
    factor: float = Field(default=1.0, gt=0, le=100)
    trim_z: float = Field(default=0.0, ge=0, le=1000)


class SmoothingConfig(_Section):
    """Alarm smoothing: ``k`` of the last ``n`` rows above threshold raise it; hysteresis and hold end it."""

    k: int = Field(default=1, ge=1, le=10_000)
    n: int = Field(default=1, ge=1, le=10_000)
    release_factor: float = Field(default=1.0, gt=0, le=1.0)
    hold_samples: int = Field(default=0, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _k_le_n(self) -> SmoothingConfig:
        if self.k > self.n:
            raise ValueError("k must be <= n")
        return self


class EvaluationConfig(_Section):
    """The labelled holdout the model is scored on (optional), and which pumps it is reported on.

    ``split`` says which pumps the metrics come from: ``by_device`` fits the
    group model on some pumps and reports on the others (``holdout_devices``,
    or a seeded ``holdout_fraction`` of the pumps, spread over the makes);
    ``none`` reports on every pump, the fitted ones included; ``auto`` (the
    default) is ``by_device`` for fleet data with at least ``min_devices``
    pumps and ``none`` otherwise (SKAB files have their own held-out protocol,
    ``pumpops benchmark skab``). Held-out pumps are still calibrated on their
    own normal period, as a new pump of the group is.
    """

    enabled: bool = True
    since: UtcTime | None = None
    until: UtcTime | None = None
    ground_truth: Path | None = None
    label_categories: tuple[Literal["fault", "drift"], ...] = ("fault",)
    split: Literal["auto", "by_device", "none"] = "auto"
    #: device ids, or recording names of files data (``valve1/0``)
    holdout_devices: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")], ...] = ()
    holdout_fraction: float = Field(default=0.25, gt=0.0, lt=1.0)
    split_seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    min_devices: int = Field(default=4, ge=2, le=1_000_000)

    @model_validator(mode="after")
    def _order(self) -> EvaluationConfig:
        if (self.since is None) != (self.until is None):
            raise ValueError("give both since and until, or neither")
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError("until must be after since")
        if self.holdout_devices and self.split == "none":
            raise ValueError("holdout_devices is set but split is 'none': remove one of them")
        if len(set(self.holdout_devices)) != len(self.holdout_devices):
            raise ValueError("holdout_devices repeat")
        return self


#: Why ``output.tracking_uri`` is refused: a run logged elsewhere than the
#: registry cannot be registered, and ``models``/``validate`` read no pipeline file.
TRACKING_URI_MOVED = (
    "the tracking URI is a workspace setting, the same for train, models, validate and release: "
    "set tracking_uri in pumpops.toml, $PUMPOPS_TRACKING_URI or --tracking-uri, and remove it here"
)


class OutputConfig(_Section):
    """Where results go: the MLflow experiment and run name, the model folder.

    The tracking URI is not here: it is the workspace's (``tracking_uri`` in
    ``pumpops.toml``), so that a run is registered and read where it was logged.
    """

    experiment: str = Field(default="pumpops-training", min_length=1, max_length=200)
    run_name: str | None = Field(default=None, max_length=200)
    model_dir: Path | None = None
    log: bool = True

    @model_validator(mode="before")
    @classmethod
    def _no_tracking_uri(cls, data: Any) -> Any:
        if isinstance(data, dict) and "tracking_uri" in data:
            raise ValueError(TRACKING_URI_MOVED)
        return data


class PipelineConfig(_Section):
    """A whole ``pipeline.toml``."""

    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    data: Annotated[StoreData | FilesData, Field(discriminator="source")]
    features: FeaturesConfig = FeaturesConfig()
    detector: DetectorConfig = DetectorConfig()
    threshold: ThresholdConfig = ThresholdConfig()
    smoothing: SmoothingConfig = SmoothingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    output: OutputConfig = OutputConfig()

    def section_hash(self, *names: str) -> str:
        """Return the SHA-256 of the canonical JSON of some top-level sections.

        >>> cfg = PipelineConfig.model_validate({"data": {"source": "files", "paths": ["x"]}})
        >>> cfg.section_hash("detector") == cfg.section_hash("detector")
        True
        """
        payload = {name: self.model_dump(mode="json")[name] for name in names}
        return canonical_hash(payload)

    @property
    def config_hash(self) -> str:
        """SHA-256 of the whole config's canonical JSON (all defaults filled in)."""
        return canonical_hash(self.model_dump(mode="json"))


def canonical_json(value: Any) -> bytes:
    """Return deterministic JSON bytes (sorted keys, no spaces, UTF-8).

    >>> canonical_json({"b": 1, "a": [1.5, "x"]})
    b'{"a":[1.5,"x"],"b":1}'
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def canonical_hash(value: Any) -> str:
    """Return the SHA-256 hex digest of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def parse_config(
    data: dict[str, Any], *, source: str = "<config>", base_dir: Path | None = None
) -> PipelineConfig:
    """Validate a config mapping.

    Relative paths (``data.paths``, ``*.ground_truth``, ``alarm_intervals_file``,
    ``output.model_dir``) are taken relative to ``base_dir`` (the config file's folder).

    Raises:
        ConfigError: a key is unknown or a value is invalid; every problem is
            listed with its dotted key.
    """
    output = data.get("output")
    if isinstance(output, dict) and "tracking_uri" in output:
        raise ConfigError(f"invalid pipeline config {source}:\n  output.tracking_uri: {TRACKING_URI_MOVED}")
    try:
        config = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = list(err["loc"])
            if len(loc) > 2 and loc[0] == "data" and loc[1] in ("store", "files"):
                del loc[1]  # the tag pydantic adds for the discriminated union
            key = ".".join(str(p) for p in loc)
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"  {key}: {msg} (got {err.get('input')!r})")
        raise ConfigError(f"invalid pipeline config {source}:\n" + "\n".join(lines)) from exc
    return _resolve_paths(config, base_dir) if base_dir is not None else config


def _resolve_paths(config: PipelineConfig, base: Path) -> PipelineConfig:
    def fix(path: Path | None) -> Path | None:
        return None if path is None else (path if path.is_absolute() else base / path)

    def fix_hygiene(h: HygieneConfig) -> HygieneConfig:
        return h.model_copy(
            update={"ground_truth": fix(h.ground_truth), "alarm_intervals_file": fix(h.alarm_intervals_file)}
        )

    data = config.data
    if isinstance(data, FilesData):
        data = data.model_copy(
            update={"paths": tuple(fix(p) for p in data.paths), "hygiene": fix_hygiene(data.hygiene)}
        )
    else:
        data = data.model_copy(update={"hygiene": fix_hygiene(data.hygiene)})
    return config.model_copy(
        update={
            "data": data,
            "evaluation": config.evaluation.model_copy(
                update={"ground_truth": fix(config.evaluation.ground_truth)}
            ),
            "output": config.output.model_copy(update={"model_dir": fix(config.output.model_dir)}),
        }
    )


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a ``pipeline.toml``.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or is invalid.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read pipeline config {path}: {exc}") from exc
    return parse_config(data, source=str(path), base_dir=path.resolve().parent)
