"""The loop demo's world: its options, the workspace and history, one model per make, the agents' set-up."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from rich.console import Console

from pumpops.demo._console import _elapsed, _phase, _setter, _status
from pumpops.errors import ConfigError, ServiceError
from pumpops.fleet import Device
from pumpops.hub import (
    Supervisor,
    create_app,
    event_sink,
    ingest_service,
    open_workspace_store,
    registry_for,
)
from pumpops.registry import parse_ref
from pumpops.retrain import run_retrain
from pumpops.settings import Settings, init_workspace, load_settings
from pumpops.sim import (
    DriftKind,
    Event,
    FaultKind,
    FleetSimulator,
    Onset,
    Scenario,
    build_fleet,
    write_ground_truth,
)
from pumpops.sources import SimulatorSource
from pumpops.telemetry import BrokerAddress, build_topic, encode_frame

_H_MS = 3_600_000
ACTOR = "demo@pumpops"
TARGETS = ("x86_64-ipc", "aarch64-gateway")
#: The benign drift kinds the loop can run (``LoopOptions.drift_kind``).
DRIFT_KINDS = ("sensor_recalibration", "setpoint_change", "seasonal_ambient", "pump_replacement")


@dataclass(frozen=True)
class LoopOptions:
    """What the loop demo does.

    Attributes:
        workspace: the demo workspace (reset each run).
        pumps: pumps in the fleet (three makes take turns).
        history_h: simulated hours of normal history for the first training.
        run_h: simulated hours the agents run.
        speed: simulated seconds per wall second for the agents.
        drift_at_h: hours into the run when the benign drift starts.
        seed: seed of everything random.
        secure: run over Mosquitto with TLS, passwords and the ACL, every pump provisioned (``--secure``).
        drift_kind: the benign drift (:data:`DRIFT_KINDS`): ``sensor_recalibration`` (the
            discharge-pressure sensor of every pump of one make re-zeroed), ``setpoint_change``
            (every pump of the make slowed to 90 % of its speed), ``seasonal_ambient`` (+12 K
            ambient at every pump of the make), ``pump_replacement`` (one pump of the make
            replaced by a new unit of the same make).
        bad_candidate: try a deliberately bad candidate once the drifted group was retrained
            (``loop_verdict`` then asks that it was blocked).
        late_faults: two more faults after the expected recovery (at ``run_h - 1.4`` h: one on a
            drifted pump, one on another make), so fault recall after recovery is measured.
        post_drift_gate: give the drift-triggered retrain the drift's onset from the hub's shift
            verdicts, so it trains on post-drift data and passes the post-drift gate
            (``run_retrain(drift_onset_us=...)``); off: the retrain takes the recent window.
    """

    workspace: Path
    pumps: int = 21
    history_h: float = 4.0
    run_h: float = 8.0  # a retrain takes ~100 s wall on 2 busy cores (3.3 h at 120x); agents run on
    speed: float = 120.0
    drift_at_h: float = 0.5
    seed: int = 7
    secure: bool = False
    drift_kind: str = "sensor_recalibration"
    bad_candidate: bool = True
    late_faults: bool = False
    post_drift_gate: bool = False

    def __post_init__(self) -> None:
        if self.drift_kind not in DRIFT_KINDS:
            raise ConfigError(f"drift_kind {self.drift_kind!r}: one of {', '.join(DRIFT_KINDS)}")


@dataclass
class Timeline:
    """What happened, when (simulated time), for the console and the report."""

    console: Console
    t0_ms: int
    entries: list[tuple[float, str]] = field(default_factory=list)

    def say(self, sim_ms: int, text: str) -> None:
        hours = (sim_ms - self.t0_ms) / _H_MS
        self.entries.append((hours, text))
        self.console.print(f"[dim]{hours:+6.2f} h[/]  {text}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def _settings_file(ws: Path, port: int | None, secured: tuple[str, str] = ("", "")) -> Settings:
    """Write the demo's settings (``port``: the embedded broker's, once it runs).

    ``secured``: the top-level ``broker_url`` line and the ``[broker_auth]``
    section of ``pumpops demo --secure`` (``_secure.secure_settings_lines``).
    """
    port_line = "" if port is None else f"embedded_broker_port = {port}  # the port this run's broker had\n"
    (ws / "pumpops.toml").write_text(
        f"""# written by pumpops demo
{port_line}{secured[0]}
[monitoring]
window_s = 1800
min_fraction = 0.5
min_devices = 2

[retrain]
enabled = true
on_drift = true
cooldown_h = 2
window_h = 3.0  # 1 h missed the pumps' slow variation (docs/benchmarks.md, "The loop")
targets = {json.dumps(list(TARGETS))}
waves = [30, 100]
window_samples = 30
baseline_window_samples = 600
threshold_quantile = 0.995
threshold_factor = 2.0
smoothing_k = 5
smoothing_n = 10
{secured[1]}""",
        encoding="utf-8",
    )
    (ws / "validation.toml").write_text(
        """# written by pumpops demo: the gates every candidate of the demo passes through
# The demo's detector is sensitive to level shifts on purpose (no detrending): benign drift
# is handled by retraining, which is the loop this demo shows. The drift budget is
# therefore relaxed here; the normal false-alarm budget and the champion gate are not.
[behaviour]
max_drift_alarm_rate = 1.0
max_normal_far = 0.05

[champion]
f1_tolerance = 0.05
far_tolerance = 0.02

[measurement]
gradual_wear = false
latency_runs = 20
""",
        encoding="utf-8",
    )
    return load_settings(ws)


# ------------------------------------------------------------------------------ the hub side


def _history(
    settings: Settings,
    fleet: tuple[Device, ...],
    start_ms: int,
    hours: float,
    seed: int,
    *,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Normal history through the ingest path (decode, validate, store), without the broker."""
    scenario = Scenario(
        devices=fleet,
        start_ms=start_ms,
        duration_s=hours * 3600,
        seed=seed,
        fault_rate_per_day=0.0,
        drift_rate_per_day=0.0,
    )
    sites = {d.device_id: d.site for d in fleet}
    stored = 0
    with open_workspace_store(settings) as store:
        service = ingest_service(settings, store, BrokerAddress("127.0.0.1", 1))
        batch: list[tuple[str, bytes]] = []
        for i, frame in enumerate(SimulatorSource(scenario, chunk_s=600.0).frames()):
            topic = build_topic(sites[frame.device_id], frame.device_id, prefix=settings.topic_prefix)
            batch.append((topic, encode_frame(frame, f"hist-{frame.device_id}-{i}")))
            if len(batch) >= 64:
                stored += service.process(batch).committed
                batch = []
                if progress is not None:
                    progress(stored)
        if batch:
            stored += service.process(batch).committed
    return stored


def _train_release(
    settings: Settings,
    group: str,
    since_ms: int,
    until_ms: int,
    actor: str,
    *,
    progress: Callable[[str], None] | None = None,
) -> tuple[str, int]:
    """Train, register, validate, release for both targets, publish, promote: the group's first model."""
    policy = settings.retrain.model_copy(update={"window_h": (until_ms - since_ms) / _H_MS})
    outcome = run_retrain(
        settings,
        group,
        trigger="initial",
        actor=actor,
        policy=policy,
        until_us=until_ms * 1000,
        progress=progress,
    )
    if outcome.status != "released" or outcome.model_ref is None:
        raise ServiceError(f"initial model for {group}: {outcome.status}: {outcome.reason}")
    _promote(settings, outcome.model_ref, group, actor)
    return outcome.model_ref, int(outcome.release_id or 0)


def _promote(settings: Settings, ref: str, group: str, actor: str) -> None:

    name, version = parse_ref(ref)
    with open_workspace_store(settings) as store, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        registry_for(settings, event_sink(settings, store)).promote(
            name, version, group, actor=actor, force=True, reason="rolled out to the whole group"
        )


class _Http:
    """The hub's HTTP server (``/tuf/``) in a thread."""

    def __init__(self, repository: Path) -> None:

        self.port = _free_port()
        config = uvicorn.Config(create_app(repository), host="127.0.0.1", port=self.port, log_level="error")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


# ------------------------------------------------------------------------------ the agents


def _agent_config(
    folder: Path,
    device: Device,
    target: str,
    *,
    broker: Sequence[str],
    http_port: int,
    root: Path,
    start_ms: int,
    options: LoopOptions,
    events: list[dict[str, Any]],
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "[agent]",
        f'device_id = "{device.device_id}"',
        f'site = "{device.site}"',
        f'group = "{device.group}"',
        f'profile = "{device.profile_id}"',
        f'target = "{target}"',
        'state_dir = "state"',
        'clock = "data"',
        "refresh_interval_s = 900",
        "max_model_age_h = 12",
        "summary_interval_s = 600",
        "drift_report_rows = 600",
        "drift_window_rows = 600",
        "calibration_rows = 1800",
        "drift_confirm_s = 3600",  # a developing fault shows its growth before it could be called drift
        "state_interval_s = 300",
        "",
        "[broker]",
        *broker,
        "",
        "[repository]",
        f'url = "http://127.0.0.1:{http_port}/tuf/"',
        f'trusted_root = "{root}"',
        "",
        "[upload]",
        "raw_readings = true",
        f"raw_max_rows_per_s = {options.speed * 3:g}",
        "",
        "[source]",
        'kind = "simulator"',
        f"seed = {options.seed}",
        f'start = "{_iso(start_ms)}"',
        f"duration_s = {options.run_h * 3600:g}",
        f"speed = {options.speed:g}",
        "chunk_s = 60",
    ]
    for e in events:
        lines += ["", "[[source.events]]", *(f"{k} = {json.dumps(v)}" for k, v in e.items())]
    path = folder / "agent.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _start_agent(sup: Supervisor, device_id: str, config: Path, options: LoopOptions) -> None:
    """``pumpops agent run --config <absolute path>`` in its own folder, watched by ``sup``.

    Its simulated run takes ``run_h / speed`` wall time at least (the agent paces its data):
    an exit with code 0 well before that is unexpected too.
    """
    config = config.resolve()
    sup.spawn(
        f"agent {device_id}",
        [sys.executable, "-m", "pumpops", "agent", "run", "--config", str(config)],
        log=config.parent / "agent.log",
        cwd=config.parent,
        min_run_s=0.8 * options.run_h * 3600 / options.speed,
    )


# ------------------------------------------------------------------------------ the story


@dataclass
class _World:
    settings: Settings
    fleet: tuple[Device, ...]
    targets: dict[str, str]
    t0_ms: int
    drift_group: str
    faults: list[dict[str, Any]]
    drift_ms: int
    offline_device: str
    timeline: Timeline
    drifted: tuple[str, ...] = ()
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    # the hub's per-pump shift verdicts over time: device -> [(hub time ms, verdict)]
    hub_verdicts: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    rollouts: list[str] = field(default_factory=list)
    milestones: dict[str, int] = field(default_factory=dict)


def _scheduled_events(
    fleet: tuple[Device, ...], options: LoopOptions
) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]], str]:
    """Faults on three pumps of the makes that do not drift; the benign drift on one make.

    Returns:
        Each pump's events (as ``[[source.events]]`` of its agent), the faults, the drifting make.
    """
    makes = sorted({d.group for d in fleet})
    drift_group = makes[0]
    per_device: dict[str, list[dict[str, Any]]] = {d.device_id: [] for d in fleet}
    faults = []
    others = [d for d in fleet if d.group != drift_group]
    planned: list[tuple[Device, str, float]] = list(
        zip(others[:3], ("bearing_wear", "cavitation", "seal_leak"), (0.6, 2.2, 3.4), strict=False)
    )
    drifted = _drifted(fleet, drift_group, options)
    if options.late_faults:  # after the recovery: does the retrained model still catch faults?
        late = options.run_h - 1.4
        planned += [(_late_fault_pump(fleet, drift_group, drifted), "bearing_wear", late)]
        if len(others) > 3:
            planned += [(others[3], "cavitation", late)]
    for d, kind, at_h in planned:
        spec = {
            "kind": kind,
            "start_s": at_h * 3600,
            "duration_s": 2400.0,
            "onset": "sudden",
            "severity": 1.0,
        }
        per_device[d.device_id].append(spec)
        faults.append({"device_id": d.device_id, **spec})
    for d in fleet:
        if d.device_id in drifted:
            per_device[d.device_id].append(_drift_spec(d, options))
    return per_device, faults, drift_group


def _drifted(fleet: tuple[Device, ...], drift_group: str, options: LoopOptions) -> tuple[str, ...]:
    """The pumps the benign drift happens to: the whole make, or one replaced pump of it."""
    group = [d.device_id for d in fleet if d.group == drift_group]
    if options.drift_kind == "pump_replacement":
        return (group[0],)
    return tuple(group)


def _late_fault_pump(fleet: tuple[Device, ...], drift_group: str, drifted: tuple[str, ...]) -> Device:
    """A pump of the drifting make, on the retrained model by then (not the one that starts offline)."""
    group = [d for d in fleet if d.group == drift_group]
    online = group[:-1] if len(group) > 1 else group
    return next((d for d in reversed(online) if d.device_id in drifted), online[-1])


def _drift_spec(device: Device, options: LoopOptions) -> dict[str, Any]:
    """The ``[[source.events]]`` entry of the benign drift on ``device``."""
    spec: dict[str, Any] = {
        "kind": options.drift_kind,
        "start_s": options.drift_at_h * 3600,
        "duration_s": options.run_h * 3600,
    }
    if options.drift_kind == "sensor_recalibration":
        spec.update(sensor="discharge_pressure", offset=40_000.0)
    elif options.drift_kind == "setpoint_change":
        base = _base_speed_ratio(device, options.seed)
        spec.update(speed_ratio=round(max(0.3, 0.9 * base), 4))
    elif options.drift_kind == "seasonal_ambient":
        spec.update(offset=12.0)
    return spec


def _base_speed_ratio(device: Device, seed: int) -> float:
    """The pump's own speed set-point (as its agent's simulator draws it from the seed)."""
    one = Scenario(devices=(device,), start_ms=0, duration_s=60, seed=seed)
    return FleetSimulator(one).device(device.device_id).base_ratio


def _scenario_of_run(fleet: tuple[Device, ...], options: LoopOptions, t0_ms: int) -> Scenario:
    """The agents' simulators as one scenario, for the run's ground truth.

    A pump's data depends only on itself and the seed, so the numbers are the agents'.
    """
    kinds: dict[str, DriftKind | FaultKind] = {k.value: k for k in DriftKind}
    kinds |= {k.value: k for k in FaultKind}
    per_device = _scheduled_events(fleet, options)[0]
    events = []
    for device_id, specs in per_device.items():
        for e in specs:
            start = t0_ms + round(e["start_s"] * 1000)
            events.append(
                Event(
                    device_id,
                    kinds[e["kind"]],
                    start,
                    start + round(e["duration_s"] * 1000),
                    onset=Onset(e.get("onset", "sudden")),
                    severity=float(e.get("severity", 1.0)),
                    speed_ratio=e.get("speed_ratio"),
                    sensor=e.get("sensor"),
                    offset=e.get("offset"),
                )
            )
    return Scenario(  # no random events: the agents' sources have none (their rates default to 0)
        devices=fleet,
        start_ms=t0_ms,
        duration_s=options.run_h * 3600,
        seed=options.seed,
        events=tuple(events),
        fault_rate_per_day=0.0,
        drift_rate_per_day=0.0,
    )


def _prepare(options: LoopOptions, out: Console) -> _World:
    """Phases 1 and 2: a fresh workspace, the history, one released champion per make."""
    ws = options.workspace
    shutil.rmtree(ws, ignore_errors=True)
    init_workspace(ws)
    settings = _settings_file(ws, None)
    actor = ACTOR
    fleet = build_fleet(options.pumps, options.seed)
    targets = {d.device_id: TARGETS[i % 2] for i, d in enumerate(fleet)}
    # The agents run faster than real time; their whole run lies in the past, so that
    # the hub never sees a reading from the future (ingest refuses those).
    now_ms = int(time.time()) * 1000 - round(options.run_h * _H_MS) - 600_000
    t0_ms = now_ms - now_ms % 60_000
    timeline = Timeline(out, t0_ms)
    _, faults, drift_group = _scheduled_events(fleet, options)
    offline = next(d.device_id for d in reversed(fleet) if d.group == drift_group)
    # the simulator's ground truth of the run: which pump drifts (benign) or fails, from when
    write_ground_truth(ws / "ground-truth.json", _scenario_of_run(fleet, options, t0_ms))
    world = _World(
        settings,
        fleet,
        targets,
        t0_ms,
        drift_group,
        faults,
        t0_ms + round(options.drift_at_h * _H_MS),
        offline,
        timeline=timeline,
        drifted=_drifted(fleet, drift_group, options),
    )
    groups = sorted({d.group for d in fleet})
    out.print(
        f"[bold]pumpops demo[/]: {len(fleet)} pumps, makes {', '.join(groups)}, "
        f"targets {', '.join(TARGETS)}; workspace {ws}"
    )
    _phase(out, 1, f"history: {options.history_h:g} simulated hours of {len(fleet)} pumps into the store")
    with open_workspace_store(settings) as store:
        store.upgrade()
        store.register_devices(fleet)
    count = [0]
    with _status(out, lambda: f"storing history: {count[0]} messages"):
        stored = _history(
            settings,
            fleet,
            t0_ms - round(options.history_h * _H_MS),
            options.history_h,
            options.seed,
            progress=lambda n: count.__setitem__(0, n),
        )
    timeline.say(t0_ms, f"history: {options.history_h:g} h of {len(fleet)} pumps stored ({stored} messages)")
    _phase(out, 2, "one model per make: train, register, validate, release for both targets, publish")
    keys = subprocess.run(  # noqa: S603 - our own interpreter and command
        [sys.executable, "-m", "pumpops", "-w", str(ws), "keys", "init"], capture_output=True, check=False
    )
    if keys.returncode != 0:
        raise ServiceError(
            f"pumpops keys init exited with code {keys.returncode}: "
            + keys.stderr.decode(errors="replace").strip()[-2000:]
        )
    for i, group in enumerate(groups, start=1):
        began = time.monotonic()
        step = ["training"]
        with _status(out, _elapsed(f"{group} ({i}/{len(groups)})", step, began)):
            ref, release = _train_release(
                settings,
                group,
                t0_ms - round(options.history_h * _H_MS),
                t0_ms,
                actor,
                progress=_setter(step),
            )
        timeline.say(
            t0_ms,
            f"{group}: {ref} trained, validated, released ({release}) for {', '.join(TARGETS)}, champion "
            f"({time.monotonic() - began:.0f} s)",
        )
    return world
