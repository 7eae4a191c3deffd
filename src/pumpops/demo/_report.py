"""The loop demo's figures and its HTML report (inline SVG: it opens offline, nothing is fetched).

Figures come from what the hub stored: the agents' summaries (alarmed rows per
model version and period), alarm messages against the scheduled faults,
rollout audit entries, and the readings of one faulty pump.
May import: store records, numpy, the stdlib.
"""

from __future__ import annotations

import html
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["false_alarm_phases", "fault_detection", "verdict_chart", "write_report"]

_H_MS = 3_600_000
#: After a simulated fault ends, the heat it put into the motor and bearing leaves over three of the
#: simulator's slowest thermal time constants (``ProcessTuning.motor_tau_s``, 1,200 s): for that hour
#: the pump is not back to normal yet, so its rows are no measure of false alarms.
FAULT_SETTLE_MS = 3 * 1_200_000


@dataclass(frozen=True)
class Phase:
    """Alarmed fraction of scored rows in one phase of one group."""

    group: str
    phase: str
    rows: int
    alarm_rows: int

    @property
    def rate(self) -> float | None:
        """Alarmed fraction (None without rows)."""
        return self.alarm_rows / self.rows if self.rows else None


def false_alarm_phases(  # noqa: PLR0917 - the facts of one run
    store: Any,
    devices: dict[str, str],
    drift_group: str,
    drift_ms: int,
    faults: Sequence[dict[str, Any]],
    t0_ms: int,
    *,
    drifted: Collection[str] | None = None,
) -> list[Phase]:
    """Alarmed fraction per group: before the drift, after it on the stale model, on the retrained model.

    Summaries that overlap a scheduled fault, or the hour after it while the pump cools, are
    left out (those alarms are right: ``FAULT_SETTLE_MS``).
    ``drifted``: the pumps the drift happened to (default: every pump of ``drift_group``);
    the group's other pumps count as "no drift (same period)" after the onset.
    """
    fault_spans = [(f["device_id"], *fault_span_ms(f, t0_ms, settle_ms=FAULT_SETTLE_MS)) for f in faults]
    acc: dict[tuple[str, str], list[int]] = {}
    for rec in store.agent_messages(kind="summary"):
        group = devices.get(rec.device_id)
        if group is None:
            continue
        b = rec.body()
        start, end = int(b.get("period_start_ms", 0)), int(b.get("period_end_ms", 0))
        if any(d == rec.device_id and start < e and end > s for d, s, e in fault_spans):
            continue
        version = int(b.get("model_version") or 0)
        hit = group == drift_group if drifted is None else rec.device_id in drifted
        if version > 1:
            phase = "retrained model"
        elif hit and start >= drift_ms:
            phase = "stale model, after drift"
        elif end <= drift_ms or not hit:
            phase = "before drift" if end <= drift_ms else "no drift (same period)"
        else:
            continue  # a summary across the drift onset
        cell = acc.setdefault((group, phase), [0, 0])
        cell[0] += int(b.get("rows", 0))
        cell[1] += int(b.get("alarm_rows", 0))
    return [Phase(g, p, r, a) for (g, p), (r, a) in sorted(acc.items())]


def fault_span_ms(fault: dict[str, Any], t0_ms: int, *, settle_ms: int = 0) -> tuple[int, int]:
    """``[start, end)`` of a scheduled fault in epoch ms, the end ``settle_ms`` later.

    >>> fault_span_ms({"start_s": 60.0, "duration_s": 30.0}, 1_000, settle_ms=5)
    (61000, 91005)
    """
    start = t0_ms + int(fault["start_s"] * 1000)
    return start, t0_ms + int((fault["start_s"] + fault["duration_s"]) * 1000) + settle_ms


def fault_detection(store: Any, faults: Sequence[dict[str, Any]], t0_ms: int) -> list[dict[str, Any]]:
    """Per scheduled fault: detected or not, and the delay of the first alarm."""
    out = []
    for f in faults:
        start, end = fault_span_ms(f, t0_ms)
        raised = [
            int(r.body().get("started_ms", 0))
            for r in store.agent_messages(device_id=f["device_id"], kind="alarm")
            if r.body().get("event") == "raised"
        ]
        hits = sorted(t for t in raised if start <= t < end)
        before = [t for t in raised if start - 600_000 <= t < start]
        out.append(
            {
                "device_id": f["device_id"],
                "kind": f["kind"],
                "start_h": round(f["start_s"] / 3600, 2),
                "detected": bool(hits) or bool(before),
                "delay_s": round((hits[0] - start) / 1000) if hits else None,
            }
        )
    return out


def _on_version(store: Any, group: str, version: int, t0_ms: int) -> tuple[list[float], list[float]]:
    """How many of the group's pumps report ``version`` over time (from their state reports)."""
    events: list[tuple[int, str, int | None]] = []
    for device in store.devices():
        if device.group != group:
            continue
        for rec in store.agent_messages(device_id=device.device_id, kind="state"):
            v = rec.body().get("model_version")
            events.append((rec.ts_ms, device.device_id, None if v is None else int(v)))
    events.sort(key=lambda e: (e[0], e[1]))
    current: dict[str, int | None] = {}
    xs: list[float] = []
    ys: list[float] = []
    for ts, device_id, v in events:
        current[device_id] = v
        xs.append((ts - t0_ms) / _H_MS)
        ys.append(float(sum(1 for x in current.values() if x == version)))
    return xs, ys


# ------------------------------------------------------------------------------ SVG


def _line_chart(
    series: Sequence[tuple[str, Sequence[float], Sequence[float], str]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    bands: Sequence[tuple[float, float, str]] = (),
    width: int = 760,
    height: int = 220,
    log_y: bool = False,
) -> str:
    xs = [x for _, sx, _, _ in series for x in sx]
    ys = [y for _, _, sy, _ in series for y in sy if np.isfinite(y)]
    if not xs or not ys:
        return f"<p>{html.escape(title)}: no data</p>"
    tf = (lambda v: float(np.log10(max(v, 1e-6)))) if log_y else float
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    ty = [tf(y) for y in ys]
    y0, y1 = min(ty), max(ty) if max(ty) > min(ty) else min(ty) + 1
    left, right, top, bottom = 60, 10, 24, 30
    w, h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * w

    def py(y: float) -> float:
        return top + h - (tf(y) - y0) / (y1 - y0) * h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
        f'<text x="{left}" y="15" font-size="13" font-weight="bold">{html.escape(title)}</text>',
    ]
    for a, b, color in bands:
        parts.append(
            f'<rect x="{px(a):.1f}" y="{top}" width="{max(1.0, px(b) - px(a)):.1f}" height="{h}" '
            f'fill="{color}" opacity="0.25"/>'
        )
    parts.append(f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#999"/>')
    for _name, sx, sy, color in series:
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(sx, sy, strict=True) if np.isfinite(y))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.3"/>')
    legend = " · ".join(f'<tspan fill="{c}">■</tspan> {html.escape(n)}' for n, _, _, c in series)
    parts += [
        f'<text x="{left + w}" y="15" font-size="11" text-anchor="end">{legend}</text>',
        f'<text x="{left}" y="{height - 8}" font-size="11">{x0:.2f}</text>',
        f'<text x="{left + w}" y="{height - 8}" font-size="11" text-anchor="end">'
        f"{x1:.2f} {html.escape(x_label)}</text>",
        f'<text x="4" y="{top + 10}" font-size="11">{html.escape(y_label)}</text>',
        "</svg>",
    ]
    return "".join(parts)


def _measures_table(m: dict[str, Any]) -> str:
    """Issue 15's figures of this run as a table (see ``_measure``)."""
    rows = []
    for group, g in m.get("false_alarms", {}).items():
        cells = " / ".join("–" if g[k] is None else f"{g[k]:.2f} %" for k in ("before", "stale", "after"))
        rows.append(
            (
                f"false alarms {group}: before / stale / after",
                cells + (" (goal met)" if g["met"] else " (goal NOT met)"),
            )
        )
    v = m.get("verdicts", {})
    rows.append(
        (
            "drift verdicts per pump: precision / recall",
            f"{v.get('precision')} / {v.get('recall')} "
            f"(tp {v.get('tp')}, fp {v.get('fp')}, fn {v.get('fn')})",
        )
    )
    rows.append(("drift verdict delay (min): mean / max", json.dumps(v.get("delay_min"))))
    hv = m.get("hub_verdicts", {})
    rows.append(
        (
            "the hub's per-pump verdicts: precision / recall",
            f"{hv.get('precision')} / {hv.get('recall')} (tp {hv.get('tp')}, fp {hv.get('fp')}, "
            f"fn {hv.get('fn')}); delay {json.dumps(hv.get('delay_min'))} min",
        )
    )
    for part, f in m.get("fault_recall", {}).items():
        rows.append(
            (
                f"faults {part} recovery",
                f"{f['detected']}/{f['faults']} detected, mean delay {f['delay_s_mean']} s",
            )
        )
    rows.append(("tier that acted", ", ".join(m.get("tiers", [])) or "none"))
    rec = m.get("onset_to_recovered")
    rows.append(
        (
            "drift onset → recovered group",
            "not recovered" if not rec else f"{rec['simulated_h']} simulated h, {rec['wall_s']} s wall",
        )
    )
    body = "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td></tr>" for a, b in rows)
    return f"<h2>The run against the ground truth</h2><table>{body}</table>"


def _bar_chart(rows: Sequence[tuple[str, str, float]], *, title: str, width: int = 760) -> str:
    phases = sorted({p for _, p, _ in rows})
    colors = dict(zip(phases, ("#4c78a8", "#e45756", "#54a24b", "#b279a2"), strict=False))
    groups = sorted({g for g, _, _ in rows})
    top = max([v for _, _, v in rows] + [1e-9])
    bar_h, gap = 16, 8
    height = 40 + len(rows) * bar_h + len(groups) * gap + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
        f'<text x="10" y="15" font-size="13" font-weight="bold">{html.escape(title)}</text>',
    ]
    y = 30
    for g in groups:
        for grp, phase, value in rows:
            if grp != g:
                continue
            bw = value / top * (width - 420)
            parts.append(
                f'<text x="10" y="{y + 12}" font-size="11">{html.escape(g)} — {html.escape(phase)}</text>'
            )
            parts.append(
                f'<rect x="300" y="{y + 2}" width="{bw:.1f}" height="{bar_h - 4}" fill="{colors[phase]}"/>'
            )
            parts.append(f'<text x="{305 + bw:.1f}" y="{y + 12}" font-size="11">{value * 100:.2f} %</text>')
            y += bar_h
        y += gap
    parts.append("</svg>")
    return "".join(parts)


def verdict_chart(
    pumps: Sequence[dict[str, Any]],
    faults_h: dict[str, list[tuple[float, float]]],
    end_h: float,
    *,
    width: int = 760,
) -> str:
    """Drift verdicts per pump against the truth, as inline SVG.

    A row per pump: the true drift shaded green from its onset, faults red, and a tick
    at every report that said drift.
    """
    row_h, left, top = 14, 150, 34
    height = top + len(pumps) * row_h + 30
    w = width - left - 10

    def px(hours: float) -> float:
        return left + max(0.0, min(hours, end_h)) / end_h * w

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
        '<text x="10" y="15" font-size="13" font-weight="bold">'
        "Drift verdicts per pump against the truth</text>",
        '<text x="10" y="28" font-size="11"><tspan fill="#54a24b">■</tspan> true benign drift · '
        '<tspan fill="#e45756">■</tspan> fault · | a report that said drift</text>',
    ]
    for i, p in enumerate(pumps):
        y = top + i * row_h
        label = f"{p['device_id']} ({p['truth']}{', called' if p['called'] else ''})"
        parts.append(f'<text x="10" y="{y + 10}" font-size="10">{html.escape(label)}</text>')
        parts.append(f'<rect x="{left}" y="{y + 1}" width="{w}" height="{row_h - 2}" fill="#f4f4f4"/>')
        if p.get("onset_h") is not None:
            a = px(float(p["onset_h"]))
            parts.append(
                f'<rect x="{a:.1f}" y="{y + 1}" width="{px(end_h) - a:.1f}" height="{row_h - 2}" '
                'fill="#54a24b" opacity="0.35"/>'
            )
        for a_h, b_h in faults_h.get(p["device_id"], []):
            a, b = px(a_h), px(b_h)
            parts.append(
                f'<rect x="{a:.1f}" y="{y + 1}" width="{max(1.0, b - a):.1f}" height="{row_h - 2}" '
                'fill="#e45756" opacity="0.45"/>'
            )
        for t in p.get("calls_h", []):
            x = px(float(t))
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y + 2}" y2="{y + row_h - 2}" stroke="#222"/>')
    base = top + len(pumps) * row_h + 14
    parts += [
        f'<text x="{left}" y="{base}" font-size="11">0 h</text>',
        f'<text x="{left + w}" y="{base}" font-size="11" text-anchor="end">{end_h:g} h</text>',
        "</svg>",
    ]
    return "".join(parts)


# ------------------------------------------------------------------------------ the page


def write_report(
    path: Path,
    *,
    store: Any,
    timeline: Sequence[tuple[float, str]],
    phases: Sequence[Phase],
    detection: Sequence[dict[str, Any]],
    faulty: dict[str, Any] | None,
    rollouts: Sequence[dict[str, Any]],
    figures: dict[str, Any],
    t0_ms: int,
    verdicts: str = "",
) -> Path:
    """Write the HTML report; return its path (``verdicts``: :func:`verdict_chart`'s SVG)."""
    sections = ["<h1>pumpops demo: the loop</h1>", f"<p>{html.escape(figures.get('summary', ''))}</p>"]
    measures = figures.get("measures")
    if measures:
        sections.append(_measures_table(measures))
    if verdicts:
        sections.append(verdicts)
    if faulty is not None:
        dev, kind, start_h, end_h = faulty["device_id"], faulty["kind"], faulty["start_h"], faulty["end_h"]
        frame = store.query(dev)
        hours = (frame.ts_us / 1000 - t0_ms) / _H_MS
        keep = hours >= 0
        series = []
        for name, color in zip(frame.sensors[:3], ("#4c78a8", "#f58518", "#54a24b"), strict=False):
            col = frame.values[keep, frame.sensors.index(name)]
            step = max(1, col.size // 1500)
            scale = np.nanmax(np.abs(col)) or 1.0
            series.append(
                (
                    f"{name} (÷{scale:.3g})",
                    hours[keep][::step].tolist(),
                    (col[::step] / scale).tolist(),
                    color,
                )
            )
        sections.append(
            _line_chart(
                series,
                title=f"{dev}: sensors ({kind} from {start_h:.2f} h, shaded)",
                x_label="h",
                y_label="scaled",
                bands=[(start_h, end_h, "#e45756")],
            )
        )
        summ = [r.body() for r in store.agent_messages(device_id=dev, kind="summary")]
        sx = [(int(b["period_end_ms"]) - t0_ms) / _H_MS for b in summ if b.get("score")]
        p95 = [float(b["score"]["p95"]) for b in summ if b.get("score")]
        thr = [float(b.get("threshold") or np.nan) for b in summ if b.get("score")]
        alarms = [
            (
                (int(r.body()["started_ms"]) - t0_ms) / _H_MS,
                ((int(r.body().get("ended_ms") or r.body()["started_ms"])) - t0_ms) / _H_MS,
            )
            for r in store.agent_messages(device_id=dev, kind="alarm")
            if r.body().get("event") == "cleared"
        ]
        sections.append(
            _line_chart(
                [("score p95 per summary", sx, p95, "#4c78a8"), ("threshold", sx, thr, "#e45756")],
                title=f"{dev}: score and alarms (alarms shaded)",
                x_label="h",
                y_label="score (log)",
                bands=[(a, max(b, a + 0.01), "#f58518") for a, b in alarms],
                log_y=True,
            )
        )
    sections.append(
        _bar_chart(
            [(p.group, p.phase, p.rate or 0.0) for p in phases],
            title="Alarmed fraction of normal rows (false alarms) per group and phase",
        )
    )
    rows = "".join(
        f"<tr><td>{html.escape(p.group)}</td><td>{html.escape(p.phase)}</td><td>{p.rows}</td>"
        f"<td>{'' if p.rate is None else f'{p.rate * 100:.2f} %'}</td></tr>"
        for p in phases
    )
    sections.append(
        f"<table><tr><th>group</th><th>phase</th><th>rows</th><th>alarmed</th></tr>{rows}</table>"
    )
    det = "".join(
        f"<tr><td>{html.escape(d['device_id'])}</td><td>{html.escape(d['kind'])}</td><td>{d['start_h']}</td>"
        f"<td>{'yes' if d['detected'] else 'no'}</td>"
        f"<td>{'' if d['delay_s'] is None else d['delay_s']}</td></tr>"
        for d in detection
    )
    sections.append(
        "<h2>Faults</h2><table><tr><th>pump</th><th>fault</th><th>start (h)</th><th>detected</th>"
        f"<th>delay (s)</th></tr>{det}</table>"
    )
    progress = []
    for r, color in zip(rollouts, ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#b279a2"), strict=False):
        xs, ys = _on_version(store, r["group"], r["version"], t0_ms)
        if xs:
            progress.append((f"{r['group']} on v{r['version']}", xs, ys, color))
    if progress:
        sections.append(
            _line_chart(
                progress,
                title="Rollout progress: pumps of the group running the release",
                x_label="h",
                y_label="pumps",
                bands=[(w, w + 0.02, "#999999") for r in rollouts for w in r.get("wave_starts_h", [])],
            )
        )
    for r in rollouts:
        steps = "".join(f"<li>{html.escape(s)}</li>" for s in r["steps"])
        sections.append(
            f"<h3>Rollout {html.escape(r['rollout_id'])}: {html.escape(r['title'])}</h3><ul>{steps}</ul>"
        )
    tl = "".join(f"<tr><td>{h:+.2f} h</td><td>{html.escape(t)}</td></tr>" for h, t in timeline)
    sections.append(f"<h2>Timeline</h2><table>{tl}</table>")
    sections.append(f"<h2>Figures</h2><pre>{html.escape(json.dumps(figures, indent=1, default=str))}</pre>")
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>pumpops demo</title>"
        "<style>body{font-family:sans-serif;max-width:820px;margin:2em auto}td,th{padding:2px 8px;"
        "border-bottom:1px solid #ddd;font-size:13px;text-align:left}svg{margin:1em 0}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>"
    )
    path.write_text(page, encoding="utf-8")
    return path
