"""The agent's reporting room: alarms, summaries, drift reports and state, into the outbox and out.

Every report becomes one agent message (:class:`pumpops.schema.AgentMessage`, written by
``_envelope.py`` without pydantic)
in the outbox; :meth:`ReportingRoom._forward` sends what the outbox holds
while the link is up (``state`` retained). Alarms are also appended to the
local, fsynced alarm log (``alarms.jsonl``); the last state report is kept in
``state.json`` for ``pumpops agent status``. Raw readings go straight to the
broker, rate-limited and best effort (they would crowd alarms out of the outbox).
May import: edge modules, schema, ``_atomic``, numpy, orjson.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pumpops._atomic import write_atomic
from pumpops.edge._alarms import AlarmStep
from pumpops.edge._envelope import RAW_SCHEMA_ID, TOPIC_OF_KIND, encode_envelope, with_msg_id
from pumpops.edge._metrics import render_textfile, write_textfile
from pumpops.edge._state import AGENT_VERSION, AgentBase
from pumpops.sources import Frame

__all__ = ["ReportingRoom"]

log = logging.getLogger("pumpops.agent")


@dataclass
class _Summary:
    start_ms: int
    rows: int = 0
    scores: list[float] = field(default_factory=list)
    non_finite: int = 0
    alarms_raised: int = 0
    alarm_rows: int = 0


class ReportingRoom(AgentBase):
    """What the agent tells the hub."""

    _raw_tokens: float
    _raw_at: float
    drift_status: dict[str, Any]
    _drift_scores: deque[float]
    _alarm_open: dict[str, Any] | None
    _summary: _Summary | None
    _next_summary_ms: int | None
    _next_state_ms: int
    _last_state_key: tuple[Any, ...] | None

    # ------------------------------------------------------------------ raw readings

    def _upload_raw(self, frame: Frame) -> None:
        """Send the frame as telemetry (for retraining data), within the rate limit, if the link is up.

        Best effort by design: raw readings do not go through the outbox (they
        would crowd out alarms); what is not sent is counted. The message id is
        derived from the device and the first timestamp, so a resend is stored once.
        """
        up = self.config.upload
        uplink = self.uplink
        if not up.raw_readings or uplink is None:
            return
        rows = int(frame.ts_ms.shape[0])
        now = time.monotonic()
        self._raw_tokens = min(
            up.raw_max_rows_per_s * 10, self._raw_tokens + (now - self._raw_at) * up.raw_max_rows_per_s
        )
        self._raw_at = now
        if not uplink.connected or rows > self._raw_tokens:
            self.counts["raw_rows_not_sent"] += rows
            return
        import orjson  # noqa: PLC0415 - only when raw readings are uploaded (0.5 MiB otherwise saved)

        payload = orjson.dumps(
            {
                "schema": RAW_SCHEMA_ID,
                "msg_id": f"{self.device_id}-raw-{int(frame.ts_ms[0])}",
                "device_id": self.device_id,
                "sent_at_ms": int(self._wall() * 1000),
                "sensors": [{"name": c.name, "unit": c.unit} for c in frame.channels],
                "ts_ms": np.ascontiguousarray(frame.ts_ms, dtype=np.int64),
                "values": np.ascontiguousarray(frame.values, dtype=np.float64),
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
        if uplink.publish(self._topic("telemetry"), payload):
            self._raw_tokens -= rows
            self.counts["raw_rows_sent"] += rows
        else:
            self.counts["raw_rows_not_sent"] += rows

    # ------------------------------------------------------------------ alarms, summaries, drift

    def _message(self, kind: str, body: dict[str, Any]) -> None:
        a = self.config.agent
        payload = encode_envelope(
            device_id=a.device_id,
            site=a.site,
            kind=kind,
            ts_ms=self._clock_ms(),
            agent_version=AGENT_VERSION,
            body=body,
        )
        self.outbox.put(kind, self._topic(TOPIC_OF_KIND[kind]), payload)

    def _model_ref(self) -> dict[str, Any]:
        m = self.model
        if m is None:
            return {"model_name": None, "model_version": None}
        return {"model_name": m.slot.model_name, "model_version": m.slot.model_version}

    def _record_score(self, ts_ms: int, score: float, finite: bool, step: AlarmStep) -> None:
        """Account one score and its alarm step: the summary, alarm messages, the drift verdict's scores."""
        summary = self._summary_now(ts_ms)
        summary.rows += 1
        if finite:
            summary.scores.append(score)
        else:
            summary.non_finite += 1
        if step.on:
            summary.alarm_rows += 1
        if step.raised:
            summary.alarms_raised += 1
            self._alarm_raised(ts_ms, score)
        elif step.on and self._alarm_open is not None:
            self._alarm_open["peak_score"] = max(self._alarm_open["peak_score"], score if finite else 0.0)
        if step.cleared:
            self._alarm_cleared(ts_ms)
        if finite:
            self._drift_scores.append(score)

    def _alarm_log(self, entry: dict[str, Any]) -> None:
        line = json.dumps({"device_id": self.device_id, **entry}, sort_keys=True) + "\n"
        with open(self.state_dir / "alarms.jsonl", "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def _alarm_raised(self, ts_ms: int, score: float) -> None:
        assert self.model is not None
        assert self.model.threshold is not None
        self.counts["alarms_raised"] += 1
        self._alarm_open = {
            "alarm_id": f"{self.device_id}:{ts_ms}",
            "started_ms": ts_ms,
            "peak_score": score,
            "threshold": self.model.threshold,
            **self._model_ref(),
        }
        body = {"event": "raised", "ended_ms": None, **self._alarm_open}
        self._alarm_log(body)
        self._message("alarm", body)
        log.warning(
            "ALARM raised on %s at %d: score %.4g > %.4g", self.device_id, ts_ms, score, self.model.threshold
        )

    def _alarm_cleared(self, ts_ms: int) -> None:
        if self._alarm_open is None:
            return
        body = {"event": "cleared", "ended_ms": ts_ms, **self._alarm_open}
        self._alarm_open = None
        self._alarm_log(body)
        self._message("alarm", body)
        log.warning("alarm cleared on %s at %d", self.device_id, ts_ms)

    def _summary_now(self, ts_ms: int) -> _Summary:
        if self._summary is None:
            self._summary = _Summary(start_ms=ts_ms)
        return self._summary

    def _flush_summary(self, end_ms: int) -> None:
        s = self._summary
        if s is None or s.rows == 0:
            return
        scores = np.asarray(s.scores, dtype=np.float64)
        stats = (
            {
                "min": float(scores.min()),
                "p50": float(np.quantile(scores, 0.5)),
                "p95": float(np.quantile(scores, 0.95)),
                "max": float(scores.max()),
                "mean": float(scores.mean()),
            }
            if scores.size
            else {}
        )
        self._message(
            "summary",
            {
                "period_start_ms": s.start_ms,
                "period_end_ms": end_ms,
                "rows": s.rows,
                "windows_scored": len(s.scores) + s.non_finite,
                "non_finite": s.non_finite,
                "score": stats,
                "threshold": self.model.threshold if self.model else None,
                "alarms_raised": s.alarms_raised,
                "alarm_rows": s.alarm_rows,
                **self._model_ref(),
            },
        )
        self._summary = None

    def _drift_report(self, report: dict[str, Any]) -> None:
        """Send a drift report with the device's verdict.

        With a shift test (its reference ready), the verdict is the
        :class:`~pumpops.edge.ShiftJudge`'s: drift when some sensors stayed
        shifted for consecutive reports by a level shift (``sensor_shift``,
        ``operating_shift``), not drift when nothing moved, when a shift is new
        (``new_shift``) or when it looks like a fault (``fault_like``: it grew or
        made a sensor noisier; the alarms speak for it). The report carries which
        sensors, by how much (reference sd and SI), since when, and why.

        Without one (its reference still being gathered, or too few normal rows),
        PSI and the score change test are reported but do not decide: live windows
        of slow, autocorrelated process values are rarely distributed like hours of
        reference. The verdict is then the model's own: the median score of the
        recent ``drift_window_rows`` scores above the alarm threshold.
        """
        model = self.model
        scores = np.asarray(self._drift_scores, dtype=np.float64)
        ratio = None
        if model is not None and model.threshold and scores.size >= 10:
            ratio = float(np.median(scores) / model.threshold)
        hint = report.get("hint") or ""
        monitor = model.drift if model is not None else None
        gathering = monitor.reference_progress if monitor is not None else None
        if hint:
            drifting = bool(report["alert"])
            status = "drift" if drifting else ("fault_like" if hint == "fault_like" else "ok")
        else:
            drifting = ratio is not None and ratio > 1.0
            status = "drift" if drifting else "ok"
        key = "drift_verdicts_drift" if drifting else "drift_verdicts_ok"
        self.counts[key] = self.counts.get(key, 0) + 1
        report = {**report, "alert": drifting, "psi_alert_sensors": report["drifted"],
                  "median_score_over_threshold": None if ratio is None else round(ratio, 4),
                  "reference": "ready" if hint else (
                      f"gathering {gathering[0]}/{gathering[1]}" if gathering else "none")}  # fmt: skip
        self.drift_status = {
            "status": status,
            "hint": hint or None,
            "shifted": report.get("shifted", []),
            "confirmed": report.get("confirmed", []),
            "since_ms": report.get("since_ms", {}),
            "fault_signs": report.get("fault_signs", []),
            "reference": report["reference"],
            "median_score_over_threshold": report["median_score_over_threshold"],
            # The sensors a drift verdict stands on (none for a fault-like change: the alarms speak);
            # without a shift test, PSI's (reported, not deciding).
            "drifted": (list(report.get("confirmed") or []) if drifting else [])
            if hint
            else report["drifted"],
            "change_fired": report["change"]["fired"],
            "rows": report["rows"],
        }
        if hint and hint != "none":
            log.warning("drift report: %s on %s (since %s)%s", hint, ", ".join(report.get("shifted", [])),
                        report.get("since_ms"), f"; fault signs: {report['fault_signs']}"
                        if report.get("fault_signs") else "")  # fmt: skip
        self._message("drift", {**report, **self._model_ref()})

    # ------------------------------------------------------------------ state

    def stale(self) -> bool:
        """Past the maximum model age without a successful update check (a model is installed)."""
        if self.model is None:
            return False
        last = self._persist.get("last_update_ok_ms")
        if last is None:
            return False
        return self._clock_ms() - int(last) > self.config.agent.max_model_age_h * 3_600_000

    def state_body(self) -> dict[str, Any]:
        """The ``state`` report."""
        m = self.model
        depth, depth_bytes = self.outbox.depth()
        if m is None:
            status = "no_model"
        elif self.commissioner is not None:
            status = "calibrating"
        elif self.health == "incompatible":
            status = "incompatible"
        elif m.window is not None and not m.window.ready:
            status = "warming_up"  # the window refills (no recent saved window to resume)
        else:
            status = "detecting"
        return {
            "status": status,
            "agent_version": AGENT_VERSION,
            **self._model_ref(),
            "slot": m.slot.slot if m else None,
            "manifest_sha256": m.slot.manifest_sha256 if m else None,
            "execution_provider": m.provider if m else None,
            "health": self.health,
            "health_reasons": self.health_reasons,
            "calibration": self.calibration_status(),
            "threshold": m.threshold if m else None,
            "last_update_check_ms": self._persist.get("last_update_check_ms"),
            "last_update_ok_ms": self._persist.get("last_update_ok_ms"),
            "last_update_error": self.last_update_error,
            "desired_version": self._desired,
            "stale": self.stale(),
            "outbox_depth": depth,
            "outbox_bytes": depth_bytes,
            "outbox_dropped": self.outbox.dropped(),
            "drift_status": self.drift_status,
            "alarm_active": self._alarm_open is not None,
            "counts": dict(self.counts),
            "window_rows": None
            if m is None or m.window is None
            else [min(m.window.rows_seen, m.window_rows), m.window_rows],
            "process": self.process_usage(),
        }

    def _window_fill(self) -> list[int] | None:
        """``[rows in the window, rows it needs]`` (``warming_up`` until they are equal)."""
        m = self.model
        if m is None or m.window is None:
            return None
        return [min(m.window.rows_seen, m.window_rows), m.window_rows]

    def _report_state(self, *, force: bool = False) -> None:
        body = self.state_body()
        key = (
            body["status"], body["model_version"], body["slot"], body["health"], body["calibration"],
            body["stale"], body["last_update_error"], body["drift_status"].get("status"),
            body["execution_provider"], body["desired_version"],
        )  # fmt: skip
        now = self._clock_ms()
        if not force and key == self._last_state_key and now < self._next_state_ms:
            return
        if not force and key == self._last_state_key and body["outbox_depth"] == 0:
            self._next_state_ms = now + round(self.config.agent.state_interval_s * 1000)
            self._write_metrics(body)  # the counters move while the state stands still
            return
        self._last_state_key = key
        self._next_state_ms = now + round(self.config.agent.state_interval_s * 1000)
        body["process"] = self.process_usage()  # resident memory, CPU share since the last report
        self._message("state", body)
        # Queuing this report may itself have dropped older messages (a full outbox): the
        # local status says what the outbox holds now, not just before.
        depth, depth_bytes = self.outbox.depth()
        body |= {"outbox_depth": depth, "outbox_bytes": depth_bytes, "outbox_dropped": self.outbox.dropped()}
        write_atomic(self.state_dir / "state.json", json.dumps(body, sort_keys=True, indent=1).encode())
        self._write_metrics(body)

    def _write_metrics(self, body: dict[str, Any]) -> None:
        """The counters for node_exporter's textfile collector (``[agent] metrics_textfile``)."""
        if self.config.agent.metrics_textfile:
            text = render_textfile(body, device_id=self.config.agent.device_id, now_s=time.time())
            write_textfile(self.state_dir / self.config.agent.metrics_textfile, text)

    # ------------------------------------------------------------------ the outbox feed

    def _forward(self) -> int:
        uplink = self.uplink
        if uplink is None or not uplink.connected:
            return 0

        def publish(topic: str, payload: bytes, msg_id: str) -> bool:
            return uplink.publish(topic, with_msg_id(payload, msg_id), retain=topic.endswith("/state"))

        return self.outbox.forward(publish)
