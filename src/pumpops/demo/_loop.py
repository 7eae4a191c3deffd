"""``pumpops demo``: the whole loop on embedded defaults, with the agents as real processes.

1. A fleet of simulated pumps of three makes on two target profiles; hours of
   normal history through the ingest path into SQLite.
2. One model per make: train, register, validate, release for both targets,
   publish (TUF), champion.
3. The hub in this process: embedded MQTT broker, ingest, the TUF repository
   over HTTP, the rollout controller, fleet monitoring and the retraining
   policy. One ``pumpops agent run`` process per pump (one of them starts late:
   offline through the update), each on its own simulated pump, faster than
   real time.
4. Faults on some pumps are raised as alarms on the devices. A benign drift
   (a sensor recalibrated on every pump of one make) makes the stale model
   raise false alarms; the agents' drift reports make the group drift; the
   policy retrains on recent data, validates against the champion, releases
   and rolls out wave by wave; false alarms drop. A deliberately bad
   candidate is blocked by validation. The audit chain verifies.
5. ``<workspace>/report.html`` (offline: inline SVG) with the charts, and
   ``<workspace>/summary.json``: the figures and whether the loop closed.

Every process it starts (the embedded broker, the agents) runs in its own
process group under a :class:`~pumpops.hub._supervise.Supervisor`: one that
exits unexpectedly fails the demo within seconds with its last log lines, and
all of them are stopped when the demo ends, however it ends (error, Ctrl-C,
SIGTERM). Each phase shows its progress; the run has a live status line.
May import: every part.
"""

from __future__ import annotations

import json
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import uvicorn
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pumpops.audit._chain import verify_chain
from pumpops.demo._report import false_alarm_phases, fault_detection, write_report
from pumpops.errors import CheckFailed, PumpopsError, ServiceError
from pumpops.fleet import Device
from pumpops.hub._app import create_app
from pumpops.hub._services import broker_process
from pumpops.hub._supervise import Supervisor
from pumpops.monitoring._service import MonitoringService, record_feedback
from pumpops.pipeline._tracking import resolve_tracking_uri
from pumpops.registry import EventSink, Registry, parse_ref
from pumpops.retrain._chain import run_retrain
from pumpops.retrain._policy import GroupFacts, decide_retrain
from pumpops.rollout import GatePolicy
from pumpops.rollout._service import MqttDesiredPublisher, RolloutService
from pumpops.settings import Settings, init_workspace, load_settings
from pumpops.sim import Scenario, build_fleet
from pumpops.sources import SimulatorSource
from pumpops.store import open_store
from pumpops.telemetry import IngestService, build_topic, encode_frame
from pumpops.telemetry._broker import BrokerAddress

__all__ = ["LoopOptions", "loop_verdict", "run_loop_demo"]

_H_MS = 3_600_000
ACTOR = "demo@pumpops"
TARGETS = ("x86_64-ipc", "aarch64-gateway")


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
    """

    workspace: Path
    pumps: int = 21
    history_h: float = 4.0
    run_h: float = 5.0
    speed: float = 120.0
    drift_at_h: float = 0.5
    seed: int = 7


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


def _settings_file(ws: Path, port: int | None) -> Settings:
    """Write the demo's settings (``port``: the embedded broker's, once it runs)."""
    port_line = "" if port is None else f"embedded_broker_port = {port}  # the port this run's broker had\n"
    (ws / "pumpops.toml").write_text(
        f"""# written by pumpops demo
{port_line}
[monitoring]
window_s = 1800
min_fraction = 0.5
min_devices = 2

[retrain]
enabled = true
on_drift = true
cooldown_h = 2
window_h = 1.0
targets = {json.dumps(list(TARGETS))}
waves = [30, 100]
window_samples = 30
baseline_window_samples = 600
threshold_quantile = 0.995
threshold_factor = 2.0
smoothing_k = 5
smoothing_n = 10
""",
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
    with open_store(settings.resolved_database_url) as store:
        service = IngestService(
            store, BrokerAddress("127.0.0.1", 1), settings=settings.ingest, topic_prefix=settings.topic_prefix
        )
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
    with open_store(settings.resolved_database_url) as store, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        sink = EventSink(store, None, topic_prefix=settings.topic_prefix)
        Registry(resolve_tracking_uri(settings.workspace, cli=None), sink).promote(
            name, version, group, actor=actor, force=True, reason="rolled out to the whole group"
        )


class _Live:
    """A status line drawn afresh at each refresh of Rich's spinner (elapsed time, counters)."""

    def __init__(self, text: Callable[[], str]) -> None:
        self.text = text

    def __rich__(self) -> Text:
        return Text(self.text())


@contextmanager
def _status(out: Console, text: Callable[[], str]) -> Iterator[None]:
    """A live status line on a terminal; off a terminal (CI logs) nothing: the timeline says enough."""
    if not out.is_terminal:
        yield
        return
    with out.status(_Live(text)):
        yield


def _elapsed(label: str, step: list[str], began: float) -> Callable[[], str]:
    """``<label>: <the step it is at> … <seconds> s``."""
    return lambda: f"{label}: {step[0]} … {time.monotonic() - began:.0f} s"


def _setter(step: list[str], prefix: str = "") -> Callable[[str], None]:
    def say(text: str) -> None:
        step[0] = prefix + text

    return say


def _phase(out: Console, number: int, title: str) -> None:
    if out.is_terminal:
        out.rule(f"[bold]{number}/4[/] {title}", align="left")
    else:  # a log: one line (off a terminal the console is as wide as a line needs)
        out.print(f"── [bold]{number}/4[/] {title} ──")


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
    broker_port: int,
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
        "state_interval_s = 300",
        "",
        "[broker]",
        f'url = "mqtt://127.0.0.1:{broker_port}"',
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
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    rollouts: list[str] = field(default_factory=list)
    milestones: dict[str, int] = field(default_factory=dict)


def _scheduled_events(
    fleet: tuple[Device, ...], options: LoopOptions
) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]], str]:
    """Faults on three pumps of the makes that do not drift; a recalibrated sensor on every pump of one."""
    makes = sorted({d.group for d in fleet})
    drift_group = makes[0]
    per_device: dict[str, list[dict[str, Any]]] = {d.device_id: [] for d in fleet}
    faults = []
    others = [d for d in fleet if d.group != drift_group]
    for d, kind, at_h in zip(
        others[:3], ("bearing_wear", "cavitation", "seal_leak"), (0.6, 2.2, 3.4), strict=False
    ):
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
        if d.group == drift_group:
            per_device[d.device_id].append(
                {
                    "kind": "sensor_recalibration",
                    "start_s": options.drift_at_h * 3600,
                    "duration_s": options.run_h * 3600,
                    "sensor": "discharge_pressure",
                    "offset": 40_000.0,
                }
            )
    return per_device, faults, drift_group


def _default_console() -> Console:
    """Stdout; off a terminal as wide as a line needs (as the CLI's console)."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=100_000, soft_wrap=True)


def run_loop_demo(
    options: LoopOptions, console: Console | None = None, *, stop_after: Literal["agents"] | None = None
) -> dict[str, Any]:
    """Run the loop demo; print a timeline; write ``report.html`` and ``summary.json``; return the figures.

    Args:
        options: what to run; a relative workspace is taken relative to the current folder.
        console: where to print (default: stdout, as wide as a line needs off a terminal).
        stop_after: ``"agents"``: stop once the agents run (for tests); returns
            ``agents_alive`` and ``pids`` instead of the figures.

    Raises:
        ServiceError: a step that the story needs did not happen, or a process it
            started (the broker, an agent) exited unexpectedly: the message has its last log lines.
        CheckFailed: the demo ran but the loop did not close (see ``summary.json``).
        KeyboardInterrupt: Ctrl-C or SIGTERM; every process it started has been stopped.
    """
    out = console or _default_console()
    options = replace(options, workspace=options.workspace.resolve())  # child processes run elsewhere
    wall0 = time.monotonic()
    sup = Supervisor()
    try:
        try:
            with sup:
                world = _prepare(options, out)
                figures = _run_hub(options, world, out, sup, stop_after=stop_after)
        except KeyboardInterrupt as exc:
            sup.reraise(exc)  # the supervisor's interrupt becomes its ServiceError
    except PumpopsError as exc:
        _write_summary(options.workspace, {"loop_closed": False, "error": str(exc)})
        raise
    if stop_after is not None:
        return figures
    figures["wall_s"] = round(time.monotonic() - wall0, 1)
    verdict = loop_verdict(figures)
    figures["loop"] = verdict
    summary = _write_summary(options.workspace, {**verdict, "figures": figures})
    out.print(
        f"\n[bold]Done[/] in {figures['wall_s']} s wall time. Report: {options.workspace / 'report.html'}; "
        f"summary: {summary}"
    )
    for key, value in verdict.items():
        out.print(f"  {key.replace('_', ' ')}: {'[green]yes[/]' if value else '[bold red]no[/]'}")
    if not verdict["loop_closed"]:
        missing = ", ".join(k.replace("_", " ") for k, v in verdict.items() if not v and k != "loop_closed")
        raise CheckFailed(f"the loop did not close: not {missing}; see {summary}")
    return figures


def loop_verdict(figures: dict[str, Any]) -> dict[str, bool]:
    """Whether each part of the loop happened, from :func:`run_loop_demo`'s figures.

    Returns:
        ``faults_detected`` (every scheduled fault raised an alarm),
        ``drifted_group_retrained_and_rolled_out`` (retrained on drift, released,
        and the rollout to the whole group completed), ``bad_candidate_blocked``
        (failed validation), ``audit_verified``, and ``loop_closed`` (all four).
    """
    faults = figures.get("faults") or []
    retraining = figures.get("retraining") or []
    verdict = {
        "faults_detected": bool(faults) and all(f.get("detected") for f in faults),
        "drifted_group_retrained_and_rolled_out": any(
            o.get("trigger") != "manual"
            and o.get("status") in ("released", "rolled_out")
            and o.get("rollout_id")
            for o in retraining
        )
        and "retrained_group_complete_after_drift" in (figures.get("drift_onset_to") or {}),
        "bad_candidate_blocked": any(
            o.get("trigger") == "manual" and o.get("status") == "validation_failed" for o in retraining
        ),
        "audit_verified": bool(figures.get("audit_verified")),
    }
    verdict["loop_closed"] = all(verdict.values())
    return verdict


def _write_summary(ws: Path, summary: dict[str, Any]) -> Path:
    path = ws / "summary.json"
    if ws.is_dir():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
        tmp.replace(path)
    return path


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
    )
    groups = sorted({d.group for d in fleet})
    out.print(
        f"[bold]pumpops demo[/]: {len(fleet)} pumps, makes {', '.join(groups)}, "
        f"targets {', '.join(TARGETS)}; workspace {ws}"
    )
    _phase(out, 1, f"history: {options.history_h:g} simulated hours of {len(fleet)} pumps into the store")
    with open_store(settings.resolved_database_url) as store:
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


def _run_hub(
    options: LoopOptions, world: _World, out: Console, sup: Supervisor, *, stop_after: str | None = None
) -> dict[str, Any]:
    """Phases 3 and 4: the hub's services and the agents as processes, then the story."""
    ws = world.settings.workspace
    root = ws / "tuf" / "repository" / "metadata" / "1.root.json"
    _phase(out, 3, "the hub (embedded broker, ingest, TUF over HTTP, controllers) and the agents")
    try:
        return _serve_and_run(options, world, out, sup, root, stop_after=stop_after)
    except KeyboardInterrupt as exc:
        sup.reraise(exc)  # the supervisor's interrupt becomes its ServiceError; Ctrl-C stays


def _serve_and_run(
    options: LoopOptions, world: _World, out: Console, sup: Supervisor, root: Path, *, stop_after: str | None
) -> dict[str, Any]:
    ws = world.settings.workspace
    with (
        broker_process(0, ws / "broker.log") as broker,
        open_store(world.settings.resolved_database_url) as store,
    ):
        sup.watch_process("the embedded MQTT broker", broker.proc, broker.log)
        world.settings = _settings_file(ws, broker.port)
        ingest = IngestService(
            store,
            BrokerAddress("127.0.0.1", broker.port),
            settings=world.settings.ingest,
            topic_prefix=world.settings.topic_prefix,
        ).start()
        http: _Http | None = None
        retained: MqttDesiredPublisher | None = None
        try:
            ingest.wait_ready()
            sup.watch("ingest", lambda: None if ingest.failed is None else str(ingest.failed))
            http = _Http(ws / "tuf" / "repository")
            server = http
            sup.watch(
                "the hub's HTTP server", lambda: None if server.thread.is_alive() else "its thread ended"
            )
            retained = MqttDesiredPublisher(BrokerAddress("127.0.0.1", broker.port))
            out.print(
                f"broker on 127.0.0.1:{broker.port} (pid {broker.proc.pid}), ingest, "
                f"TUF repository on http://127.0.0.1:{http.port}/tuf/"
            )
            sup.watch_in_background()
            figures = _run_story(
                options, world, store, retained, http.port, root, sup, broker.port, stop_after=stop_after
            )
            sup.disarm()
            sup.check()  # a failure found at the very end
        finally:
            sup.disarm()  # no interrupt from the watcher during the cleanup
            if retained is not None:
                retained.close()
            if http is not None:
                http.stop()
            ingest.stop()
    return figures


def _run_story(  # noqa: PLR0912, PLR0915, PLR0917 - the story, step by step
    options: LoopOptions,
    world: _World,
    store: Any,
    retained: MqttDesiredPublisher,
    http_port: int,
    root: Path,
    sup: Supervisor,
    broker_port: int,
    *,
    stop_after: str | None = None,
) -> dict[str, Any]:

    settings = world.settings
    timeline = world.timeline
    out = timeline.console
    actor = ACTOR
    sink = EventSink(store, None, topic_prefix=settings.topic_prefix)
    wall_start = time.monotonic()

    latest: dict[str, int] = {}  # newest message time per device

    def sim_ms() -> int:
        """The hub's clock: the agents' own (data) time, the median of their newest messages.

        Following the wall clock instead would let deadlines expire while
        agents that the machine slows down still catch up on their data.
        """
        return int(statistics.median(latest.values())) if latest else world.t0_ms

    def watch() -> None:
        since_ms = max(latest.values(), default=world.t0_ms) - 3_600_000
        for rec in store.agent_messages(kind="state", since_us=since_ms * 1000):
            latest[rec.device_id] = max(latest.get(rec.device_id, 0), rec.ts_ms)

    gate = GatePolicy(deadline_s=3600.0, min_soak_s=600.0, quorum_fraction=0.6, min_installed_fraction=0.9)
    rollouts = RolloutService(
        store,
        retained,
        events=sink,
        actor=actor,
        topic_prefix=settings.topic_prefix,
        clock=lambda: sim_ms() / 1000,
    )
    monitoring = MonitoringService(store, sink, settings.monitoring)
    for group in sorted({d.group for d in world.fleet}):
        champion = _champion_ref(settings, group)
        first = GatePolicy(deadline_s=3600.0, min_soak_s=600.0, quorum_fraction=0.6, on_fail="pause")
        rid = rollouts.start(champion, group, (30, 100), first, reason="initial release")
        world.rollouts.append(rid)
        timeline.say(sim_ms(), f"{group}: rollout {rid} of {champion} started (waves 30 %, 100 %)")

    configs: dict[str, Path] = {}
    events = _scheduled_events(world.fleet, options)[0]
    started = [0]
    online = [d for d in world.fleet if d.device_id != world.offline_device]
    with _status(out, lambda: f"starting agents: {started[0]}/{len(online)}, {sup.alive('agent ')} alive"):
        for d in world.fleet:  # faults and the drift are scheduled in each agent's own simulator
            configs[d.device_id] = _agent_config(
                world.settings.workspace / "agents" / d.device_id,
                d,
                world.targets[d.device_id],
                broker_port=broker_port,
                http_port=http_port,
                root=root,
                start_ms=world.t0_ms,
                options=options,
                events=events[d.device_id],
            )
            if d.device_id != world.offline_device:
                _start_agent(sup, d.device_id, configs[d.device_id], options)
                started[0] += 1
                sup.check()
                time.sleep(0.3)  # amqtt mishandles many simultaneous connects
    timeline.say(sim_ms(), f"{len(online)} agents started as processes; {world.offline_device} is offline")
    if stop_after == "agents":
        deadline = time.monotonic() + 90
        while len(latest) < len(online) and time.monotonic() < deadline:  # every agent reported
            sup.check()
            watch()
            time.sleep(0.5)
        sup.check()
        return {"agents_alive": sup.alive("agent "), "agents_reported": len(latest), "pids": sup.pids()}
    _phase(out, 4, f"the run: {options.run_h:g} simulated hours at {options.speed:g}× (live status below)")

    end_ms = world.t0_ms + round(options.run_h * _H_MS)
    seen_alarms: set[str] = set()
    alerts_said: set[str] = set()
    retrain_rollouts: set[str] = set()
    retrained: set[str] = set()
    bad_done = False
    offline_started = False
    last_run: dict[str, int] = {}
    status: dict[str, Any] = {"alarms": 0, "rollouts": "", "said_s": time.monotonic()}
    doing = [""]  # the retraining step under way, if any

    def status_line() -> str:
        hours = (sim_ms() - world.t0_ms) / _H_MS
        return (
            f"simulated {hours:+.2f} h of {options.run_h:g} h · agents alive {sup.alive('agent ')}/"
            f"{len(world.fleet)} · alarms {status['alarms']} · rollouts {status['rollouts'] or '-'}"
            + (f" · {doing[0]}" if doing[0] else "")
        )

    with _status(out, status_line):
        while sup.alive("agent ") or not offline_started:
            sup.check()
            watch()
            now = sim_ms()
            if now >= world.drift_ms:
                world.milestones.setdefault("drift_wall", round(time.monotonic() * 1000))
            for r in rollouts.tick(now / 1000):
                if r.after == "completed" and r.before != "completed" and r.rollout_id in retrain_rollouts:
                    world.milestones.setdefault("retrained_group_complete_ms", now)
                    world.milestones.setdefault(
                        "retrained_group_complete_wall", round(time.monotonic() * 1000)
                    )
                if r.actions or r.error:
                    what = ", ".join(a.removeprefix("rollout.") for a in r.actions)
                    timeline.say(now, f"rollout {r.rollout_id}: {what} ({r.after}) {r.error or ''}")
            monitoring.evaluate(now * 1000)
            for rec in store.agent_messages(kind="alarm", since_us=(now - 2 * 600_000) * 1000):
                body = rec.body()
                if body.get("event") == "raised" and body["alarm_id"] not in seen_alarms:
                    seen_alarms.add(body["alarm_id"])
                    timeline.say(
                        int(body["started_ms"]),
                        f"alarm on {rec.device_id} (model v{body.get('model_version')}, "
                        f"score {body.get('peak_score', 0):.3g})",
                    )
            for alert in store.fleet_alerts(open_only=True):
                if alert.alert_id not in alerts_said:
                    alerts_said.add(alert.alert_id)
                    world.milestones.setdefault("fleet_drift_ms", now)
                    world.milestones.setdefault("fleet_drift_wall", round(time.monotonic() * 1000))
                    detail = json.loads(alert.detail_json)
                    timeline.say(now, f"[bold]fleet drift[/] in {alert.group}: {detail.get('reason', '')}")
                    # The site technicians check the group's alarmed pumps: nothing wrong with them.
                    for dev in [d.device_id for d in world.fleet if d.group == alert.group]:
                        for rec in store.agent_messages(device_id=dev, kind="alarm"):
                            body = rec.body()
                            if body.get("event") == "raised":
                                record_feedback(
                                    store,
                                    sink,
                                    body["alarm_id"],
                                    verdict="false_alarm",
                                    actor="technician@site",
                                    note="inspected: sensor recalibrated, no fault",
                                )
                    timeline.say(
                        now, f"technicians mark the alarms of {alert.group}'s drifting pumps as false alarms"
                    )
            for group in sorted({d.group for d in world.fleet}):
                facts = GroupFacts(
                    group=group,
                    now_us=now * 1000,
                    drift_alert_open=any(a.group == group for a in store.fleet_alerts(open_only=True)),
                    drift_alert_opened_us=max(
                        (a.opened_at_us for a in store.fleet_alerts(group=group, open_only=True)),
                        default=None,
                    ),
                    last_run_us=last_run.get(group),
                    rollout_active=any(r.group == group for r in store.rollouts(active_only=True)),
                )
                decision = decide_retrain(facts, settings.retrain)
                if decision.run and group not in retrained:
                    retrained.add(group)
                    last_run[group] = now * 1000
                    timeline.say(now, f"{group}: retraining ({decision.reason})")
                    outcome = run_retrain(
                        settings,
                        group,
                        trigger=decision.trigger or "drift",
                        actor=actor,
                        policy=settings.retrain,
                        until_us=sim_ms() * 1000,
                        start_rollout=lambda ref, g, waves: rollouts.start(
                            ref, g, waves, gate, reason="retrained"
                        ),
                        progress=_setter(doing, f"retraining {group}: "),
                    )
                    doing[0] = ""
                    world.outcomes.append(outcome.to_dict())
                    timeline.say(sim_ms(), f"{group}: {outcome.status}: {outcome.reason}")
                    if outcome.rollout_id:
                        world.rollouts.append(outcome.rollout_id)
                        retrain_rollouts.add(outcome.rollout_id)
            if retrained and not bad_done:
                bad_done = True
                group = next(g for g in sorted({d.group for d in world.fleet}) if g != world.drift_group)
                timeline.say(sim_ms(), f"{group}: a deliberately bad candidate (threshold factor 0.2)")
                bad = run_retrain(
                    settings,
                    group,
                    trigger="manual",
                    actor=actor,
                    policy=settings.retrain,
                    until_us=sim_ms() * 1000,
                    config_overrides={"threshold": {"quantile": 0.9, "factor": 0.2}},
                    progress=_setter(doing, f"bad candidate for {group}: "),
                )
                doing[0] = ""
                world.outcomes.append(bad.to_dict())
                timeline.say(sim_ms(), f"{group}: {bad.status}: {bad.reason[:200]}")
            if not offline_started and (any(o.get("rollout_id") for o in world.outcomes) or now > end_ms):
                offline_started = True
                back = world.offline_device
                _start_agent(sup, back, configs[back], options)
                timeline.say(now, f"{back} comes back online")
            status["alarms"] = len(seen_alarms)
            status["rollouts"] = _rollout_counts(store, world.rollouts)
            if not out.is_terminal and time.monotonic() - float(status["said_s"]) >= 30:
                status["said_s"] = time.monotonic()
                out.print(f"[dim]status: {status_line()}[/]")
            time.sleep(1.0)
            if time.monotonic() - wall_start > options.run_h * 3600 / options.speed + 600:
                raise ServiceError(
                    f"the agents did not finish in time; see {settings.workspace / 'agents'}/*/agent.log"
                )
    for _ in range(5):
        rollouts.tick(sim_ms() / 1000)
        time.sleep(0.5)
    return _figures(world, store, timeline, options)


def _rollout_counts(store: Any, rollout_ids: list[str]) -> str:
    """``2 running, 1 completed``: the demo's rollouts by status."""
    counts: dict[str, int] = {}
    for rid in rollout_ids:
        row = store.get_rollout(rid)
        if row is not None:
            counts[row.status] = counts.get(row.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def _champion_ref(settings: Settings, group: str) -> str:

    with open_store(settings.resolved_database_url) as store, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        reg = Registry(resolve_tracking_uri(settings.workspace, cli=None), EventSink(store, None))
        champion = reg.champion(group)
    if champion is None:
        raise ServiceError(f"{group} has no champion")
    return champion.ref


def _figures(world: _World, store: Any, timeline: Timeline, options: LoopOptions) -> dict[str, Any]:

    devices = {d.device_id: d.group for d in world.fleet}
    phases = false_alarm_phases(store, devices, world.drift_group, world.drift_ms, world.faults, world.t0_ms)
    detection = fault_detection(store, world.faults, world.t0_ms)
    entries = store.audit_entries()
    try:
        verify_chain(entries)
        audit = f"{len(entries)} entries, the chain verifies"
        audit_verified = True
    except PumpopsError as exc:
        audit = f"the chain does NOT verify: {exc}"
        audit_verified = False
    timeline.say(timeline.t0_ms + round(options.run_h * _H_MS), f"audit: {audit}")
    rollouts = []
    for rid in world.rollouts:
        steps = []
        for e in entries:
            if not (e.subject.endswith(rid) and e.action.startswith("rollout.")):
                continue
            payload = json.loads(e.payload_json)
            at_h = (float(payload["at_s"]) * 1000 - world.t0_ms) / _H_MS
            why = payload.get("verdict", {}).get("reasons", payload.get("desired", ""))
            steps.append(f"{e.action.removeprefix('rollout.')} at {at_h:+.2f} h: {json.dumps(why)}")
        wave_starts = [
            (float(json.loads(e.payload_json)["at_s"]) * 1000 - world.t0_ms) / _H_MS
            for e in entries
            if e.subject.endswith(rid) and e.action in ("rollout.started", "rollout.wave_passed")
        ]
        row = store.get_rollout(rid)
        rollouts.append(
            {
                "rollout_id": rid,
                "title": f"{row.release} → {row.group}: {row.status}" if row else rid,
                "group": row.group if row else "",
                "version": int(row.release.rsplit("/", 1)[1]) if row else 0,
                "wave_starts_h": wave_starts,
                "steps": steps,
            }
        )
    by_phase = {f"{p.group} / {p.phase}": None if p.rate is None else round(p.rate * 100, 3) for p in phases}
    loop: dict[str, Any] = {}
    for key in ("fleet_drift_ms", "retrained_group_complete_ms"):
        if key in world.milestones:
            sim_h = (world.milestones[key] - world.drift_ms) / _H_MS
            wall_key = key.removesuffix("_ms") + "_wall"
            wall_s = None
            if wall_key in world.milestones and "drift_wall" in world.milestones:
                wall_s = round((world.milestones[wall_key] - world.milestones["drift_wall"]) / 1000, 1)
            loop[key.removesuffix("_ms") + "_after_drift"] = {
                "simulated_h": round(sim_h, 2),
                "wall_s": wall_s,
            }
    figures: dict[str, Any] = {
        "drift_onset_to": loop,
        "false_alarm_percent": by_phase,
        "faults": detection,
        "retraining": world.outcomes,
        "rollouts": [{"rollout_id": r["rollout_id"], "title": r["title"]} for r in rollouts],
        "audit": audit,
        "audit_verified": audit_verified,
    }
    first = world.faults[0] if world.faults else None
    faulty = None
    if first is not None:
        faulty = {
            "device_id": first["device_id"],
            "kind": first["kind"],
            "start_h": first["start_s"] / 3600,
            "end_h": (first["start_s"] + first["duration_s"]) / 3600,
        }
    figures["summary"] = (
        f"{len(world.fleet)} pumps; drift on {world.drift_group} at {options.drift_at_h:g} h; "
        + "; ".join(f"{k}: {v} %" for k, v in by_phase.items())
    )
    report = write_report(
        world.settings.workspace / "report.html",
        store=store,
        timeline=timeline.entries,
        phases=phases,
        detection=detection,
        faulty=faulty,
        rollouts=rollouts,
        figures=figures,
        t0_ms=world.t0_ms,
    )
    _print_figures(timeline.console, phases, detection, world.outcomes)
    for key, value in loop.items():
        timeline.console.print(
            f"drift onset → {key.removesuffix('_after_drift').replace('_', ' ')}: "
            f"{value['simulated_h']} simulated h ({value['wall_s']} s wall, agents at {options.speed:g}×)"
        )
    figures["report"] = str(report)
    return figures


def _print_figures(console: Console, phases: Any, detection: Any, outcomes: Any) -> None:

    table = Table(title="False alarms: alarmed fraction of normal rows")
    for col in ("group", "phase", "rows", "alarmed"):
        table.add_column(col)
    for p in phases:
        table.add_row(p.group, p.phase, str(p.rows), "" if p.rate is None else f"{p.rate * 100:.2f} %")
    console.print(table)
    faults = Table(title="Faults on the devices")
    for col in ("pump", "fault", "start", "detected", "delay"):
        faults.add_column(col)
    for d in detection:
        faults.add_row(
            d["device_id"],
            d["kind"],
            f"{d['start_h']} h",
            "yes" if d["detected"] else "no",
            "" if d["delay_s"] is None else f"{d['delay_s']} s",
        )
    console.print(faults)
    for o in outcomes:
        console.print(f"retraining {o['group']} ({o['trigger']}): [bold]{o['status']}[/] — {o['reason']}")
