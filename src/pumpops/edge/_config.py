"""The agent's settings (``agent.toml``): validated, with units in the names, unknown keys refused.

A minimal file::

    [agent]
    device_id = "p-0001"
    site = "north-sea-7"
    group = "acme-ansi"
    profile = "acme-ansi"        # manufacturer profile: native sensor names and units
    target = "x86_64-ipc"
    state_dir = "/var/lib/pumpops-agent"

    [broker]
    url = "mqtt://hub.example:1883"   # "none": no uplink at all

    [repository]
    url = "https://hub.example/tuf/"  # or folder = "/media/usb/pumpops-repo"
    trusted_root = "/etc/pumpops/root.json"

    [source]
    kind = "simulator"               # or "skab" (CSV replay)

Relative paths are relative to the folder of the file. Every key is in
``docs/edge.md`` ("Agent settings").
Validated with msgspec (about 1 MiB resident; pydantic cost the device process 10 to 20 MiB):
unknown keys are refused, types and bounds checked, and the error names the key.
May import: errors, msgspec, the stdlib.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from pumpops.errors import ConfigError

__all__ = [
    "AgentConfig",
    "AgentSection",
    "BrokerSection",
    "RepositorySection",
    "SimEventSpec",
    "SourceSection",
    "UploadSection",
    "load_agent_config",
    "starting_agent_toml",
    "write_starting_agent_toml",
]

_Ident = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
_Positive = Annotated[float, Meta(gt=0)]
_NonNegative = Annotated[float, Meta(ge=0)]


class _Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A section: unknown keys refused, types and bounds checked when the file is read (msgspec)."""


class AgentSection(_Strict, frozen=True, kw_only=True):
    """Who the device is and how the agent paces itself.

    Attributes:
        device_id: the pump's id (as the hub and the bundles' calibrations know it).
        site: its site (a topic segment).
        group: its device group: which models it installs.
        profile: its manufacturer profile (native sensor names and units).
        target: its target platform profile (which bundle build it installs).
        state_dir: where the agent keeps slots, outbox, alarm log, TUF metadata.
        clock: ``wall`` (production: intervals in real time) or ``data`` (intervals in
            the readings' own time: simulations and replays run hours in seconds).
        refresh_interval_s: how often to check the repository for a new model.
        update_timeout_s: an update check (a child process) running longer is stopped
            (a repository that stalls); it is tried again at the next check.
        max_model_age_h: past this long without a successful update check the agent
            reports ``stale`` (and keeps detecting).
        summary_interval_s: how often to send score and alarm statistics.
        drift_report_rows: rows between scheduled drift reports (plus one whenever a test fires).
        drift_window_rows: rows in the live window compared with the reference bins.
        calibration_rows: rows of normal operation gathered when commissioning.
        drift_confirm_s: a shift is called drift only once it also stood this long, in the
            readings' seconds (``ShiftJudge.confirm_s``): with a drift report every 10 minutes,
            3600 lets a developing fault show its growth first (0: two reports in a row suffice).
        sample_period_s: the model's row period when the bundle does not state it.
        max_gap_fill_s: a sensor silent up to this long keeps its last value; longer
            is a gap and the window starts again.
        state_interval_s: at most this often a changed state is reported (and at
            every change of model, health, calibration, staleness or drift status).
        health_windows: recent windows the health check scores.
        resume_save_interval_s: how often the last window and alarm state are saved
            (one small file, replaced atomically), so a restart resumes scoring at once.
        resume_max_age_s: a saved window older than this (in the readings' time) is not
            restored: the agent reports ``warming_up`` until its window has refilled.
            0: never restore.
        metrics_textfile: where the agent writes its counters at each state report, in
            node_exporter's textfile format (a ``*.prom`` file, replaced atomically;
            relative: under ``state_dir``). ``""``: not written.
    """

    device_id: _Ident
    site: _Ident
    group: _Ident
    profile: _Ident
    target: _Ident
    state_dir: Path
    clock: Literal["wall", "data"] = "wall"
    refresh_interval_s: _Positive = 3600.0
    update_timeout_s: _Positive = 600.0
    max_model_age_h: _Positive = 72.0
    summary_interval_s: _Positive = 600.0
    drift_report_rows: Annotated[int, Meta(ge=10)] = 3600
    drift_window_rows: Annotated[int, Meta(ge=10)] = 500
    calibration_rows: Annotated[int, Meta(ge=20)] = 1800
    drift_confirm_s: _NonNegative = 0.0
    sample_period_s: Annotated[float, Meta(gt=0, le=3600)] = 1.0
    max_gap_fill_s: _NonNegative = 5.0
    state_interval_s: _Positive = 60.0
    health_windows: Annotated[int, Meta(ge=1, le=4096)] = 32
    resume_save_interval_s: _Positive = 10.0
    resume_max_age_s: _NonNegative = 300.0
    metrics_textfile: Annotated[str, Meta(pattern=r"^$|\.prom$", max_length=4096)] = ""


class BrokerSection(_Strict, frozen=True, kw_only=True):
    """The uplink.

    Attributes:
        url: ``mqtt://host:port``, ``mqtts://host:port`` (TLS, the host name checked against
            the broker's certificate) or ``none`` (no uplink: alarms go to the local log only).
        topic_prefix: the topic prefix the hub uses.
        keepalive_s: MQTT keep-alive.
        publish_timeout_s: how long to wait for the broker's acknowledgement of one message.
        ca_file: PEM of the CA that signed the broker's certificate (absent: the system's CAs).
        cert_file: the device's client certificate, PEM (mutual TLS; with ``key_file``).
        key_file: its private key, PEM.
        username: the MQTT user name (absent: none).
        password_file: a file whose first line is the password (kept out of ``agent.toml``).
    """

    url: str = "none"
    topic_prefix: str = "pumpops/v1"
    keepalive_s: Annotated[int, Meta(ge=5, le=3600)] = 30
    publish_timeout_s: _Positive = 5.0
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    password_file: Path | None = None

    def __post_init__(self) -> None:
        if self.url != "none":
            scheme, sep, rest = self.url.partition("://")
            host, _, port = rest.rstrip("/").partition(":")
            if scheme not in ("mqtt", "mqtts") or not sep or not host or not (port == "" or port.isdigit()):
                raise ValueError(f"broker url {self.url!r} must be mqtt(s)://host:port or 'none'")
            if port and not 0 < int(port) < 65536:
                raise ValueError(f"broker url {self.url!r}: port {port} is not 1 to 65535")
        tls_files = (self.ca_file, self.cert_file, self.key_file)
        if not self.url.startswith("mqtts://") and any(f is not None for f in tls_files):
            raise ValueError("broker.ca_file, cert_file and key_file need an mqtts:// url")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give both broker.cert_file and broker.key_file (mutual TLS) or neither")
        if self.password_file is not None and self.username is None:
            raise ValueError("broker.password_file needs broker.username")

    @property
    def tls(self) -> bool:
        """Whether the link is TLS (``mqtts://``)."""
        return self.url.startswith("mqtts://")

    @property
    def host_port(self) -> tuple[str, int] | None:
        """``(host, port)``, or None without an uplink (default port 1883, 8883 for ``mqtts``)."""
        if self.url == "none":
            return None
        rest = self.url.partition("://")[2].rstrip("/")
        host, _, port = rest.partition(":")
        return host, int(port or (8883 if self.tls else 1883))

    def password(self) -> str | None:
        """The password read from ``password_file`` (first line, stripped), or None.

        Raises:
            ConfigError: the file cannot be read or is empty.
        """
        if self.password_file is None:
            return None
        try:
            text = self.password_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read broker.password_file {self.password_file}: {exc}") from exc
        if not text:
            raise ConfigError(f"broker.password_file {self.password_file} is empty")
        return text.splitlines()[0].strip()


class RepositorySection(_Strict, frozen=True, kw_only=True):
    """Where models come from (a TUF repository).

    Attributes:
        url: the hub's ``http(s)://.../tuf/``.
        folder: or a folder holding an exported repository (site mirror, removable media).
        trusted_root: the root metadata the device was provisioned with.
    """

    url: str | None = None
    folder: Path | None = None
    trusted_root: Path

    def __post_init__(self) -> None:
        if (self.url is None) == (self.folder is None):
            raise ValueError("give exactly one of repository.url and repository.folder")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"repository.url {self.url!r} must be http:// or https://")

    @property
    def location(self) -> str | Path:
        """The URL or the folder."""
        return self.url if self.url is not None else Path(str(self.folder))


class SimEventSpec(_Strict, frozen=True, kw_only=True):
    """A scheduled event of the simulator source, in seconds from the source's start."""

    kind: str
    start_s: _NonNegative
    duration_s: _Positive
    onset: Literal["sudden", "gradual"] = "sudden"
    severity: Annotated[float, Meta(gt=0, le=1)] = 1.0
    speed_ratio: float | None = None
    sensor: str | None = None
    offset: float | None = None


class SourceSection(_Strict, frozen=True, kw_only=True):
    """Where readings come from.

    Attributes:
        kind: ``simulator`` (the pump simulator, the device's profile) or ``skab`` (CSV replay).
        speed: source seconds per wall second (1: real time; 0: as fast as possible).
        seed: simulator seed.
        start: simulator start: ``now`` or an ISO 8601 UTC time.
        duration_s: how long the source runs (simulator; absent: endless).
        fault_rate_per_day: random faults per day (simulator).
        drift_rate_per_day: random benign drifts per day (simulator).
        events: scheduled faults and drifts (simulator).
        path: CSV file or folder (skab).
        chunk_s: source seconds per frame.
    """

    kind: Literal["simulator", "skab"]
    speed: _NonNegative = 1.0
    seed: Annotated[int, Meta(ge=0)] = 0
    start: str = "now"
    duration_s: _Positive | None = None
    fault_rate_per_day: _NonNegative = 0.0
    drift_rate_per_day: _NonNegative = 0.0
    events: tuple[SimEventSpec, ...] = ()
    path: Path | None = None
    chunk_s: _Positive = 10.0

    def __post_init__(self) -> None:
        if self.kind == "skab" and self.path is None:
            raise ValueError("source.path is required for kind = 'skab'")


class UploadSection(_Strict, frozen=True, kw_only=True):
    """What goes up besides alarms, summaries, drift reports and state (always sent).

    Attributes:
        raw_readings: also send raw readings (for retraining data), rate-limited.
        raw_max_rows_per_s: the limit, in rows per wall second (excess rows are counted, not sent).
    """

    raw_readings: bool = False
    raw_max_rows_per_s: _Positive = 10.0


class AgentConfig(_Strict, frozen=True, kw_only=True):
    """The whole ``agent.toml``."""

    agent: AgentSection
    broker: BrokerSection = msgspec.field(default_factory=BrokerSection)
    repository: RepositorySection
    source: SourceSection
    upload: UploadSection = msgspec.field(default_factory=UploadSection)
    outbox_max_bytes: Annotated[int, Meta(ge=10_000)] = 20_000_000


def _resolve(doc: dict[str, Any], base: Path) -> dict[str, Any]:
    for section, key in (
        ("agent", "state_dir"),
        ("broker", "ca_file"),
        ("broker", "cert_file"),
        ("broker", "key_file"),
        ("broker", "password_file"),
        ("repository", "folder"),
        ("repository", "trusted_root"),
        ("source", "path"),
    ):
        value = doc.get(section, {}).get(key) if isinstance(doc.get(section), dict) else None
        if isinstance(value, str) and not Path(value).is_absolute():
            doc[section][key] = str(base / value)
    return doc


def _path_hook(kind: type, value: Any) -> Any:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError(f"expected a path (text), got {type(value).__name__}")


def _problem(exc: msgspec.ValidationError) -> str:
    """The error of msgspec (``<message> - at `$.agent.x```) as ``agent.x: <message>``, keys named."""
    text = str(exc)
    message, sep, where = text.rpartition(" - at `")
    if not sep:
        return text
    where = where.rstrip("`").removeprefix("$").lstrip(".") or "file"
    if message.startswith("Object contains unknown field `"):
        key = message.removeprefix("Object contains unknown field `").rstrip("`")
        return (
            f"{where}.{key}: unknown key (see docs/edge.md, 'Agent settings')"
            if where != "file"
            else (f"{key}: unknown key (see docs/edge.md, 'Agent settings')")
        )
    if message.startswith("Object missing required field `"):
        key = message.removeprefix("Object missing required field `").rstrip("`")
        return f"{where}.{key}: missing" if where != "file" else f"{key}: missing"
    return f"{where}: {message}"


def load_agent_config(path: Path, **overrides: Any) -> AgentConfig:
    """Read and validate ``agent.toml``.

    Args:
        path: the file.
        overrides: ``section__key=value`` replacements (tests, the command line).

    Raises:
        ConfigError: the file is missing, not TOML, or a key is unknown or invalid
            (the message names the key).
    """
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read agent settings {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        doc.setdefault(section, {})[name] = value
    doc = _resolve(doc, path.parent.resolve())
    try:
        return msgspec.convert(doc, AgentConfig, dec_hook=_path_hook)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {_problem(exc)}") from None


#: ``pumpops agent init``'s file: every key with its default and what it means. The values
#: marked ``FILL IN`` are placeholders that load as they are; change them to this pump's.
STARTING_AGENT_TOML = """\
# pumpops edge agent settings (docs/edge.md, "Agent settings"); unknown keys are refused.
# Written by `pumpops agent init`. Relative paths are relative to this file.
# Run the agent with `pumpops agent run --config <this file>`.
#
# FILL IN: the values marked "FILL IN" are placeholders that load as they are;
# set them to this pump's before running: agent.device_id, agent.site, agent.group,
# agent.profile, agent.target, repository.url (or repository.folder), repository.trusted_root.

outbox_max_bytes = 20000000   # the outbox bound, bytes (summaries are dropped first when it is full)

[agent]
device_id = "pump-0001"       # FILL IN: the pump's id, as the hub knows it
site = "site-1"               # FILL IN: its site (a topic segment)
group = "acme-ansi"           # FILL IN: its device group: which models it installs
profile = "acme-ansi"         # FILL IN: acme-ansi, nordhav-multistage, sakura-esp or skab-testbed
target = "x86_64-ipc"         # FILL IN: target platform: x86_64-ipc, aarch64-gateway, armv7-controller
state_dir = "agent-state"     # slots, outbox, alarm log, TUF metadata: keep it on persistent storage
clock = "wall"                # "wall" (production) or "data": intervals in the readings' own time (replays)
refresh_interval_s = 3600.0   # how often to check the repository for a new model
update_timeout_s = 600.0      # an update check (a child process) running longer is stopped, retried later
max_model_age_h = 72.0        # past this without a successful update check: "stale" (detection goes on)
summary_interval_s = 600.0    # score statistics and alarm counts, this often
drift_report_rows = 3600      # rows between scheduled drift reports
drift_window_rows = 500       # rows in the live window compared with the reference
calibration_rows = 1800       # normal rows gathered when commissioning
drift_confirm_s = 0.0         # a shift is drift once it stood this long (3600 with 10-minute reports)
sample_period_s = 1.0         # the model's row period when the bundle does not state it
max_gap_fill_s = 5.0          # a sensor silent up to this long keeps its last value
state_interval_s = 60.0       # at most this often an unchanged state is re-sent
health_windows = 32           # recent windows the install health check scores
resume_save_interval_s = 10.0 # save the last window and alarm state this often (a restart resumes at once)
resume_max_age_s = 300.0      # restore a saved window at most this old; else "warming_up" (0: never)
metrics_textfile = ""         # e.g. "/var/lib/node_exporter/textfile/pumpops.prom" ("": none)

[broker]
url = "none"                  # mqtt(s)://host:port of the hub's broker; "none": no uplink (alarm log only)
topic_prefix = "pumpops/v1"   # the hub's topic prefix
keepalive_s = 30              # MQTT keep-alive, seconds
publish_timeout_s = 5.0       # wait this long for the broker's acknowledgement of a message
# ca_file = "broker-ca.pem"   # mqtts: the CA of the broker's certificate (absent: the system's CAs)
# cert_file = "device.pem"    # mqtts: client certificate (mutual TLS), with key_file
# key_file = "device.key"     # mqtts: its private key, PEM
# username = "pump-0001"      # MQTT user name (`pumpops devices provision` writes these)
# password_file = "broker.password"  # first line: the password

[repository]
# Exactly one of url and folder.
url = "http://127.0.0.1:8080/tuf/"   # FILL IN: the hub's /tuf/ (`pumpops hub serve`)
# folder = "/media/usb/pumpops-repo" # or an exported repository folder (site mirror, removable media)
trusted_root = "root.json"           # FILL IN: the root metadata the device was provisioned with

[source]
kind = "simulator"            # "simulator" (the pump simulator, the device's profile) or "skab" (CSV replay)
speed = 1.0                   # source seconds per wall second; 0: as fast as possible
chunk_s = 10.0                # source seconds per frame
seed = 0                      # simulator: seed
start = "now"                 # simulator: "now" or an ISO 8601 UTC time
# duration_s = 3600.0         # simulator: how long it runs (absent: endless)
fault_rate_per_day = 0.0      # simulator: random faults per day
drift_rate_per_day = 0.0      # simulator: random benign drifts per day
# path = "skab/valve1/0.csv"  # skab: a CSV file or a folder of them (required for kind = "skab")
# Scheduled simulator events, in seconds from the source's start:
# [[source.events]]
# kind = "cavitation"         # `pumpops sim faults` lists the kinds
# start_s = 600.0
# duration_s = 300.0
# onset = "sudden"            # or "gradual"
# severity = 1.0
# speed_ratio = 0.8           # setpoint_change only
# sensor = "discharge_pressure"  # sensor_recalibration only
# offset = 0.5                # sensor_recalibration only

[upload]
raw_readings = false          # also send raw readings (retraining data), rate-limited
raw_max_rows_per_s = 10.0     # the limit, rows per wall second
"""


def starting_agent_toml() -> str:
    """The commented starting ``agent.toml`` that ``pumpops agent init`` writes."""
    return STARTING_AGENT_TOML


def write_starting_agent_toml(path: Path) -> Path:
    """Write the starting ``agent.toml`` at ``path``; never overwrite.

    Raises:
        ConfigError: the file exists, or cannot be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(STARTING_AGENT_TOML)
    except FileExistsError:
        raise ConfigError(f"{path} already exists; edit it, or name another file") from None
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc}") from exc
    return path
