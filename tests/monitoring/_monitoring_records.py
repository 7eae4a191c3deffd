"""Builders of agent messages for the monitoring tests (as the ingest service would store them)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pumpops.fleet import Device
from pumpops.store import AgentRecord

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MINUTE_MS = 60_000
HOUR_MS = 3_600_000

#: Groups g1 (four pumps) and g2 (two), sites a and b.
FLEET = (
    *(Device(f"g1-{i}", "site-a", "acme-ansi", "g1") for i in range(1, 5)),
    *(Device(f"g2-{i}", "site-b", "sakura-esp", "g2") for i in range(1, 3)),
)


class Agent:
    """One simulated agent: numbers its messages like an outbox and builds the bodies."""

    def __init__(
        self, device_id: str, site: str = "site-a", *, model: str = "pumpops-g1", version: int = 1
    ) -> None:
        self.device_id = device_id
        self.site = site
        self.model = model
        self.version = version
        self.seq = 0

    def record(self, kind: str, ts_ms: int, body: dict[str, Any]) -> AgentRecord:
        """The next message of this agent."""
        self.seq += 1
        body_json = json.dumps(body, separators=(",", ":"), sort_keys=True)
        digest = hashlib.sha256(
            f"{self.device_id}:{self.seq}:{kind}:{ts_ms}:{body_json}".encode()
        ).hexdigest()
        return AgentRecord(
            msg_id=f"{self.device_id}:{self.seq}",
            device_id=self.device_id,
            site=self.site,
            kind=kind,
            ts_us=ts_ms * 1000,
            agent_version="0.1.0",
            body_json=body_json,
            payload_sha256=digest,
            received_at_us=ts_ms * 1000 + 5_000,
        )

    def _model(self) -> dict[str, Any]:
        return {"model_name": self.model, "model_version": self.version}

    def state(
        self,
        ts_ms: int,
        *,
        drift: str = "ok",
        health: str = "ok",
        stale: bool = False,
        status: str = "detecting",
    ) -> AgentRecord:
        """A state report."""
        return self.record(
            "state",
            ts_ms,
            {
                "status": status,
                **self._model(),
                "slot": "a",
                "health": health,
                "calibration": "calibrated (bundle)",
                "stale": stale,
                "outbox_depth": 3,
                "outbox_dropped": {},
                "drift_status": {"status": drift},
                "execution_provider": "CPUExecutionProvider",
                "last_update_error": None,
            },
        )

    def summary(
        self,
        end_ms: int,
        *,
        alarms: int = 0,
        period_ms: int = HOUR_MS,
        p50: float = 1.0,
        p95: float = 2.0,
        top: float = 3.0,
        mean: float = 1.2,
        windows: int = 100,
    ) -> AgentRecord:
        """A summary of the period ending at ``end_ms``."""
        return self.record(
            "summary",
            end_ms,
            {
                "period_start_ms": end_ms - period_ms,
                "period_end_ms": end_ms,
                "rows": 3600,
                "windows_scored": windows,
                "score": {"min": 0.1, "p50": p50, "p95": p95, "max": top, "mean": mean},
                "alarms_raised": alarms,
                "alarm_rows": alarms * 10,
                **self._model(),
            },
        )

    def drift(self, ts_ms: int, *, alert: bool, psi: dict[str, float | None] | None = None) -> AgentRecord:
        """A drift report."""
        psi = psi if psi is not None else {"flow_rate": 0.4 if alert else 0.02, "motor_current": 0.05}
        drifted = sorted(k for k, v in psi.items() if v is not None and v > 0.25)
        return self.record(
            "drift",
            ts_ms,
            {
                "rows": 1000,
                "scores": 900,
                "psi": psi,
                "psi_alert": 0.25,
                "drifted": drifted,
                "change": {"fired": False, "detections": 0, "statistic": 0.0},
                "alert": alert,
                "reason": "schedule",
                **self._model(),
            },
        )

    def alarm(self, started_ms: int, *, event: str = "raised", ended_ms: int | None = None) -> AgentRecord:
        """An alarm message."""
        return self.record(
            "alarm",
            ended_ms if ended_ms is not None else started_ms,
            {
                "event": event,
                "alarm_id": f"{self.device_id}:{started_ms}",
                "started_ms": started_ms,
                "ended_ms": ended_ms,
                "peak_score": 9.0,
                "threshold": 4.0,
                **self._model(),
            },
        )
