"""Command-line commands of ``pumpops.telemetry``: ``ingest``, ``simulate``, ``replay``, ``agents``."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from pumpops.cli._support import (
    DatabaseUrlOption,
    console,
    err_console,
    parse_duration,
    settings_from,
)
from pumpops.errors import BrokerError, ConfigError
from pumpops.hub import ingest_service, open_workspace_store

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pumpops.fleet import Device, ManufacturerProfile
    from pumpops.settings import Settings
    from pumpops.sim import Scenario
    from pumpops.sources import Source
    from pumpops.telemetry import BrokerAddress, IngestStats, PublishStats

__all__ = ["ingest_stats_line", "parse_duration", "register", "run_id"]

#: Folder of a workspace that keeps each simulation run's ground truth and fleet.
RUNS_FOLDER = "runs"

_T = TypeVar("_T")


def _option_value(option: str, text: str, parse: Callable[[str], _T]) -> _T:
    """Parse a flag's value; a bad one is a usage error naming the flag as typed (``--duration``)."""
    try:
        return parse(text)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root ``pumpops`` command."""
    app.command("ingest")(ingest_cmd)
    app.command("simulate")(simulate_cmd)
    app.command("replay")(replay_cmd)
    from pumpops.cli import telemetry_agents as _cli_agents

    _cli_agents.register(app)  # pumpops agents messages


BrokerOpt = Annotated[
    str | None,
    typer.Option(
        "--broker",
        help="'embedded', mqtt://host:port or mqtts://host:port (default: the workspace's broker_url).",
    ),
]
CaFileOpt = Annotated[
    Path | None, typer.Option("--ca-file", help="mqtts: PEM of the CA of the broker's certificate.")
]
CertFileOpt = Annotated[Path | None, typer.Option("--cert-file", help="mqtts: client certificate, PEM.")]
KeyFileOpt = Annotated[Path | None, typer.Option("--key-file", help="mqtts: the client certificate's key.")]
UsernameOpt = Annotated[str | None, typer.Option("--username", help="MQTT user name (a device id).")]
PasswordFileOpt = Annotated[
    Path | None, typer.Option("--password-file", help="File whose first line is the MQTT password.")
]


def with_credentials(
    address: BrokerAddress,
    *,
    ca_file: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
    username: str | None,
    password_file: Path | None,
) -> BrokerAddress:
    """``address`` with the TLS files and the identity given on the command line.

    Raises:
        ConfigError: a file cannot be read, TLS files for an mqtt:// broker, a password without a user.
    """
    from pumpops.hub import read_password_file

    if password_file is not None and username is None:
        raise ConfigError("--password-file needs --username")
    password = read_password_file(password_file, what="--password-file") if password_file else None
    for flag, path in (("--ca-file", ca_file), ("--cert-file", cert_file), ("--key-file", key_file)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{flag} {path}: no such file")
    return address.with_credentials(
        ca_file=str(ca_file) if ca_file else None,
        cert_file=str(cert_file) if cert_file else None,
        key_file=str(key_file) if key_file else None,
        username=username,
        password=password,
    )


def ingest_stats_line(stats: IngestStats, previous: str | None = None) -> str | None:
    """The progress line of ``pumpops ingest``, or None when it would repeat ``previous``.

    Ingest prints its counters when they change, not the same line every few seconds.

    Args:
        stats: the service's counters now.
        previous: the line printed last (None: nothing printed yet).
    """
    line = (
        f"received {stats.received}, stored {stats.stored_messages} messages / "
        f"{stats.stored_readings} readings, {stats.agent_messages} agent messages, "
        f"duplicates {stats.duplicates}, dead letters {stats.dead_letters}"
        + ("" if stats.connected else " (broker not connected: retrying)")
    )
    return None if line == previous else line


def ingest_cmd(
    ctx: typer.Context,
    *,
    broker: BrokerOpt = None,
    database_url: DatabaseUrlOption = None,
    client_id: Annotated[
        str | None,
        typer.Option(
            "--client-id",
            help="MQTT client id; keep it stable across restarts (the broker keeps its session), "
            "and different per worker when several share a subscription.",
        ),
    ] = None,
    shared_group: Annotated[
        str | None,
        typer.Option("--shared-group", help="Join an MQTT shared subscription ($share/<group>/...)."),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option("--duration", help="Stop after this wall time (e.g. 90s, 10m); default: run."),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Run this many ingest processes on one shared subscription (--shared-group, default "
            "'pumpops-ingest'), client ids <client-id>-w0, -w1, ...; a worker that dies is started "
            "again with its id. Needs a real broker.",
        ),
    ] = 1,
) -> None:
    """Consume telemetry from the MQTT broker into the database, until Ctrl-C or --duration.

    Invalid messages go to the dead-letter table with their reason; Ctrl-C
    (or SIGTERM) commits and acknowledges what was received, then stops.
    Prints its counters when they change. A run that never reached its broker
    fails (exit 5), naming the broker's URL.
    """
    duration_s = _option_value("--duration", duration, parse_duration) if duration else None
    from pumpops.settings import IngestSettings
    from pumpops.telemetry import EmbeddedBroker, parse_broker_url, run_until_stopped

    if workers > 1:
        from pumpops.cli.telemetry_pool import ingest_pool

        ingest_pool(
            ctx,
            broker=broker,
            database_url=database_url,
            client_id=client_id,
            shared_group=shared_group,
            duration_s=duration_s,
            workers=workers,
        )
        return

    settings = settings_from(ctx, broker_url=broker, database_url=database_url)
    overrides = {k: v for k, v in (("client_id", client_id), ("shared_group", shared_group)) if v is not None}
    ingest = settings.ingest
    if overrides:
        try:
            ingest = IngestSettings.model_validate({**settings.ingest.model_dump(), **overrides})
        except ValueError as exc:
            raise ConfigError(f"invalid ingest option: {exc}") from exc
    address = parse_broker_url(settings.broker_url)
    embedded = None
    if address is None:
        if ingest.shared_group:
            raise ConfigError(
                "the embedded broker (amqtt) has no shared subscriptions; "
                "drop --shared-group or use a real broker"
            )
        embedded = EmbeddedBroker(port=settings.embedded_broker_port).start()
        address = embedded.address
        err_console.print(
            f"embedded MQTT broker on {embedded.url}: publish to it, e.g. "
            f"[bold]pumpops simulate --broker {embedded.url} ...[/]",
            highlight=False,
        )
    printed: list[str] = []

    def tick(stats: IngestStats) -> None:
        line = ingest_stats_line(stats, printed[-1] if printed else None)
        if line is not None:
            printed.append(line)
            err_console.print(line, highlight=False)

    try:
        with open_workspace_store(settings) as store:
            service = ingest_service(settings, store, address, ingest)
            err_console.print(
                f"ingesting {settings.topic_prefix}/# from {address.url} as {ingest.client_id!r} "
                f"into {_redact(settings.resolved_database_url)}; Ctrl-C stops",
                highlight=False,
            )
            stats = run_until_stopped(
                service,
                duration_s=duration_s,
                on_ready=lambda: err_console.print("subscribed; waiting for messages", highlight=False),
                on_tick=tick,
                tick_s=1.0,
            )
    finally:
        if embedded is not None:
            embedded.stop()
    console.print_json(
        json.dumps({name: getattr(stats, name) for name in stats.__dataclass_fields__ if name != "connected"})
    )
    if stats.connects == 0:
        raise BrokerError(
            f"ingest never reached the MQTT broker at {address.url}: nothing was received. "
            "Is the broker running there? (--broker, or broker_url in pumpops.toml)"
        )


def run_id(now_s: float, seed: int) -> str:
    """The name of a simulation run's folder under ``<workspace>/runs/``.

    >>> run_id(1767225600.0, 3)
    'sim-20260101T000000Z-seed3'
    """
    return time.strftime("sim-%Y%m%dT%H%M%SZ", time.gmtime(now_s)) + f"-seed{seed}"


def _fleet_document(fleet: Sequence[Device], seed: int) -> bytes:
    doc = {
        "format": "pumpops.fleet/1",
        "seed": seed,
        "devices": [
            {"device_id": d.device_id, "site": d.site, "profile_id": d.profile_id, "group": d.group}
            for d in fleet
        ],
    }
    return (json.dumps(doc, indent=1) + "\n").encode()


def _write_run_truth(scenario: Scenario, seed: int, run_folder: Path, truth_path: Path) -> None:
    """Write a started run's ground truth and fleet: its own copy, then the latest copy.

    Each file is replaced atomically; a run that never started writes nothing,
    so the previous run's truth is never lost.
    """
    from pumpops._atomic import write_atomic
    from pumpops.sim import ground_truth

    truth = (json.dumps(ground_truth(scenario), indent=1) + "\n").encode()
    fleet = _fleet_document(scenario.devices, seed)
    try:
        for folder, truth_file in (
            (run_folder, run_folder / "ground-truth.json"),
            (truth_path.parent, truth_path),
        ):
            write_atomic(truth_file, truth)
            write_atomic(folder / "fleet.json", fleet)
    except OSError as exc:
        raise ConfigError(f"cannot write the ground truth: {exc}") from exc


def simulate_cmd(
    ctx: typer.Context,
    *,
    devices: Annotated[int, typer.Option("--devices", min=1, help="How many pumps (makes in turn).")] = 30,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of everything random.")] = 0,
    speed: Annotated[
        str, typer.Option("--speed", help="Simulated seconds per wall second (1 = real time), or 'max'.")
    ] = "3600",
    duration: Annotated[
        str, typer.Option("--duration", help="Simulated time to publish, e.g. 2h, 1d, 900s.")
    ] = "1h",
    broker: BrokerOpt = None,
    database_url: DatabaseUrlOption = None,
    ground_truth: Annotated[
        Path | None,
        typer.Option(
            "--ground-truth",
            help="Latest ground-truth JSON to write (default <workspace>/ground-truth.json).",
        ),
    ] = None,
    register_devices: Annotated[
        bool,
        typer.Option("--register/--no-register", help="Register the fleet in the workspace database."),
    ] = True,
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            help="Simulated start (ISO-8601 UTC). Default: now for --speed 1, else now minus --duration, "
            "so that no reading is stamped in the future.",
        ),
    ] = None,
    rows_per_message: Annotated[
        int, typer.Option("--rows-per-message", min=1, max=10_000, help="Rows per MQTT message.")
    ] = 60,
    ca_file: CaFileOpt = None,
    cert_file: CertFileOpt = None,
    key_file: KeyFileOpt = None,
    username: UsernameOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """Simulate a mixed pump fleet and publish its telemetry to an MQTT broker.

    Once the run has started (connected, first message published) it writes
    its ground truth (faults and benign drift) and fleet to
    <workspace>/runs/<run>/ground-truth.json and fleet.json, and the same as the
    latest copies <workspace>/ground-truth.json and fleet.json (or beside
    --ground-truth). A run that cannot reach its broker changes no file and
    exits 5. Registers the devices in the workspace database so that ingest
    accepts them.
    """
    duration_s = _option_value("--duration", duration, parse_duration)
    from pumpops.sim import Scenario, build_fleet, to_epoch_ms
    from pumpops.sources import SimulatorSource
    from pumpops.telemetry import parse_broker_url, parse_speed

    settings = settings_from(ctx, broker_url=broker, database_url=database_url)
    address = parse_broker_url(settings.broker_url)
    if address is None:
        raise ConfigError(
            "simulate publishes to a broker that an ingest service reads; an embedded broker inside "
            "simulate would have no subscriber and nothing would be stored. Run `pumpops demo` "
            "(simulator, embedded broker and ingest in one process), or start `pumpops ingest` "
            "(it runs the embedded broker on 127.0.0.1) and pass --broker mqtt://127.0.0.1:"
            f"{settings.embedded_broker_port}, or point --broker at a real broker."
        )
    address = with_credentials(
        address,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        username=username,
        password_file=password_file,
    )
    pace = _option_value("--speed", speed, parse_speed)
    now_s = time.time()
    now_ms = int(now_s) * 1000
    if start is not None:
        start_ms = _option_value("--start", start, to_epoch_ms)
    elif pace == 1.0:
        start_ms = now_ms
    else:
        start_ms = now_ms - int(duration_s * 1000)
    fleet = build_fleet(devices, seed)
    profiles = _profiles(settings.profiles_dirs)
    scenario = Scenario(devices=fleet, start_ms=start_ms, duration_s=duration_s, seed=seed, profiles=profiles)

    truth_path = (ground_truth or settings.workspace / "ground-truth.json").resolve()
    fleet_path = truth_path.parent / "fleet.json"
    run_folder = settings.workspace / RUNS_FOLDER / run_id(now_s, seed)
    suffix = 1
    while run_folder.exists():  # two runs of the same seed in one second
        suffix += 1
        run_folder = run_folder.with_name(f"{run_id(now_s, seed)}-{suffix}")
    err_console.print(
        f"publishing {devices} devices, {duration_s:g} s of simulated time at "
        f"{'max speed' if pace is None else f'{pace:g}x'} to {address.url} ({settings.topic_prefix}/...); "
        f"once started, ground truth in {run_folder} and {truth_path}",
        highlight=False,
    )
    written: list[bool] = []
    progress = _progress(f"simulate {devices} devices", total=duration_s)

    def on_sent(last_ts_ms: int, messages: int) -> None:
        if not written:  # the run has started: its truth is now the truth of what the broker holds
            _write_run_truth(scenario, seed, run_folder, truth_path)
            written.append(True)
        progress.update(min(duration_s, (last_ts_ms - start_ms) / 1000), messages)

    source = SimulatorSource(scenario, chunk_s=10.0, speed=None)  # the publisher paces
    with progress:
        stats, stop = _register_and_publish(
            settings,
            address,
            fleet,
            source,
            register=register_devices,
            client_id=f"pumpops-sim-{seed}-{os.getpid()}",
            rows_per_message=rows_per_message,
            speed=pace,
            on_sent=on_sent,
        )
        if written and not stop.is_set():
            progress.update(duration_s, stats.messages)  # the last frame ends one sample before the end
    rate = stats.readings / stats.wall_s if stats.wall_s > 0 else 0.0
    console.print_json(
        json.dumps(
            {
                "messages": stats.messages,
                "readings": stats.readings,
                "payload_bytes": stats.payload_bytes,
                "wall_s": round(stats.wall_s, 3),
                "readings_per_s": round(rate),
                "run": str(run_folder) if written else None,
                "ground_truth": str(truth_path) if written else None,
                "fleet": str(fleet_path) if written else None,
                "interrupted": stop.is_set(),
            }
        )
    )


class _Progress:
    """A progress bar on stderr (Rich), fed from the publisher's thread-safe callback."""

    def __init__(self, description: str, total: float) -> None:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[messages]} messages"),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        )
        self._task = self._progress.add_task(description, total=total, messages=0)

    def __enter__(self) -> _Progress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, completed: float, messages: int) -> None:
        self._progress.update(self._task, completed=completed, messages=messages)


def _progress(description: str, total: float) -> _Progress:
    return _Progress(description, total)


def replay_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A SKAB CSV file or a folder of them (searched recursively).")],
    *,
    broker: BrokerOpt = None,
    database_url: DatabaseUrlOption = None,
    site: Annotated[
        str, typer.Option("--site", help="Site of the replayed devices (topic level).")
    ] = "skoltech",
    register_devices: Annotated[
        bool,
        typer.Option("--register/--no-register", help="Register the devices in the workspace database."),
    ] = True,
    rows_per_message: Annotated[
        int, typer.Option("--rows-per-message", min=1, max=10_000, help="Rows per MQTT message.")
    ] = 60,
    ca_file: CaFileOpt = None,
    cert_file: CertFileOpt = None,
    key_file: KeyFileOpt = None,
    username: UsernameOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """Replay recorded SKAB pump experiments as telemetry, one device per file.

    Recordings are shifted in time so that each file ends just before now (the
    hub rejects readings years old or in the future); the SKAB column names are
    the native names of the `skab-testbed` manufacturer profile. A malformed
    CSV exits 3 naming its file and line; a missing path exits 4.
    """
    from pumpops.sources import SkabCsvSource
    from pumpops.telemetry import parse_broker_url

    settings = settings_from(ctx, broker_url=broker, database_url=database_url)
    address = parse_broker_url(settings.broker_url)
    if address is None:
        raise ConfigError(
            "replay publishes to a broker that an ingest service reads: pass --broker mqtt://host:port "
            "(for example the embedded broker that `pumpops ingest` starts)"
        )
    address = with_credentials(
        address,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        username=username,
        password_file=password_file,
    )
    probe = SkabCsvSource(path, site=site)
    longest_ms = max(int(t.ts_ms[-1] - t.ts_ms[0]) for t in probe.experiments)
    source = SkabCsvSource(path, site=site, rebase_to_ms=int(time.time()) * 1000 - longest_ms - 1000)
    fleet = source.devices
    stats, stop = _register_and_publish(
        settings,
        address,
        fleet,
        source,
        register=register_devices,
        client_id=f"pumpops-replay-{os.getpid()}",
        rows_per_message=rows_per_message,
        speed=None,
    )
    console.print_json(
        json.dumps(
            {
                "devices": len(fleet),
                "messages": stats.messages,
                "readings": stats.readings,
                "wall_s": round(stats.wall_s, 3),
                "interrupted": stop.is_set(),
            }
        )
    )


def _register_and_publish(
    settings: Settings,
    address: BrokerAddress,
    fleet: Sequence[Device],
    source: Source,
    *,
    register: bool,
    client_id: str,
    rows_per_message: int,
    speed: float | None,
    on_sent: Callable[[int, int], Any] | None = None,
) -> tuple[PublishStats, threading.Event]:
    """Register the devices (if asked) and publish a source until it ends or Ctrl-C."""
    from pumpops.telemetry import Publisher, stop_on_signals

    if register:
        with open_workspace_store(settings) as store:
            added = store.register_devices(fleet)
        err_console.print(f"registered {len(fleet)} devices ({added} new)", highlight=False)
    stop = threading.Event()
    publisher = Publisher(
        address,
        client_id=client_id,
        sites={d.device_id: d.site for d in fleet},
        topic_prefix=settings.topic_prefix,
        max_rows_per_message=rows_per_message,
    )
    with stop_on_signals(stop), publisher:
        stats = publisher.run(source, speed=speed, stop=stop, on_sent=on_sent)
    return stats, stop


def _profiles(extra_dirs: tuple[Path, ...]) -> dict[str, ManufacturerProfile]:
    from pumpops.fleet import load_profiles

    return load_profiles(extra_dirs)


def _redact(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
