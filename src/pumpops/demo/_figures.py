"""The loop demo's console (live status, phases) and its figures (what happened, from the store)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from pumpops.audit import ANCHORS_FILE, read_anchors, verify_trail, workspace_key
from pumpops.demo._measure import (
    drift_truth,
    drift_verdicts,
    false_alarm_goal,
    fault_recall,
    read_truth,
    tiers_acted,
)
from pumpops.demo._report import false_alarm_phases, fault_detection, verdict_chart, write_report
from pumpops.demo._world import _H_MS, LoopOptions, Timeline, _World
from pumpops.errors import PumpopsError


def _figures(world: _World, store: Any, timeline: Timeline, options: LoopOptions) -> dict[str, Any]:

    devices = {d.device_id: d.group for d in world.fleet}
    phases = false_alarm_phases(
        store, devices, world.drift_group, world.drift_ms, world.faults, world.t0_ms, drifted=world.drifted
    )
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
    measures = _measures(world, store, options, phases, detection, loop)
    figures: dict[str, Any] = {
        "drift_kind": options.drift_kind,
        "measures": measures,
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
        verdicts=verdict_chart(
            measures["verdicts"]["pumps"],
            {
                f["device_id"]: [(f["start_s"] / 3600, (f["start_s"] + f["duration_s"]) / 3600)]
                for f in world.faults
            },
            options.run_h,
        ),
    )
    _print_figures(timeline.console, phases, detection, world.outcomes)
    _print_measures(timeline.console, measures)
    for key, value in loop.items():
        timeline.console.print(
            f"drift onset → {key.removesuffix('_after_drift').replace('_', ' ')}: "
            f"{value['simulated_h']} simulated h ({value['wall_s']} s wall, agents at {options.speed:g}×)"
        )
    figures["report"] = str(report)
    return figures


def _measures(  # noqa: PLR0917 - the facts of one run
    world: _World,
    store: Any,
    options: LoopOptions,
    phases: Any,
    detection: list[dict[str, Any]],
    loop: dict[str, Any],
) -> dict[str, Any]:
    """Issue 15's figures of this run against the simulator's ground truth (``_measure``)."""
    onsets, fault_truth = drift_truth(read_truth(world.settings.workspace / "ground-truth.json"))
    reports = {
        d.device_id: [
            (rec.ts_ms, rec.body()) for rec in store.agent_messages(device_id=d.device_id, kind="drift")
        ]
        for d in world.fleet
    }
    rates: dict[str, dict[str, float | None]] = {}
    for p in phases:
        rates.setdefault(p.group, {})[p.phase] = None if p.rate is None else round(p.rate * 100, 3)
    recovered_ms = world.milestones.get("retrained_group_complete_ms")
    recovered_h = None if recovered_ms is None else (recovered_ms - world.t0_ms) / _H_MS
    return {
        "drift_kind": options.drift_kind,
        "drifted_pumps": list(world.drifted),
        "false_alarms": false_alarm_goal(rates),
        "verdicts": drift_verdicts(reports, onsets, fault_truth, t0_ms=world.t0_ms),
        "hub_verdicts": drift_verdicts(
            {
                dev: [
                    (ts, {"alert": v in ("group_drift", "device_local"), "classification": v})
                    for ts, v in seen
                ]
                for dev, seen in world.hub_verdicts.items()
            },
            onsets,
            fault_truth,
            t0_ms=world.t0_ms,
        ),
        "fault_recall": fault_recall(detection, recovered_h),
        "recovered_h": None if recovered_h is None else round(recovered_h, 3),
        "tiers": tiers_acted(world.outcomes),
        "onset_to_recovered": loop.get("retrained_group_complete_after_drift"),
    }


def _print_measures(console: Console, m: dict[str, Any]) -> None:

    v = m["verdicts"]
    console.print(
        f"drift verdicts per pump ({m['drift_kind']} on {len(m['drifted_pumps'])} pumps): precision "
        f"{v['precision']}, recall {v['recall']} (tp {v['tp']}, fp {v['fp']}, fn {v['fn']}), "
        f"delay {v['delay_min']} min"
    )
    h = m["hub_verdicts"]
    console.print(
        f"the hub's per-pump verdicts: precision {h['precision']}, recall {h['recall']} "
        f"(tp {h['tp']}, fp {h['fp']}, fn {h['fn']}), delay {h['delay_min']} min"
    )
    for part, f in m["fault_recall"].items():
        console.print(
            f"faults {part} recovery: {f['detected']}/{f['faults']} detected, "
            f"mean delay {f['delay_s_mean']} s"
        )
    for group, g in m["false_alarms"].items():
        console.print(
            f"false alarms {group}: before {g['before']} %, stale {g['stale']} %, after {g['after']} % "
            f"({'within' if g['met'] else 'NOT within'} 1 pp of before)"
        )
    console.print(f"tier that acted: {', '.join(m['tiers']) or 'none'}")


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
