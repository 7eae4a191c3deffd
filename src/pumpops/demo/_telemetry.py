"""``pumpops demo``: the telemetry path end to end on embedded defaults.

Simulated pumps of three makes → an in-process MQTT broker → the ingest
service → SQLite in a demo workspace, plus one message of each common kind of
bad input, then a report of what was stored and what was quarantined and why.
Nothing outside this process is needed. Later issues extend the demo to the
whole loop (train, release, roll out, retrain).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pumpops.errors import ServiceError
from pumpops.fleet import Device, ManufacturerProfile, load_profiles
from pumpops.schema import CANONICAL_SENSORS, convert
from pumpops.settings import IngestSettings, load_settings
from pumpops.sim import Scenario, build_fleet, ground_truth, write_ground_truth
from pumpops.sources import SimulatorSource
from pumpops.store import TelemetryStore, open_store
from pumpops.telemetry import EmbeddedBroker, IngestService, Publisher, build_topic, encode_message


@dataclass(frozen=True)
class DemoOptions:
    """What the demo simulates.

    Attributes:
        workspace: folder for the database and the ground truth (reset each run).
        devices: pumps in the fleet (the makes take turns).
        hours: simulated hours of telemetry, ending now.
        seed: seed of everything random.
    """

    workspace: Path
    devices: int = 9
    hours: float = 6.0
    seed: int = 7


_BAD_PREFIX = "demo-bad-"


def _bad_messages(prefix: str, device: Device, now_ms: int) -> list[tuple[str, str, bytes]]:
    """One message per common kind of bad input: (what it shows, topic, payload)."""
    topic = build_topic(device.site, device.device_id, "telemetry", prefix=prefix)
    ok = {"msg_id": "", "device_id": device.device_id, "ts_ms": [now_ms - 2000, now_ms - 1000]}

    def msg(
        msg_id: str, sensors: list[tuple[str, str]], values: list[list[float | None]], **kw: object
    ) -> bytes:
        fields = {**ok, **kw, "msg_id": msg_id, "sensors": sensors, "values": values}
        return encode_message(**fields)  # type: ignore[arg-type]

    return [
        ("malformed JSON", topic, b'{"schema": "pumpops.telemetry/1", "msg_id": "demo-bad-1", "readings": ['),
        (
            "unregistered device",
            build_topic(device.site, "p-9999", "telemetry", prefix=prefix),
            msg("demo-bad-2", [("DISCH_PRESS", "psi")], [[61.0], [61.2]], device_id="p-9999"),
        ),
        ("pressure declared in degC", topic, msg("demo-bad-3", [("DISCH_PRESS", "degC")], [[61.0], [61.2]])),
        # JSON has no NaN; devices written in Python or C still send the literal, so the
        # hub parses it and quarantines those readings rather than the whole message
        (
            "NaN and an impossible value",
            topic,
            msg("demo-bad-4", [("DISCH_PRESS", "psi"), ("AMPS", "A")], [[61.0, 12.5], [61.2, -40.0]]).replace(
                b"12.5", b"NaN"
            ),
        ),
        (
            "timestamps a day in the future",
            topic,
            msg(
                "demo-bad-5",
                [("DISCH_PRESS", "psi")],
                [[61.0], [61.2]],
                ts_ms=[now_ms + 86_400_000, now_ms + 86_401_000],
            ),
        ),
        (
            "wrong topic shape",
            f"{prefix}/{device.device_id}/telemetry",
            msg("demo-bad-6", [("DISCH_PRESS", "psi")], [[61.0], [61.2]]),
        ),
    ]


def run_demo(options: DemoOptions, console: Console | None = None) -> dict[str, int]:
    """Run the demo and print its report; return the store's row counts.

    Raises:
        ServiceError: ingest did not store everything within the time limit.
    """
    out = console or Console()
    started = time.monotonic()
    options.workspace.mkdir(parents=True, exist_ok=True)
    (options.workspace / "pumpops.db").unlink(missing_ok=True)
    settings = load_settings(options.workspace)
    profiles = load_profiles(settings.profiles_dirs)
    fleet = build_fleet(options.devices, options.seed)
    now_ms = int(time.time()) * 1000
    duration_s = options.hours * 3600
    scenario = Scenario(
        devices=fleet,
        start_ms=now_ms - int(duration_s * 1000),
        duration_s=duration_s,
        seed=options.seed,
        fault_rate_per_day=6.0,  # dense enough that a short demo shows faults
        drift_rate_per_day=6.0,
        fault_duration_s=(900.0, 2 * 3600.0),
        profiles=profiles,
    )
    truth_path = options.workspace / "ground-truth.json"
    write_ground_truth(truth_path, scenario)

    with open_store(settings.resolved_database_url) as store, EmbeddedBroker(port=0) as broker:
        store.upgrade()
        store.register_devices(fleet)
        written: dict[str, int] = {}  # readings written per message id, from the ingest observer
        out.print(
            f"[bold]pumpops demo[/]: {len(fleet)} pumps of {len({d.profile_id for d in fleet})} makes, "
            f"{options.hours:g} simulated hours → embedded MQTT broker {broker.url} → ingest → "
            f"{settings.resolved_database_url}"
        )
        service = IngestService(
            store,
            broker.address,
            settings=IngestSettings(client_id="pumpops-demo-ingest"),
            topic_prefix=settings.topic_prefix,
            profiles=profiles,
            observer=lambda _results, outcomes: written.update(
                (o.msg_id, written.get(o.msg_id, 0) + o.readings_written) for o in outcomes
            ),
        ).start()
        service.wait_ready()
        with Publisher(
            broker.address,
            client_id="pumpops-demo-sim",
            sites={d.device_id: d.site for d in fleet},
            topic_prefix=settings.topic_prefix,
        ) as publisher:
            sent = publisher.run(SimulatorSource(scenario, chunk_s=300.0))
            bad = _bad_messages(settings.topic_prefix, fleet[0], int(time.time() * 1000))
            for _, topic, payload in bad:
                publisher.publish(topic, payload)
            publisher.flush()
        expected = sent.messages + len(bad)
        deadline = time.monotonic() + 120
        while service.stats().committed < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        stats = service.stop()
        if stats.committed < expected:
            raise ServiceError(f"ingest committed {stats.committed} of {expected} messages in 120 s")
        counts = store.counts()
        _report(out, store, fleet, profiles, bad)
        sim_stored = sum(n for msg_id, n in written.items() if not msg_id.startswith(_BAD_PREFIX))
        truth = ground_truth(scenario)

    kinds = Counter((e["category"], e["kind"]) for e in truth["events"] if e["kind"] != "ambient_temperature")
    out.print(
        "\n[bold]Ground truth[/] "
        f"({truth_path}): " + ", ".join(f"{n} {kind} ({cat})" for (cat, kind), n in sorted(kinds.items()))
    )
    out.print(
        f"\n[bold]Published[/] {sent.messages} messages / {sent.readings} readings "
        f"(+{len(bad)} bad messages); [bold]stored[/] {counts['readings']} readings in "
        f"{counts['messages']} messages (the simulation's, plus the valid readings of the partly bad "
        f"messages); [bold]dead letters[/] {counts['dead_letters']}; "
        f"{time.monotonic() - started:.1f} s wall time."
    )
    out.print(
        f"Every simulated reading stored once: "
        f"{'yes' if sim_stored == sent.readings else f'NO ({sim_stored} of {sent.readings})'}."
    )
    return counts


def _report(
    out: Console,
    store: TelemetryStore,
    fleet: tuple[Device, ...],
    profiles: dict[str, ManufacturerProfile],
    bad: list[tuple[str, str, bytes]],
) -> None:
    """Print what was stored, how units were converted, and what was quarantined."""
    table = Table(title="Stored telemetry per pump (canonical SI units)")
    for col in ("device", "make", "site", "rate", "sensors", "rows", "readings", "from (UTC)", "to (UTC)"):
        table.add_column(col)
    samples: dict[str, tuple[Device, np.ndarray, tuple[str, ...]]] = {}
    for device in fleet:
        frame = store.query(device.device_id)
        profile = profiles[device.profile_id]
        n = int(np.count_nonzero(~np.isnan(frame.values)))
        span = ("–", "–")
        if frame.ts_us.size:
            span = tuple(  # type: ignore[assignment]
                time.strftime("%m-%d %H:%M:%S", time.gmtime(t / 1e6))
                for t in (frame.ts_us[0], frame.ts_us[-1])
            )
        table.add_row(
            device.device_id,
            profile.manufacturer,
            device.site,
            f"{1 / profile.sample_period_s:g} Hz",
            str(len(frame.sensors)),
            str(frame.ts_us.size),
            str(n),
            *span,
        )
        if device.profile_id not in samples and frame.ts_us.size:
            samples[device.profile_id] = (device, frame.values[-1], frame.sensors)
    out.print(table)

    conv = Table(title="Latest reading of one pump per make: device units → canonical SI")
    for col in ("make", "device sensor", "device unit", "value as sent", "canonical sensor", "stored (SI)"):
        conv.add_column(col)
    for profile_id, (_device, row, sensors) in samples.items():
        profile = profiles[profile_id]
        for name, value in zip(sensors, row, strict=True):
            sensor = profile.sensor(name)
            if sensor is None or np.isnan(value):
                continue
            si_unit = CANONICAL_SENSORS[name].unit
            native = float(convert(np.array([value]), si_unit, sensor.unit)[0])
            conv.add_row(
                profile.manufacturer,
                sensor.native,
                sensor.unit,
                f"{native:.4g}",
                name,
                f"{value:.6g} {si_unit}",
            )
        conv.add_section()
    out.print(conv)

    dead = Table(title="Dead letters: what was quarantined, and why")
    for col in ("sent as", "reason", "detail"):
        dead.add_column(col, overflow="fold")
    letters = list(reversed(store.dead_letters(limit=len(bad) + 50)))
    labels = {payload: label for label, _, payload in bad}
    for letter in letters:
        # details quote units such as "[temperature]", which rich would read as markup
        dead.add_row(labels.get(letter.payload, "?"), letter.reason, escape(letter.detail[:300]))
    out.print(dead)
