"""Typed settings: ``<workspace>/pumpops.toml`` overridden by ``PUMPOPS_*`` variables.

Precedence, highest first: keyword arguments to :func:`load_settings` (from
the command line), environment variables (``PUMPOPS_DATABASE_URL``,
``PUMPOPS_BROKER_URL``, nested with a double underscore as in
``PUMPOPS_INGEST__BATCH_MAX_MESSAGES``), the workspace's ``pumpops.toml``,
then the defaults below. Everything is validated at load; a bad value is a
:class:`~pumpops.errors.ConfigError` naming the key and the source.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from pumpops.errors import ConfigError

SETTINGS_FILE = "pumpops.toml"
EMBEDDED_BROKER = "embedded"
_BROKER_URL = re.compile(r"^mqtts?://[^:/\s]+(:\d{1,5})?/?$")


class IngestSettings(BaseModel):
    """How the ingest service reads the broker and validates messages."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(default="pumpops-ingest", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    shared_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,64}$")
    max_payload_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)  # bytes
    max_future_skew_s: float = Field(default=300.0, ge=0, le=86_400)
    max_past_age_s: float = Field(default=5 * 365 * 86_400.0, gt=0)
    # How far an agent message's seq may exceed its device's stored maximum (dead letter seq_jump).
    max_seq_jump: int = Field(default=1_000_000, ge=1, le=2**62)  # sequence numbers
    batch_max_messages: int = Field(default=500, ge=1, le=100_000)
    batch_max_wait_s: float = Field(default=0.05, gt=0, le=10)
    reconnect_min_s: float = Field(default=0.5, gt=0, le=60)
    reconnect_max_s: float = Field(default=30.0, gt=0, le=3600)
    # A store call of agent messages that took longer than this to commit has its rows' receipt
    # time moved to after the commit, so incremental monitoring (which re-reads monitoring.overlap_s
    # of receipt time) cannot miss them; must be below monitoring.overlap_s.
    redate_after_s: float = Field(default=10.0, gt=0, le=3600)  # s


class BrokerIdentitySettings(BaseModel):
    """One hub service's MQTT identity: a user name and the file holding its password."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
    # First line: the password (kept out of pumpops.toml); relative to the workspace.
    password_file: Path


class BrokerAuthSettings(BaseModel):
    """How the hub's services prove themselves to the broker (``[broker_auth]``; docs/security.md).

    Paths are relative to the workspace. TLS files need an ``mqtts://`` broker;
    the broker's host name is always checked against its certificate.

    Attributes:
        ca_file: PEM of the CA that signed the broker's certificate (None: the system's CAs).
        cert_file: a client certificate, PEM (mutual TLS), with ``key_file``.
        key_file: its private key, PEM.
        ingest: the identity ingest connects as (``hub-ingest``).
        rollout: the identity that publishes ``desired`` (``hub-rollout``).
        events: the identity that publishes lifecycle events (``hub-events``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    ingest: BrokerIdentitySettings | None = None
    rollout: BrokerIdentitySettings | None = None
    events: BrokerIdentitySettings | None = None

    @model_validator(mode="after")
    def _pairs(self) -> BrokerAuthSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give both broker_auth.cert_file and broker_auth.key_file, or neither")
        return self


class TufSettings(BaseModel):
    """The hub's TUF repository: signature lifetimes (days) and thresholds (signatures) per role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    root_expiry_days: int = Field(default=365, ge=1, le=3650)
    targets_expiry_days: int = Field(default=90, ge=1, le=3650)
    snapshot_expiry_days: int = Field(default=7, ge=1, le=365)
    timestamp_expiry_days: int = Field(default=1, ge=1, le=365)
    root_threshold: int = Field(default=1, ge=1, le=16)  # signatures
    targets_threshold: int = Field(default=1, ge=1, le=16)  # signatures
    snapshot_threshold: int = Field(default=1, ge=1, le=16)  # signatures
    timestamp_threshold: int = Field(default=1, ge=1, le=16)  # signatures
    delegate_per_group: bool = True


class MonitoringSettings(BaseModel):
    """When fleet monitoring calls a device group drifting (``docs/monitoring.md``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The look-back of agent message time (ts_ms) in which a device counts as reporting.
    window_s: float = Field(default=6 * 3600.0, gt=0, le=30 * 86_400)  # s
    # Drifting devices needed, as a fraction of the group's devices reporting in the window.
    min_fraction: float = Field(default=0.3, gt=0, le=1)
    min_devices: int = Field(default=2, ge=1, le=1_000_000)  # drifting devices needed, at least
    # Receipt time before the newest one read that each incremental step re-reads (as ids) so
    # that a batch committed after a later-received one is not missed; above ingest.redate_after_s.
    overlap_s: float = Field(default=30.0, gt=0, le=3600)  # s


class RetrainSettings(BaseModel):
    """The retraining policy (``[retrain]`` in ``pumpops.toml``; ``docs/retrain.md``).

    Attributes:
        enabled: whether the hub retrains by itself (``pumpops retrain run`` works regardless).
        on_drift: retrain a group while it has an open fleet drift alert.
        schedule_h: retrain every this many hours (None: no schedule).
        feedback_min: retrain once this many new technician verdicts arrived since the last run.
        cooldown_h: never start two runs for a group closer than this.
        window_h: train on this many hours of the group's most recent data.
        targets: target profiles to release for (each group's devices install one of them).
        waves: rollout waves in percent of the group, cumulative.
        approval_required: hold a validated candidate until ``pumpops approve``.
        detector: the detector kind of retrained models.
        window_samples: rows per model window.
        baseline_window_samples: rows of the slow mean the temperatures are detrended
            against (0: none; see ``docs/pipeline.md``).
        threshold_quantile: quantile of normal scores for the alarm threshold ...
        threshold_factor: ... times this factor.
        smoothing_k: rows above threshold needed ...
        smoothing_n: ... out of this many to raise an alarm.
        alarm_margin_s: alarm periods are left out of training with this margin.
        min_post_drift_s: a drift-triggered run waits until this many seconds of data
            followed the drift's onset, then trains on post-drift data only.
        post_drift_holdout_fraction: the newest this fraction of the post-drift data is
            never trained on: the post-drift gate judges false alarms on it.
        post_drift_far_tolerance: the post-drift gate passes when the candidate's
            false-alarm fraction on the post-drift hold-out is at most the pre-drift
            level plus this (a fraction: 0.01 = 1 percentage point).
        recalibrate_local: the hub answers a device-local shift by signing a
            recalibration order for that device (tier 1; ``docs/retrain.md``).
        recalibration_ttl_s: a signed recalibration order expires this long after it was
            signed (an agent that first sees it later refuses it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    on_drift: bool = True
    schedule_h: float | None = Field(default=None, gt=0)
    feedback_min: int = Field(default=20, ge=1)
    cooldown_h: float = Field(default=6.0, ge=0)
    window_h: float = Field(default=6.0, gt=0, le=24 * 90)
    targets: tuple[str, ...] = ("x86_64-ipc",)
    waves: tuple[int, ...] = (10, 50, 100)
    approval_required: bool = False
    detector: str = "pca_t2q"
    window_samples: int = Field(default=30, ge=1)
    baseline_window_samples: int = Field(default=0, ge=0)
    threshold_quantile: float = Field(default=0.995, gt=0, le=1)
    threshold_factor: float = Field(default=1.2, gt=0)
    smoothing_k: int = Field(default=5, ge=1)
    smoothing_n: int = Field(default=10, ge=1)
    alarm_margin_s: float = Field(default=300.0, ge=0)
    min_post_drift_s: float = Field(default=1800.0, ge=0)
    post_drift_holdout_fraction: float = Field(default=0.3, gt=0, lt=1)
    post_drift_far_tolerance: float = Field(default=0.01, ge=0, le=1)
    recalibrate_local: bool = True
    recalibration_ttl_s: float = Field(default=86_400.0, gt=0)


class RetentionSettings(BaseModel):
    """How long stored data lives (``[retention]`` in ``pumpops.toml``; ``docs/operations.md``).

    Days per kind; 0 keeps that kind forever; otherwise at least 1 (a day is
    the partition size on PostgreSQL). The audit trail has no setting: it is
    never pruned.

    Attributes:
        readings_days: raw readings, by their time.
        agent_messages_days: agent alarms, drift reports and state, by their time.
        summaries_days: agent summaries, by their time.
        dead_letters_days: dead letters, by receipt.
        events_days: lifecycle events.
        interval_s: seconds between the hub's retention steps (``hub serve --services``).
        batch_rows: rows per DELETE transaction.
        partitions_ahead_days: PostgreSQL: daily partitions created ahead of today.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    readings_days: float = Field(default=30.0, ge=0, le=36_500)
    agent_messages_days: float = Field(default=90.0, ge=0, le=36_500)
    summaries_days: float = Field(default=365.0, ge=0, le=36_500)
    dead_letters_days: float = Field(default=30.0, ge=0, le=36_500)
    events_days: float = Field(default=365.0, ge=0, le=36_500)
    interval_s: float = Field(default=3600.0, ge=10, le=7 * 86_400)
    batch_rows: int = Field(default=10_000, ge=100, le=1_000_000)
    partitions_ahead_days: int = Field(default=7, ge=1, le=366)

    @model_validator(mode="after")
    def _whole_days(self) -> RetentionSettings:
        for name in ("readings", "agent_messages", "summaries", "dead_letters", "events"):
            days = getattr(self, f"{name}_days")
            if 0 < days < 1:
                raise ValueError(
                    f"{name}_days = {days}: keep a kind at least 1 day (the partition size on "
                    f"PostgreSQL), or 0 to keep it forever"
                )
        return self


class TrainingSettings(BaseModel):
    """Where many groups train at once (``[training]`` in ``pumpops.toml``; ``docs/scaling.md``).

    Attributes:
        scheduler: ``local`` (a Dask cluster of worker processes for the run, no service),
            ``sequential`` (one group after another in the process), or a Dask scheduler
            address (``tcp://host:8786``) whose workers see the same workspace, store and tracking.
        workers: processes of the local cluster; 0 = one per CPU core.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheduler: str = Field(default="local", pattern=r"^(local|sequential|(tcp|tls)://[^\s/]+(:\d{1,5})?/?)$")
    workers: int = Field(default=0, ge=0, le=1024)  # processes


def default_actor() -> str:
    """``user@host`` of this process: who audit entries written from here are attributed to."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        user = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname() or 'localhost'}"


class Settings(BaseSettings):
    """Everything a pumpops process needs to know about where things are."""

    model_config = SettingsConfigDict(
        env_prefix="PUMPOPS_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    workspace: Path = Field(default=Path("."))
    database_url: str = ""
    # MLflow tracking URI of the registry and of every training run; empty = the
    # workspace's mlflow.db (see resolved_tracking_uri). $PUMPOPS_MLFLOW_URI is read too.
    tracking_uri: str = ""
    broker_url: str = EMBEDDED_BROKER
    topic_prefix: str = Field(default="pumpops/v1", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
    # Not 1883: that is the port of a system Mosquitto on the same machine (issue 11, friction 4).
    embedded_broker_port: int = Field(default=1884, ge=1, le=65535)
    profiles_dirs: tuple[Path, ...] = ()
    ingest: IngestSettings = IngestSettings()
    # TLS files and the hub services' identities for a secured broker (docs/security.md).
    broker_auth: BrokerAuthSettings = BrokerAuthSettings()
    tuf: TufSettings = TufSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    retrain: RetrainSettings = RetrainSettings()
    retention: RetentionSettings = RetentionSettings()
    training: TrainingSettings = TrainingSettings()
    # Who audit entries are attributed to (a --actor flag overrides it); never empty.
    actor: str = Field(default_factory=default_actor, min_length=1, max_length=256)

    @field_validator("actor")
    @classmethod
    def _check_actor(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("actor must not be blank")
        return value

    @field_validator("broker_url")
    @classmethod
    def _check_broker(cls, value: str) -> str:
        if value != EMBEDDED_BROKER and not _BROKER_URL.match(value):
            raise ValueError(
                f"broker_url must be 'embedded', mqtt://host:port or mqtts://host:port, not {value!r}"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError(
                f"database_url must start with sqlite:// or postgresql+psycopg://, not {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _check_broker_auth(self) -> Settings:
        auth = self.broker_auth
        if not self.broker_url.startswith("mqtts://") and any((auth.ca_file, auth.cert_file, auth.key_file)):
            raise ValueError("broker_auth.ca_file, cert_file and key_file need an mqtts:// broker_url")
        return self

    @model_validator(mode="after")
    def _check_overlap(self) -> Settings:
        if self.ingest.redate_after_s >= self.monitoring.overlap_s:
            raise ValueError(
                f"ingest.redate_after_s ({self.ingest.redate_after_s:g} s) must be below "
                f"monitoring.overlap_s ({self.monitoring.overlap_s:g} s): a commit slower than the "
                "overlap would be missed by incremental monitoring"
            )
        return self

    def workspace_path(self, path: Path) -> Path:
        """``path`` as an absolute path (relative paths are relative to the workspace)."""
        return path if path.is_absolute() else (self.workspace / path).resolve()

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite inside the workspace."""
        return self.database_url or f"sqlite:///{(self.workspace / 'pumpops.db').resolve()}"

    @property
    def resolved_tracking_uri(self) -> str:
        """The MLflow tracking URI every command uses: the setting, else SQLite in the workspace."""
        legacy = os.environ.get("PUMPOPS_MLFLOW_URI", "")
        return self.tracking_uri or legacy or f"sqlite:///{(self.workspace / 'mlflow.db').resolve()}"

    @classmethod
    def settings_customise_sources(  # noqa: D102 - pydantic-settings hook
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file is read by load_settings and passed as the lowest
        # priority through _FileSource; no .env files: settings live in the workspace.
        return (init_settings, env_settings, _FileSource(settings_cls))


# The workspace file's contents for the load_settings call in progress; a
# context variable because pydantic-settings builds sources from the class.
_FILE_DATA: ContextVar[dict[str, Any]] = ContextVar("pumpops_settings_file", default={})  # noqa: B039


class _FileSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return _FILE_DATA.get().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_DATA.get())


def workspace_folder(workspace: Path | None = None) -> Path:
    """The workspace folder as an absolute path: the argument, ``$PUMPOPS_WORKSPACE`` or the cwd.

    Resolved once, where the command line is read, so that child processes and
    later ``chdir`` calls see the same folder.
    """
    return Path(workspace or os.environ.get("PUMPOPS_WORKSPACE") or ".").resolve()


def load_settings(workspace: Path | None = None, **overrides: Any) -> Settings:
    """Load settings for a workspace.

    Args:
        workspace: the workspace folder; defaults to ``$PUMPOPS_WORKSPACE`` or
            the current directory.
        **overrides: values from the command line, which win over everything.

    Raises:
        ConfigError: the settings file cannot be read or a value is invalid.
    """
    folder = workspace_folder(workspace)
    path = folder / SETTINGS_FILE
    file_data: dict[str, Any] = {}
    if path.exists():
        try:
            file_data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
    token = _FILE_DATA.set(file_data)
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(workspace=folder, **clean)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            lines.append(f"  {key}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError(
            f"invalid settings (from {path}, PUMPOPS_* variables or the command line):\n" + "\n".join(lines)
        ) from exc
    finally:
        _FILE_DATA.reset(token)


def init_workspace(folder: Path, *, database_url: str = "", broker_url: str = EMBEDDED_BROKER) -> Path:
    """Create a workspace folder with a commented ``pumpops.toml``; return its path.

    Raises:
        ConfigError: a settings file already exists there.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SETTINGS_FILE
    if path.exists():
        raise ConfigError(f"{path} already exists; edit it or choose another folder")
    db_line = (
        f'database_url = "{database_url}"'
        if database_url
        else (
            '# database_url = "postgresql+psycopg://user@127.0.0.1:5432/pumpops"  '
            "# default: SQLite file pumpops.db here"
        )
    )
    path.write_text(
        "# pumpops workspace settings; PUMPOPS_* environment variables override them.\n"
        f"{db_line}\n"
        '# tracking_uri = "http://mlflow.example:5000"  # MLflow; default: SQLite mlflow.db here\n'
        f'broker_url = "{broker_url}"  # "embedded" or mqtt://host:port\n'
        'topic_prefix = "pumpops/v1"\n'
        "\n[ingest]\n"
        'client_id = "pumpops-ingest"  # stable across restarts: the broker keeps its session\n'
        "max_payload_bytes = 262144\n"
        "batch_max_messages = 500\n",
        encoding="utf-8",
    )
    return path
