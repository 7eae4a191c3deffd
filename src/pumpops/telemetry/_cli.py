"""Command-line commands of ``pumpops.telemetry``: ``ingest``, ``simulate``, ``replay``, ``agents``."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pumpops._cli_support import console, err_console, settings_from
from pumpops.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pumpops.fleet import Device, ManufacturerProfile
    from pumpops.settings import Settings
    from pumpops.sources import Source
    from pumpops.telemetry._broker import BrokerAddress
    from pumpops.telemetry._publisher import PublishStats

_DURATION = re.compile(r"^\s*(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|min|h|d)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86_400.0}


def parse_duration(text: str) -> float:
    """Parse ``90``, ``90s``, ``30m``, ``2h``, ``1d`` or ``1.5h`` into seconds.

    Raises:
        ConfigError: anything else, or not positive.

    >>> parse_duration("2h"), parse_duration("90"), parse_duration("1.5m")
    (7200.0, 90.0, 90.0)
    """
    match = _DURATION.match(text)
    if match is None:
        raise ConfigError(
            f"duration {text!r} must be a number with an optional unit (ms, s, m, h, d), e.g. 2h"
        )
    seconds = float(match["num"]) * _SECONDS[match["unit"] or "s"]
    if seconds <= 0:
        raise ConfigError(f"duration {text!r} must be positive")
    return seconds


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root ``pumpops`` command."""
    app.command("ingest")(ingest_cmd)
    app.command("simulate")(simulate_cmd)
    app.command("replay")(replay_cmd)
    from pumpops.telemetry import _cli_agents

    _cli_agents.register(app)  # pumpops agents messages


BrokerOpt = Annotated[
    str | None,
    typer.Option("--broker", help="'embedded' or mqtt://host:port (default: the workspace's broker_url)."),
]


def ingest_cmd(
    ctx: typer.Context,
    *,
    broker: BrokerOpt = None,
    db: Annotated[
        str | None, typer.Option("--db", help="Database URL (default: the workspace's database).")
    ] = None,
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
) -> None:
    """Consume telemetry from the MQTT broker into the database, until Ctrl-C or --duration.

    Invalid messages go to the dead-letter table with their reason; Ctrl-C
    (or SIGTERM) commits and acknowledges what was received, then stops.
    """
    from pumpops.settings import IngestSettings
    from pumpops.store import open_store
    from pumpops.telemetry._broker import EmbeddedBroker, parse_broker_url
    from pumpops.telemetry._ingest import IngestService, IngestStats, run_until_stopped

    settings = settings_from(ctx, broker_url=broker, database_url=db)
    overrides = {k: v for k, v in (("client_id", client_id), ("shared_group", shared_group)) if v is not None}
    ingest = settings.ingest
    if overrides:
        try:
            ingest = IngestSettings.model_validate({**settings.ingest.model_dump(), **overrides})
        except ValueError as exc:
            raise ConfigError(f"invalid ingest option: {exc}") from exc
    duration_s = parse_duration(duration) if duration else None
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

    def tick(stats: IngestStats) -> None:
        err_console.print(
            f"received {stats.received}, stored {stats.stored_messages} messages / "
            f"{stats.stored_readings} readings, {stats.agent_messages} agent messages, "
            f"duplicates {stats.duplicates}, "
            f"dead letters {stats.dead_letters}{'' if stats.connected else ' (broker disconnected)'}",
            highlight=False,
        )

    try:
        with open_store(settings.resolved_database_url) as store:
            service = IngestService(
                store,
                address,
                settings=ingest,
                topic_prefix=settings.topic_prefix,
                profiles=_profiles(settings.profiles_dirs),
            )
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
            )
    finally:
        if embedded is not None:
            embedded.stop()
    console.print_json(
        json.dumps({name: getattr(stats, name) for name in stats.__dataclass_fields__ if name != "connected"})
    )


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
    ground_truth: Annotated[
        Path | None,
        typer.Option(
            "--ground-truth", help="Ground-truth JSON to write (default <workspace>/ground-truth.json)."
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
) -> None:
    """Simulate a mixed pump fleet and publish its telemetry to an MQTT broker.

    Writes the ground truth (faults and benign drift) and the fleet file
    (fleet.json) beside it, and registers the devices in the workspace
    database so that ingest accepts them.
    """
    from pumpops.sim import Scenario, build_fleet, to_epoch_ms, write_ground_truth
    from pumpops.sources import SimulatorSource
    from pumpops.telemetry._broker import parse_broker_url
    from pumpops.telemetry._publisher import parse_speed

    settings = settings_from(ctx, broker_url=broker)
    address = parse_broker_url(settings.broker_url)
    if address is None:
        raise ConfigError(
            "simulate publishes to a broker that an ingest service reads; an embedded broker inside "
            "simulate would have no subscriber and nothing would be stored. Run `pumpops demo` "
            "(simulator, embedded broker and ingest in one process), or start `pumpops ingest` "
            "(it runs the embedded broker on 127.0.0.1) and pass --broker mqtt://127.0.0.1:"
            f"{settings.embedded_broker_port}, or point --broker at a real broker."
        )
    pace = parse_speed(speed)
    duration_s = parse_duration(duration)
    now_ms = int(time.time()) * 1000
    if start is not None:
        start_ms = to_epoch_ms(start)
    elif pace == 1.0:
        start_ms = now_ms
    else:
        start_ms = now_ms - int(duration_s * 1000)
    fleet = build_fleet(devices, seed)
    profiles = _profiles(settings.profiles_dirs)
    scenario = Scenario(devices=fleet, start_ms=start_ms, duration_s=duration_s, seed=seed, profiles=profiles)

    truth_path = ground_truth or settings.workspace / "ground-truth.json"
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    write_ground_truth(truth_path, scenario)
    fleet_path = truth_path.parent / "fleet.json"
    fleet_path.write_text(
        json.dumps(
            {
                "format": "pumpops.fleet/1",
                "seed": seed,
                "devices": [
                    {"device_id": d.device_id, "site": d.site, "profile_id": d.profile_id, "group": d.group}
                    for d in fleet
                ],
            },
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    err_console.print(
        f"publishing {devices} devices, {duration_s:g} s of simulated time at "
        f"{'max speed' if pace is None else f'{pace:g}x'} to {address.url} ({settings.topic_prefix}/...); "
        f"ground truth {truth_path}, fleet {fleet_path}",
        highlight=False,
    )
    source = SimulatorSource(scenario, chunk_s=10.0, speed=None)  # the publisher paces
    stats, stop = _register_and_publish(
        settings,
        address,
        fleet,
        source,
        register=register_devices,
        client_id=f"pumpops-sim-{seed}-{os.getpid()}",
        rows_per_message=rows_per_message,
        speed=pace,
    )
    rate = stats.readings / stats.wall_s if stats.wall_s > 0 else 0.0
    console.print_json(
        json.dumps(
            {
                "messages": stats.messages,
                "readings": stats.readings,
                "payload_bytes": stats.payload_bytes,
                "wall_s": round(stats.wall_s, 3),
                "readings_per_s": round(rate),
                "ground_truth": str(truth_path),
                "fleet": str(fleet_path),
                "interrupted": stop.is_set(),
            }
        )
    )


def replay_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A SKAB CSV file or a folder of them (searched recursively).")],
    *,
    broker: BrokerOpt = None,
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
) -> None:
    """Replay recorded SKAB pump experiments as telemetry, one device per file.

    Recordings are shifted in time so that each file ends just before now (the
    hub rejects readings years old or in the future); the SKAB column names are
    the native names of the `skab-testbed` manufacturer profile.
    """
    from pumpops.sources import SkabCsvSource
    from pumpops.telemetry._broker import parse_broker_url

    settings = settings_from(ctx, broker_url=broker)
    address = parse_broker_url(settings.broker_url)
    if address is None:
        raise ConfigError(
            "replay publishes to a broker that an ingest service reads: pass --broker mqtt://host:port "
            "(for example the embedded broker that `pumpops ingest` starts)"
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
) -> tuple[PublishStats, threading.Event]:
    """Register the devices (if asked) and publish a source until it ends or Ctrl-C."""
    from pumpops.store import open_store
    from pumpops.telemetry._ingest import stop_on_signals
    from pumpops.telemetry._publisher import Publisher

    if register:
        with open_store(settings.resolved_database_url) as store:
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
        stats = publisher.run(source, speed=speed, stop=stop)
    return stats, stop


def _profiles(extra_dirs: tuple[Path, ...]) -> dict[str, ManufacturerProfile]:
    from pumpops.fleet import load_profiles

    return load_profiles(extra_dirs)


def _redact(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
