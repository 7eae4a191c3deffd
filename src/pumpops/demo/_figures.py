"""The loop demo's console (live status, phases) and its figures (what happened, from the store)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from pumpops.audit import ANCHORS_FILE, read_anchors, verify_trail, workspace_key
from pumpops.demo._report import false_alarm_phases, fault_detection, write_report
from pumpops.demo._world import _H_MS, LoopOptions, Timeline, _World
from pumpops.errors import PumpopsError


def _figures(world: _World, store: Any, timeline: Timeline, options: LoopOptions) -> dict[str, Any]:

    devices = {d.device_id: d.group for d in world.fleet}
    phases = false_alarm_phases(store, devices, world.drift_group, world.drift_ms, world.faults, world.t0_ms)
    detection = fault_detection(store, world.faults, world.t0_ms)
    entries = store.audit_entries()
    ws = world.settings.workspace
    try:  # what `pumpops audit verify` checks: chain, signatures, the workspace's anchored heads
        trail = verify_trail(entries, workspace_key(ws), read_anchors(ws / ANCHORS_FILE))
        audit = f"{len(entries)} entries verify" if trail.ok else f"does NOT verify: {trail.summary()}"
        audit_verified = trail.ok
    except PumpopsError as exc:
        audit = f"the audit trail cannot be checked: {exc}"
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
