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

``--secure`` (``LoopOptions.secure``) tells the same story over a Mosquitto run
from the configuration ``pumpops broker config`` writes (TLS, passwords, ACL):
the hub's services and every pump connect with their own credentials (``_secure``).

Every process it starts (the embedded broker, the agents) runs in its own
process group under a :class:`~pumpops.hub._supervise.Supervisor`: one that
exits unexpectedly fails the demo within seconds with its last log lines, and
all of them are stopped when the demo ends, however it ends (error, Ctrl-C,
SIGTERM). Each phase shows its progress; the run has a live status line.
May import: every part.
"""

from __future__ import annotations

import json
import statistics
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

from pumpops.demo._console import _default_console, _phase, _setter, _status
from pumpops.demo._figures import _figures
from pumpops.demo._report import fault_span_ms
from pumpops.demo._secure import DemoBroker, agent_broker_lines, demo_broker, secure_settings_lines
from pumpops.demo._world import (
    _H_MS,
    ACTOR,
    LoopOptions,
    Timeline,
    _agent_config,
    _Http,
    _prepare,
    _scheduled_events,
    _settings_file,
    _start_agent,
    _World,
)
from pumpops.errors import CheckFailed, PumpopsError, ServiceError
from pumpops.hub import (
    Supervisor,
    event_sink,
    ingest_service,
    intent_signer,
    open_workspace_store,
    registry_for,
    service_address,
)
from pumpops.monitoring import MonitoringService, record_feedback
from pumpops.retrain import GroupFacts, decide_retrain, run_retrain
from pumpops.rollout import GatePolicy, MqttDesiredPublisher, RolloutService
from pumpops.settings import Settings

__all__ = ["LoopOptions", "Timeline", "loop_verdict", "run_loop_demo"]


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
    ws_arg = options.workspace
    out.print(
        f"Dashboard: `pumpops -w {ws_arg} hub serve`, then open http://127.0.0.1:8080/ui/ and log in with "
        f"a token from `pumpops -w {ws_arg} tokens create --name you --role operator` "
        "(`pumpops demo --serve` does both and keeps the hub running until Ctrl-C)",
        soft_wrap=True,
    )
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
        (failed validation; absent when figures say ``bad_candidate: false``, not tried),
        ``audit_verified``, and ``loop_closed`` (all of them).
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
    if figures.get("bad_candidate") is False:  # not tried in this run (``LoopOptions.bad_candidate``)
        del verdict["bad_candidate_blocked"]
    verdict["loop_closed"] = all(verdict.values())
    return verdict


def _write_summary(ws: Path, summary: dict[str, Any]) -> Path:
    path = ws / "summary.json"
    if ws.is_dir():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
        tmp.replace(path)
    return path


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
    secure = options.secure
    with (
        demo_broker(ws, world.fleet, world.settings.topic_prefix, secure=secure) as broker,
        open_workspace_store(world.settings) as store,
    ):
        sup.watch_process(
            "the MQTT broker" if secure else "the embedded MQTT broker", broker.proc, broker.log
        )
        secured = secure_settings_lines(ws, broker) if secure else ("", "")
        world.settings = _settings_file(ws, broker.port, secured)
        # the hub's services connect as their own identities ([broker_auth]) over TLS when secure
        ingest = ingest_service(world.settings, store, broker.address).start()
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
            retained = MqttDesiredPublisher(service_address(world.settings, "rollout", broker.address))
            how = "Mosquitto with TLS, passwords and the ACL; every pump provisioned" if secure else "open"
            out.print(
                f"broker on {broker.url} ({how}; pid {broker.proc.pid}), ingest, "
                f"TUF repository on http://127.0.0.1:{http.port}/tuf/"
            )
            sup.watch_in_background()
            figures = _run_story(
                options, world, store, retained, http.port, root, sup, broker, stop_after=stop_after
            )
            figures["broker"] = broker.describe()
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
    broker: DemoBroker,
    *,
    stop_after: str | None = None,
) -> dict[str, Any]:

    settings = world.settings
    timeline = world.timeline
    out = timeline.console
    actor = ACTOR
    sink = event_sink(settings, store)
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
        intent=intent_signer(settings, store),
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
                broker=agent_broker_lines(broker, d.device_id),
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
    half_ms = world.t0_ms + round(options.run_h * _H_MS / 2)
    seen_alarms: set[str] = set()
    alerts_said: set[str] = set()
    marked: set[str] = set()  # alarms the technicians have judged
    retrain_rollouts: set[str] = set()
    retrained: set[str] = set()
    bad_done = False
    offline_started = False
    # An agent normally exits when its data ends; one hung at its exit (seen: its MQTT thread
    # died in the interpreter's shutdown) is stopped this long (wall) after the run's end.
    straggler_grace_s = max(60.0, 0.5 * options.run_h * 3600 / options.speed)
    ended_at: float | None = None
    last_run: dict[str, int] = {}
    status: dict[str, Any] = {"alarms": 0, "rollouts": "", "said_s": time.monotonic()}
    doing = [""]  # the retraining step under way, if any
    last_verdicts = [0]

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
            if now >= end_ms and offline_started:
                ended_at = ended_at or time.monotonic()
                if time.monotonic() - ended_at > straggler_grace_s:
                    for name in sup.stop_stragglers("agent "):
                        timeline.say(
                            now, f"{name} had not exited {straggler_grace_s:.0f} s after the run: stopped"
                        )
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
            if now - last_verdicts[0] >= _VERDICT_EVERY_MS:
                last_verdicts[0] = now
                _record_verdicts(world, monitoring, now)
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
                    timeline.say(
                        now, f"technicians mark the alarms of {alert.group}'s drifting pumps as false alarms"
                    )
                # While the alert is open the site technicians keep checking the group's alarmed pumps
                # (alarms that reach the hub later too: marked once, they stayed out of the retraining's
                # data): nothing wrong with them, unless the pump has a scheduled fault then.
                _technicians_mark(world, store, sink, alert.group, marked)
            for group in sorted({d.group for d in world.fleet}):
                alert_open = any(a.group == group for a in store.fleet_alerts(open_only=True))
                under_way = [state for _, state in rollouts.rollouts(group=group, active_only=True)]
                facts = GroupFacts(
                    group=group,
                    now_us=now * 1000,
                    drift_alert_open=alert_open,
                    drift_alert_opened_us=max(
                        (a.opened_at_us for a in store.fleet_alerts(group=group, open_only=True)),
                        default=None,
                    ),
                    last_run_us=last_run.get(group),
                    rollout_active=bool(under_way),
                    # a rollout whose soak saw the drift and paused: the retrain supersedes it
                    rollout_gate_paused=bool(under_way) and all(st.paused_by_gate for st in under_way),
                    # the shift verdicts' onset: the retrain waits for, trains on and is judged
                    # on data after it (the post-drift gate)
                    drift_onset_us=(
                        _drift_onset_us(monitoring, group, now)
                        if options.post_drift_gate and alert_open and group not in retrained
                        else None
                    ),
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
                            ref, g, waves, gate, reason="retrained", supersede_gate_paused=True
                        ),
                        progress=_setter(doing, f"retraining {group}: "),
                        drift_onset_us=decision.drift_onset_us if options.post_drift_gate else None,
                    )
                    doing[0] = ""
                    if outcome.status == "waiting":  # not enough post-drift data yet: try again later
                        retrained.discard(group)
                        last_run.pop(group, None)
                        timeline.say(sim_ms(), f"{group}: {outcome.reason}")
                        continue
                    world.outcomes.append(outcome.to_dict())
                    timeline.say(sim_ms(), f"{group}: {outcome.status}: {outcome.reason}")
                    if outcome.rollout_id:
                        world.rollouts.append(outcome.rollout_id)
                        retrain_rollouts.add(outcome.rollout_id)
            # The bad candidate takes a minute or two of wall time, hours of the agents' time at
            # 120x: it waits until the retrained group's rollout has ended, not to hold it up.
            retrain_rolling = any(
                row.rollout_id in retrain_rollouts for row, _ in rollouts.rollouts(active_only=True)
            )
            if retrained and not bad_done and options.bad_candidate and not retrain_rolling:
                bad_done = True
                _bad_candidate(world, settings, sim_ms(), doing)
            agents_done = not sup.alive("agent ")  # the hub's clock can stop just short of the end
            # The offline pump returns with the retrained rollout or, in a run without one, half-way:
            # started at the end it replayed the whole run alone and outlasted the guard below.
            if not offline_started and (
                any(o.get("rollout_id") for o in world.outcomes) or now >= half_ms or agents_done
            ):
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
    if options.bad_candidate and not bad_done:  # the agents ended while the retrained rollout ran
        _bad_candidate(world, settings, sim_ms(), doing)
    figures = _figures(world, store, timeline, options)
    figures["bad_candidate"] = options.bad_candidate
    return figures


def _technicians_mark(world: _World, store: Any, sink: Any, group: str, marked: set[str]) -> None:
    """Mark the group's raised alarms not judged yet false alarms, except those during a scheduled fault."""
    for dev in [d.device_id for d in world.fleet if d.group == group]:
        spans = [fault_span_ms(f, world.t0_ms) for f in world.faults if f["device_id"] == dev]
        for rec in store.agent_messages(device_id=dev, kind="alarm"):
            body = rec.body()
            alarm_id = str(body.get("alarm_id"))
            if body.get("event") != "raised" or alarm_id in marked:
                continue
            marked.add(alarm_id)
            started = int(body.get("started_ms", rec.ts_ms))
            if any(start <= started < end for start, end in spans):
                continue  # the technician finds the fault: the alarm was right
            record_feedback(
                store,
                sink,
                alarm_id,
                verdict="false_alarm",
                actor="technician@site",
                note="inspected: sensor recalibrated, no fault",
            )


def _bad_candidate(world: _World, settings: Settings, now_ms: int, doing: list[str]) -> None:
    """Retrain a make without drift with a far too low threshold: validation must block it."""
    group = next(g for g in sorted({d.group for d in world.fleet}) if g != world.drift_group)
    world.timeline.say(now_ms, f"{group}: a deliberately bad candidate (threshold factor 0.2)")
    bad = run_retrain(
        settings,
        group,
        trigger="manual",
        actor=ACTOR,
        policy=settings.retrain,
        until_us=now_ms * 1000,
        config_overrides={"threshold": {"quantile": 0.9, "factor": 0.2}},
        progress=_setter(doing, f"bad candidate for {group}: "),
    )
    doing[0] = ""
    world.outcomes.append(bad.to_dict())
    world.timeline.say(now_ms, f"{group}: {bad.status}: {bad.reason[:200]}")


def _drift_onset_us(monitoring: MonitoringService, group: str, now_ms: int) -> int | None:
    """When the group's shared shift began, by its devices' shift verdicts (None: not known)."""
    try:
        shift = monitoring.shift_verdicts(now_ms * 1000).get(group)
    except PumpopsError:
        return None
    if shift is None or shift.verdict != "drift" or not shift.since_ms:
        return None
    return min(shift.since_ms.values()) * 1000


_VERDICT_EVERY_MS = 300_000  # how often (hub time) the hub's per-pump shift verdicts are recorded


def _record_verdicts(world: _World, monitoring: MonitoringService, now_ms: int) -> None:
    """Note each pump's verdict from the hub's shift verdicts (drift, device-local, fault, ok)."""
    try:
        verdicts = monitoring.shift_verdicts(now_ms * 1000)
    except PumpopsError:
        return  # a figure of the report, not a step of the loop
    for shift in verdicts.values():
        for device_id, verdict in shift.devices.items():
            world.hub_verdicts.setdefault(device_id, []).append((now_ms, str(verdict)))


def _rollout_counts(store: Any, rollout_ids: list[str]) -> str:
    """``2 running, 1 completed``: the demo's rollouts by status."""
    counts: dict[str, int] = {}
    for rid in rollout_ids:
        row = store.get_rollout(rid)
        if row is not None:
            counts[row.status] = counts.get(row.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def _champion_ref(settings: Settings, group: str) -> str:

    with open_workspace_store(settings) as store, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        reg = registry_for(settings, event_sink(settings, store))
        champion = reg.champion(group)
    if champion is None:
        raise ServiceError(f"{group} has no champion")
    return champion.ref
