"""The agent's own counters as a Prometheus textfile (node_exporter's textfile collector format).

Written by hand (no ``prometheus_client`` on the edge: the agent stays lean) from
the ``state`` report at each state report, and replaced atomically (a synced
temporary file named ``.tmp-<name>.*``, then ``os.replace``), so the collector,
which reads ``*.prom`` only, never sees half a file. The format is the text
exposition format 0.0.4: ``# HELP``, ``# TYPE``, then samples; counters end in
``_total`` and restart from zero with the agent (Prometheus' ``rate`` and
``increase`` handle the reset).
May import: ``_atomic`` and the standard library (pure text).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pumpops._atomic import write_atomic

__all__ = ["render_textfile", "write_textfile"]

log = logging.getLogger("pumpops.agent")

_MIB = 1024 * 1024

#: Agent counts (``state.counts``) exported as ``pumpops_agent_<key>_total``, with their help.
_COUNTS = {
    "rows": "Rows of readings read from the source.",
    "rows_out_of_order": "Rows dropped for a timestamp not after the previous one.",
    "rows_incomplete": "Rows with a sensor missing past the gap fill.",
    "rows_without_model": "Rows read while no model was installed.",
    "windows_scored": "Rows scored by the model (one score per window).",
    "scores_non_finite": "Scores that were NaN or infinite.",
    "score_errors": "Scoring calls that raised.",
    "alarms_raised": "Alarms raised.",
    "raw_rows_sent": "Raw reading rows uploaded for retraining.",
    "raw_rows_not_sent": "Raw reading rows not uploaded (link down or over the rate limit).",
}
#: Counts exported as one labelled counter each: key -> (metric, label, value).
_LABELLED = {
    "update_checks_ok": ("update_checks", "result", "ok"),
    "update_checks_failed": ("update_checks", "result", "failed"),
    "drift_verdicts_ok": ("drift_verdicts", "verdict", "ok"),
    "drift_verdicts_drift": ("drift_verdicts", "verdict", "drift"),
}
_LABELLED_HELP = {
    "update_checks": "Update checks of the model repository, by result.",
    "drift_verdicts": "Drift reports sent, by the model's verdict.",
}


def _label(value: object) -> str:
    r"""A label value escaped for the text format (backslash, double quote, newline).

    >>> _label('a"b\\c\nd')
    'a\\"b\\\\c\\nd'
    """
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    """A sample value: integers without a decimal point, ``NaN`` and ``±Inf`` as the format spells them.

    >>> _number(3), _number(2.5), _number(float("nan")), _number(float("-inf"))
    ('3', '2.5', 'NaN', '-Inf')
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _family(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[Mapping[str, object], float]]
) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        inner = ",".join(f'{key}="{_label(val)}"' for key, val in sorted(labels.items()))
        lines.append(f"{name}{{{inner}}} {_number(value)}" if inner else f"{name} {_number(value)}")
    return lines


def render_textfile(state: Mapping[str, Any], *, device_id: str, now_s: float) -> str:
    """The textfile for one ``state`` report (``ReportingRoom.state_body``) of ``device_id``.

    >>> text = render_textfile({"counts": {"alarms_raised": 2}, "outbox_depth": 5}, device_id="p-1", now_s=1)
    >>> "pumpops_agent_alarms_raised_total 2" in text, "pumpops_agent_outbox_messages 5" in text
    (True, True)
    """
    counts: Mapping[str, Any] = state.get("counts") or {}
    lines: list[str] = []
    info = {"device_id": device_id, "status": state.get("status") or "unknown",
            "model_version": state.get("model_version") if state.get("model_version") is not None else "",
            "agent_version": state.get("agent_version") or "",
            "health": state.get("health") or ""}  # fmt: skip
    lines += _family("pumpops_agent_info", "gauge", "The agent: device, status, model version, health.",
                     [(info, 1)])  # fmt: skip
    lines += _family("pumpops_agent_report_timestamp_seconds", "gauge",
                     "When this file was written (Unix time).", [({}, now_s)])  # fmt: skip
    for key, help_text in _COUNTS.items():
        lines += _family(f"pumpops_agent_{key}_total", "counter", help_text, [({}, int(counts.get(key, 0)))])
    for metric, help_text in _LABELLED_HELP.items():
        samples = [({label: value}, int(counts.get(key, 0)))
                   for key, (name, label, value) in _LABELLED.items() if name == metric]  # fmt: skip
        lines += _family(f"pumpops_agent_{metric}_total", "counter", help_text, samples)
    lines += _family("pumpops_agent_outbox_messages", "gauge", "Messages queued in the outbox, not yet sent.",
                     [({}, int(state.get("outbox_depth") or 0))])  # fmt: skip
    lines += _family("pumpops_agent_outbox_bytes", "gauge", "Bytes queued in the outbox.",
                     [({}, int(state.get("outbox_bytes") or 0))])  # fmt: skip
    dropped: Mapping[str, Any] = state.get("outbox_dropped") or {}
    lines += _family("pumpops_agent_outbox_dropped_total", "counter", "Outbox messages dropped, by reason.",
                     [({"reason": reason}, int(n)) for reason, n in sorted(dropped.items())])  # fmt: skip
    process: Mapping[str, Any] = state.get("process") or {}
    for key, metric, help_text in (
        ("rss_mib", "resident_memory_bytes", "Resident memory of the agent process."),
        ("peak_rss_mib", "peak_resident_memory_bytes", "Peak resident memory of the agent process."),
        ("memory_budget_mib", "memory_budget_bytes", "The target's memory budget for the agent."),
    ):
        if process.get(key) is not None:
            lines += _family(
                f"pumpops_agent_{metric}", "gauge", help_text, [({}, float(process[key]) * _MIB)]
            )
    drift = (state.get("drift_status") or {}).get("status")
    flags = (
        ("drifting", "1 when the model's drift verdict is drift.", drift == "drift"),
        ("stale", "1 when no update check succeeded within max_model_age_h.", bool(state.get("stale"))),
        ("alarm_active", "1 while an alarm is open.", bool(state.get("alarm_active"))),
    )
    for name, help_text, flag in flags:
        lines += _family(f"pumpops_agent_{name}", "gauge", help_text, [({}, 1 if flag else 0)])
    last_ok = state.get("last_update_ok_ms")
    if last_ok is not None:
        when: list[tuple[Mapping[str, object], float]] = [({}, int(last_ok) / 1000)]
        help_text = "When an update check last succeeded (Unix time)."
        lines += _family("pumpops_agent_last_update_ok_timestamp_seconds", "gauge", help_text, when)
    return "\n".join(lines) + "\n"


def write_textfile(path: Path, text: str) -> bool:
    """Replace ``path`` with ``text`` atomically (the collector never reads half a file).

    A folder that cannot be written is logged (the agent goes on detecting) and
    ``False`` returned.
    """
    try:
        write_atomic(path, text.encode())
    except OSError as exc:
        log.warning("metrics textfile %s not written (the agent goes on): %s", path, exc)
        return False
    return True
