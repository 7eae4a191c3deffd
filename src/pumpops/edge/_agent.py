"""The device agent: readings → window → model → alarms, with updates, outbox, drift and state.

One loop in one thread (paho's network thread aside)::

    source frames ─► RowMapper (native → model sensors, SI) ─► Resampler (training grid)
        ─► commissioning (no calibration yet) or WindowBuffer ─► onnxruntime ─► AlarmLogic
        ─► alarm log (local, fsynced) + outbox ``alarm``;  scores ─► summary, DriftMonitor
    between frames: ``desired`` messages, update checks (EdgeUpdater → Slots + health check),
    summaries, drift reports, state reports, outbox → broker

Everything the model needs comes from the bundle (sensors and units, window,
grid period, alarm rule, calibration, threshold parameters); the agent has no
model-specific code. Nothing here stops detection: a broker or repository
that is down, expired TUF metadata or a refused update are reported on
``state`` and retried, while the installed model keeps scoring.

Files under ``state_dir``: ``slots/`` (A/B slots), ``tuf/`` (TUF metadata
cache), ``downloads/`` (verified downloads), ``outbox.sqlite``,
``alarms.jsonl`` (the local alarm log), ``agent.json`` (update-check times),
``normal-period.npy`` (the commissioned normal period), ``state.json`` (the
last state report, for ``pumpops agent status``), ``recalibrate.request``.
May import: edge modules, sources, sim, fleet, schema, errors, numpy,
onnxruntime, paho-mqtt, python-tuf, ``pumpops.release._bundle``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort
import orjson

from pumpops import __version__
from pumpops._atomic import write_atomic
from pumpops.edge._alarms import AlarmLogic
from pumpops.edge._commission import Commissioner, _center_scale, commission
from pumpops.edge._config import AgentConfig
from pumpops.edge._drift import DriftMonitor
from pumpops.edge._health import HealthDecision, _provider, decide_health, measure_health
from pumpops.edge._outbox import Outbox
from pumpops.edge._resample import Resampler, RowMapper
from pumpops.edge._slots import Slots, SlotState
from pumpops.edge._updater import EdgeUpdater
from pumpops.edge._uplink import Uplink
from pumpops.edge._window import WindowBuffer
from pumpops.errors import IncompatibleBundleError, InputError, PumpopsError
from pumpops.fleet import Device, get_profile
from pumpops.schema import SCHEMA_ID, TOPIC_OF_KIND, AgentMessage, encode_agent_message, with_msg_id
from pumpops.sim import DriftKind, Event, FaultKind, Onset, Scenario, to_epoch_ms
from pumpops.sources import Frame, SimulatorSource, SkabCsvSource, Source

if TYPE_CHECKING:
    from pumpops.schema import Bundle

__all__ = ["AGENT_VERSION", "KILL_AT_ENV", "NORMAL_PERIOD_FILE", "RECALIBRATE_FILE", "Agent", "build_source"]

AGENT_VERSION = __version__
#: Fault injection for tests: ``kill -9`` the agent itself at this install step (see ``Slots.install``).
KILL_AT_ENV = "PUMPOPS_AGENT_KILL_AT"
NORMAL_PERIOD_FILE = "normal-period.npy"
RECALIBRATE_FILE = "recalibrate.request"
#: Windows scored after an install in which a model that only fails is rolled back.
_PROBATION_WINDOWS = 30
_RECENT_ROWS = 4096
_NO_DATA = "no calibration and no recent readings to check the model with (retried with data)"

log = logging.getLogger("pumpops.agent")


def source_start_ms(config: AgentConfig, now_ms: int) -> int:
    """When the configured source's readings begin (``start``: ``now`` or an ISO time)."""
    start = config.source.start
    return now_ms - now_ms % 1000 if start == "now" else to_epoch_ms(start)


def build_source(config: AgentConfig, now_ms: int) -> Source:
    """The configured source of readings for this device (unpaced: the agent paces it)."""
    a, s = config.agent, config.source
    start_ms = source_start_ms(config, now_ms)
    if s.kind == "skab":
        return SkabCsvSource(
            Path(str(s.path)),
            device_id=a.device_id,
            site=a.site,
            rebase_to_ms=start_ms,
            chunk_rows=max(1, round(s.chunk_s)),
        )
    kinds: dict[str, Any] = {k.value: k for k in (*FaultKind, *DriftKind)}
    events = []
    for e in s.events:
        if e.kind not in kinds:
            raise InputError(f"source.events: unknown kind {e.kind!r}; known: {', '.join(sorted(kinds))}")
        events.append(
            Event(
                a.device_id,
                kinds[e.kind],
                start_ms + round(e.start_s * 1000),
                start_ms + round((e.start_s + e.duration_s) * 1000),
                onset=Onset(e.onset),
                severity=e.severity,
                speed_ratio=e.speed_ratio,
                sensor=e.sensor,
                offset=e.offset,
            )
        )
    scenario = Scenario(
        devices=(Device(a.device_id, a.site, a.profile, a.group),),
        start_ms=start_ms,
        duration_s=s.duration_s,
        seed=s.seed,
        fault_rate_per_day=s.fault_rate_per_day,
        drift_rate_per_day=s.drift_rate_per_day,
        events=tuple(events),
    )
    return SimulatorSource(scenario, chunk_s=s.chunk_s)


@dataclass
class _Loaded:
    """The running model and everything derived from its bundle."""

    slot: SlotState
    bundle: Bundle
    session: ort.InferenceSession
    provider: str
    input_names: list[str]
    dtype: type[np.floating[Any]]
    sensors: tuple[tuple[str, str], ...]
    window_rows: int
    period_ms: int
    fill_rows: int
    mapper: RowMapper
    center: np.ndarray | None = None
    scale: np.ndarray | None = None
    threshold: float | None = None
    calibration_source: str = "none"
    window: WindowBuffer | None = None
    alarm: AlarmLogic | None = None
    drift: DriftMonitor | None = None
    fresh_install: bool = False
    scored: int = 0
    failures: int = 0

    def score(self, window: np.ndarray) -> float:
        """Score one window with the device's calibration."""
        assert self.center is not None
        assert self.scale is not None
        feeds = dict(
            zip(
                self.input_names,
                (window[np.newaxis].astype(self.dtype), self.center, self.scale),
                strict=True,
            )
        )
        return float(np.asarray(self.session.run(None, feeds)[0]).ravel()[0])

    def score_batch(self, windows: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Scores of a batch of windows with a given centre and scale (commissioning)."""
        feeds = dict(
            zip(
                self.input_names,
                (windows.astype(self.dtype), center.astype(self.dtype), scale.astype(self.dtype)),
                strict=True,
            )
        )
        return np.asarray(self.session.run(None, feeds)[0], dtype=np.float64).ravel()


@dataclass
class _Summary:
    start_ms: int
    rows: int = 0
    scores: list[float] = field(default_factory=list)
    non_finite: int = 0
    alarms_raised: int = 0
    alarm_rows: int = 0


class Agent:
    """One device's agent.

    Args:
        config: the validated ``agent.toml``.
        source: readings (default: :func:`build_source` of the config).
        wall_clock: seconds since the epoch (injectable for tests).
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        source: Source | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        a = config.agent
        self.device_id = a.device_id
        self.state_dir = a.state_dir
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._wall = wall_clock
        now_ms = int(self._wall() * 1000)
        self.source = source or build_source(config, now_ms)
        self.profile = get_profile(a.profile)
        self.slots = Slots(self.state_dir / "slots")
        self.outbox = Outbox(self.state_dir / "outbox.sqlite", a.device_id, config.outbox_max_bytes)
        self.updater = EdgeUpdater(
            trusted_root=config.repository.trusted_root.read_bytes(),
            repository=config.repository.location,
            state_dir=self.state_dir / "tuf",
            install_dir=self.state_dir / "downloads",
            group=a.group,
            target=a.target,
            agent_version=AGENT_VERSION,
        )
        self.uplink: Uplink | None = None
        hp = config.broker.host_port
        if hp is not None:
            self.uplink = Uplink(
                hp[0],
                hp[1],
                client_id=f"pumpops-agent-{a.device_id}-{os.getpid()}",
                desired_topic=self._topic("desired"),
                keepalive_s=config.broker.keepalive_s,
                publish_timeout_s=config.broker.publish_timeout_s,
            )
        self._persist: dict[str, Any] = self._read_persist()
        self.model: _Loaded | None = None
        self.commissioner: Commissioner | None = None
        self.health = "none"
        self.health_reasons: list[str] = []
        self.last_update_error: str | None = self._persist.get("last_update_error")
        self.counts: dict[str, int] = {
            "rows": 0,
            "rows_out_of_order": 0,
            "rows_incomplete": 0,
            "rows_without_model": 0,
            "windows_scored": 0,
            "scores_non_finite": 0,
            "score_errors": 0,
            "alarms_raised": 0,
            "raw_rows_sent": 0,
            "raw_rows_not_sent": 0,
        }
        self._raw_tokens = config.upload.raw_max_rows_per_s * 10
        self._raw_at = time.monotonic()
        self.drift_status: dict[str, Any] = {"status": "unknown"}
        self._resampler: Resampler | None = None
        self._drift_scores: deque[float] = deque(maxlen=config.agent.drift_window_rows)
        self._recent_frames: deque[Frame] = deque()
        self._recent_count = 0
        self._refused: dict[str, str] = {}
        self._alarm_open: dict[str, Any] | None = None
        self._summary: _Summary | None = None
        # On the data clock, "now" before the first reading is the source's start, not the wall clock:
        # a replay of the past must not stamp its first reports with today's time.
        self._now_ms = source_start_ms(config, now_ms) if a.clock == "data" and source is None else 0
        self._next_check_ms = 0
        self._next_summary_ms: int | None = None
        self._next_state_ms = 0
        self._last_state_key: tuple[Any, ...] | None = None
        self._desired: str | None = self._persist.get("desired_version")
        self._stop = False
        self._kill_at = os.environ.get(KILL_AT_ENV)
        self._load_current(fresh=False)

    # ------------------------------------------------------------------ persistence

    def _read_persist(self) -> dict[str, Any]:
        path = self.state_dir / "agent.json"
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_bytes())
        except ValueError:
            log.warning("%s is unreadable; starting its counters afresh", path)
            return {}
        return data if isinstance(data, dict) else {}

    def _save_persist(self) -> None:
        write_atomic(self.state_dir / "agent.json", json.dumps(self._persist, sort_keys=True).encode())

    # ------------------------------------------------------------------ time

    def _clock_ms(self) -> int:
        if self.config.agent.clock == "data" and self._now_ms:
            return self._now_ms
        return int(self._wall() * 1000)

    def _topic(self, kind: str) -> str:
        a = self.config.agent
        return f"{self.config.broker.topic_prefix}/{a.site}/{a.device_id}/{kind}"

    # ------------------------------------------------------------------ model

    def _load_current(self, *, fresh: bool) -> None:
        """Load what the slots say is current (or nothing) and derive its calibration."""
        try:
            state = self.slots.current()
            bundle = self.slots.bundle()
        except PumpopsError as exc:
            log.error("the current slot does not verify (%s); rolling back", exc)
            self._rollback(f"current slot failed verification: {exc}")
            return
        if state is None or bundle is None:
            self.model = None
            return
        self.model = self._open(state, bundle)
        self.model.fresh_install = fresh
        if self.health == "none":  # verified on open; it passed its health check when installed
            self.health = "ok"
        self._calibrate_from_what_is_known()

    def _open(self, state: SlotState, bundle: Bundle) -> _Loaded:
        m = bundle.manifest
        provider = _provider(m.target.execution_providers, ort.get_available_providers())
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.enable_cpu_mem_arena = False  # the commissioning batch would otherwise stay resident
        session = ort.InferenceSession(str(bundle.model_path), sess_options=options, providers=[provider])
        sensors = tuple((s.name, s.unit) for s in m.inputs.sensors)
        sampling = m.detector.get("sampling", {})
        period_s = float(sampling.get("period_s", self.config.agent.sample_period_s))
        gap_s = float(sampling.get("max_gap_fill_s", self.config.agent.max_gap_fill_s))
        log.info(
            "model %s v%s in slot %s, %s, %d sensors x %d rows every %g s",
            m.model_name, m.model_version, state.slot, provider, len(sensors), m.inputs.window_rows, period_s,
        )  # fmt: skip
        return _Loaded(
            slot=state,
            bundle=bundle,
            session=session,
            provider=provider,
            input_names=[i.name for i in session.get_inputs()],
            dtype=np.float32 if m.inputs.dtype == "float32" else np.float64,
            sensors=sensors,
            window_rows=m.inputs.window_rows,
            period_ms=max(1, round(period_s * 1000)),
            fill_rows=round(gap_s / period_s),
            mapper=RowMapper(self.profile, sensors),
        )

    def _threshold_params(self, bundle: Bundle) -> dict[str, float]:
        params = bundle.manifest.detector.get("params", {})
        return {
            "threshold_quantile": float(params.get("threshold_quantile", 0.99)),
            "threshold_factor": float(params.get("threshold_factor", 1.0)),
            "trim_z": float(params.get("trim_z", 0.0)),
        }

    def _calibrate_from_what_is_known(self) -> None:
        """Device calibration (a commissioned normal period) first, then the bundle's, else commission."""
        model = self.model
        if model is None:
            return
        normal = self._normal_period(len(model.sensors))
        if normal is not None and not self._recalibrating():
            try:
                cal = commission(
                    normal,
                    model.score_batch,
                    window_rows=model.window_rows,
                    **self._threshold_params(model.bundle),
                )
            except InputError as exc:
                log.warning("the stored normal period does not calibrate this model (%s); commissioning", exc)
            else:
                self._set_calibration(cal, "device")
                return
        cal_b = model.bundle.manifest.calibrations.get(self.device_id)
        if cal_b is not None and not self._recalibrating():
            self._set_calibration(cal_b.model_dump(), "bundle")
            return
        self.commissioner = Commissioner(len(model.sensors), self.config.agent.calibration_rows)
        model.calibration_source = "calibrating"
        log.info(
            "no calibration for %s: gathering %d normal rows",
            self.device_id,
            self.config.agent.calibration_rows,
        )

    def _normal_period(self, n_sensors: int) -> np.ndarray | None:
        path = self.state_dir / NORMAL_PERIOD_FILE
        if not path.is_file():
            return None
        try:
            rows = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            log.warning("%s is unreadable (%s); it will be gathered again", path, exc)
            return None
        if rows.ndim != 2 or rows.shape[1] != n_sensors:
            return None
        return np.asarray(rows, dtype=np.float64)

    def _recalibrating(self) -> bool:
        return bool(self._persist.get("recalibrate"))

    def _set_calibration(self, cal: dict[str, Any], source: str) -> None:
        model = self.model
        assert model is not None
        model.center = np.asarray(cal["center"], dtype=np.float64).astype(model.dtype)
        model.scale = np.asarray(cal["scale"], dtype=np.float64).astype(model.dtype)
        model.threshold = float(cal["threshold"])
        model.calibration_source = source
        names = [name for name, _ in model.sensors]
        model.window = WindowBuffer(len(names), model.window_rows)
        model.alarm = AlarmLogic.from_manifest(model.bundle.manifest.alarm.smoothing, model.threshold)
        quantiles = cal.get("quantiles") or ()
        model.drift = None
        if len(quantiles) == len(names):
            model.drift = DriftMonitor(
                names,
                np.asarray(quantiles, dtype=np.float64),
                window_rows=self.config.agent.drift_window_rows,
                report_every_rows=self.config.agent.drift_report_rows,
                score_unit=abs(model.threshold) if model.threshold else 1.0,
            )
        self.commissioner = None
        log.info("calibrated from the %s: threshold %.4g", source, model.threshold)

    # ------------------------------------------------------------------ rows

    def _remember(self, frame: Frame) -> None:
        self._recent_frames.append(frame)
        self._recent_count += frame.ts_ms.shape[0]
        while self._recent_count - self._recent_frames[0].ts_ms.shape[0] >= _RECENT_ROWS:
            self._recent_count -= self._recent_frames.popleft().ts_ms.shape[0]

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
        payload = orjson.dumps(
            {
                "schema": SCHEMA_ID,
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

    def feed(self, frame: Frame) -> None:
        """Process one frame of readings."""
        self._remember(frame)
        self._upload_raw(frame)
        model = self.model
        if model is None:
            self.counts["rows_without_model"] += frame.ts_ms.shape[0]
            self.counts["rows"] += frame.ts_ms.shape[0]
            self._now_ms = int(frame.ts_ms[-1])
            return
        try:
            rows = model.mapper.rows(frame.channels, frame.values)
        except IncompatibleBundleError as exc:
            self._refuse_running(str(exc))
            return
        if self._resampler is None or self._resampler.n_sensors != rows.shape[1]:
            self._resampler = Resampler(rows.shape[1], model.period_ms, model.fill_rows)
        for ts, row in zip(frame.ts_ms.tolist(), rows, strict=True):
            self.counts["rows"] += 1
            try:
                grid = list(self._resampler.push(int(ts), row))
            except ValueError:
                self.counts["rows_out_of_order"] += 1
                continue
            for grid_ts, grid_row in grid:
                self._row(grid_ts, grid_row)
        self._now_ms = int(frame.ts_ms[-1])

    def _row(self, ts_ms: int, row: np.ndarray) -> None:
        model = self.model
        assert model is not None
        self._now_ms = ts_ms
        if not np.all(np.isfinite(row)):
            self.counts["rows_incomplete"] += 1
            if model.window is not None:
                model.window.clear()
            return
        if self.commissioner is not None:
            self.commissioner.add(row)
            if self.commissioner.done:
                self._finish_commissioning()
            return
        if model.window is None or model.alarm is None:
            return
        model.window.push(row)
        if not model.window.ready:
            return
        try:
            score = model.score(model.window.window())
        except Exception as exc:  # onnxruntime raises untyped errors; count and judge the model
            self.counts["score_errors"] += 1
            self._judge_new_model(ok=False, reason=f"scoring failed: {type(exc).__name__}: {exc}")
            return
        finite = bool(np.isfinite(score))
        self.counts["windows_scored"] += 1
        if not finite:
            self.counts["scores_non_finite"] += 1
        self._judge_new_model(ok=finite, reason="the model outputs non-finite scores")
        if self.model is model:  # not rolled back
            self._scored(model, ts_ms, row, score, finite)

    def _scored(self, model: _Loaded, ts_ms: int, row: np.ndarray, score: float, finite: bool) -> None:
        assert model.alarm is not None
        step = model.alarm.update(score)
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
        if model.drift is not None:
            report = model.drift.update(row, score if finite else None)
            if report is not None:
                self._drift_report(report.to_dict())

    def _judge_new_model(self, *, ok: bool, reason: str) -> None:
        """A freshly installed model that only fails during its first windows is rolled back."""
        model = self.model
        if model is None or not model.fresh_install:
            return
        model.scored += 1
        model.failures += 0 if ok else 1
        if ok:
            model.fresh_install = False  # it works: probation over
        elif model.failures >= _PROBATION_WINDOWS:
            self._rollback(f"{reason} ({model.failures} of its first windows)")

    def _finish_commissioning(self) -> None:
        assert self.commissioner is not None
        assert self.model is not None
        rows = self.commissioner.rows()
        model = self.model
        try:
            cal = commission(
                rows, model.score_batch, window_rows=model.window_rows, **self._threshold_params(model.bundle)
            )
        except InputError as exc:
            log.warning("commissioning failed (%s); gathering again", exc)
            self.commissioner = Commissioner(len(model.sensors), self.config.agent.calibration_rows)
            return
        buffer = Path(str(self.state_dir / NORMAL_PERIOD_FILE) + ".tmp")
        with open(buffer, "wb") as fh:
            np.save(fh, rows, allow_pickle=False)
        write_atomic(self.state_dir / NORMAL_PERIOD_FILE, buffer.read_bytes())
        buffer.unlink()
        self._persist.pop("recalibrate", None)
        self._save_persist()
        (self.state_dir / RECALIBRATE_FILE).unlink(missing_ok=True)
        self._set_calibration(cal, "device")
        self._report_state(force=True)

    # ------------------------------------------------------------------ alarms, summaries, drift

    def _message(self, kind: str, body: dict[str, Any]) -> None:
        a = self.config.agent
        msg = AgentMessage(
            device_id=a.device_id,
            site=a.site,
            kind=kind,
            ts_ms=self._clock_ms(),
            agent_version=AGENT_VERSION,
            body=body,
        )
        self.outbox.put(kind, self._topic(TOPIC_OF_KIND[kind]), encode_agent_message(msg))

    def _model_ref(self) -> dict[str, Any]:
        m = self.model
        if m is None:
            return {"model_name": None, "model_version": None}
        return {"model_name": m.slot.model_name, "model_version": m.slot.model_version}

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
        """Send a drift report; the device calls itself drifting when the model no longer fits it.

        PSI per sensor and the score change test are reported as they are, but
        neither decides: live windows of slow, autocorrelated process values are
        rarely distributed like hours of reference, so PSI flags healthy pumps
        too. The verdict is the model's own: the median score of the recent
        ``drift_window_rows`` scores above the alarm threshold means the
        calibration no longer describes this pump (a fault does that too; the
        hub tells them apart by how many pumps of a group do it at once).
        """
        model = self.model
        scores = np.asarray(self._drift_scores, dtype=np.float64)
        ratio = None
        if model is not None and model.threshold and scores.size >= 10:
            ratio = float(np.median(scores) / model.threshold)
        drifting = ratio is not None and ratio > 1.0
        report = {**report, "alert": drifting, "psi_alert_sensors": report["drifted"],
                  "median_score_over_threshold": None if ratio is None else round(ratio, 4)}  # fmt: skip
        self.drift_status = {
            "status": "drift" if drifting else "ok",
            "median_score_over_threshold": report["median_score_over_threshold"],
            "drifted": report["drifted"],
            "change_fired": report["change"]["fired"],
            "rows": report["rows"],
        }
        self._message("drift", {**report, **self._model_ref()})

    # ------------------------------------------------------------------ updates

    def check_for_update(self) -> None:
        """One update cycle: verify and download (TUF), install into a slot if healthy, report."""
        now = self._clock_ms()
        self._persist["last_update_check_ms"] = now
        version = self._desired
        log.info("checking the repository for %s", f"version {version}" if version else "the newest version")
        try:
            installed = self.updater.update(version)
        except PumpopsError as exc:
            self.last_update_error = f"{type(exc).__name__}: {exc}"
            log.warning("update check failed, keeping the installed model: %s", self.last_update_error)
        else:
            self._persist["last_update_ok_ms"] = now
            self.last_update_error = None
            current = self.slots.current()
            if current is None or str(current.model_version) != installed.version:
                if installed.version in self._refused:
                    self.last_update_error = self._refused[installed.version]
                else:
                    self._install(installed.folder, installed.version)
        self._persist["last_update_error"] = self.last_update_error
        self._save_persist()
        self._report_state(force=True)

    def _install(self, folder: Path, version: str) -> None:
        try:
            state = self.slots.install(folder, self._health_check, hook=self._install_hook)
        except IncompatibleBundleError as exc:
            if _NO_DATA in str(exc):
                # A normal first install: the model is checked on this pump's readings, and there
                # are none yet. It waits for a minute of them, not for the next refresh.
                self._next_check_ms = min(self._next_check_ms, self._clock_ms() + 60_000)
                if self.model is None:
                    self.health = "waiting"
                    self.health_reasons = [str(exc)]
                log.info("version %s is installed once there are readings to check it with", version)
                return
            self.health = "refused"
            self.health_reasons = [str(exc)]
            self.last_update_error = str(exc)
            # refused for what it is: not tried again until the hub moves on
            self._refused[version] = str(exc)
            log.error("update refused, the old model keeps running: %s", exc)
            return
        except PumpopsError as exc:
            self.last_update_error = f"{type(exc).__name__}: {exc}"
            log.error("install failed, the old model keeps running: %s", exc)
            return
        log.info("installed %s v%s into slot %s", state.model_name, state.model_version, state.slot)
        self.health = "ok"
        self.health_reasons = []
        self._resampler = None
        self._load_current(fresh=True)

    def _install_hook(self, step: str) -> None:
        if self._kill_at == step:
            log.warning("fault injection: killing the agent at install step %r", step)
            os.kill(os.getpid(), signal.SIGKILL)

    def _recent_rows(self, bundle: Bundle) -> list[np.ndarray]:
        """The last readings, as rows of ``bundle``'s sensors (its units), oldest first."""
        mapper = RowMapper(self.profile, tuple((s.name, s.unit) for s in bundle.manifest.inputs.sensors))
        out: list[np.ndarray] = []
        for frame in self._recent_frames:
            try:
                rows = mapper.rows(frame.channels, frame.values)
            except IncompatibleBundleError:
                return []
            out.extend(r for r in rows if np.all(np.isfinite(r)))
        return out[-_RECENT_ROWS:]

    def _health_check(self, bundle: Bundle) -> HealthDecision:
        n_sensors = len(bundle.manifest.inputs.sensors)
        rows = bundle.manifest.inputs.window_rows
        recent = self._recent_rows(bundle)
        windows = None
        center = scale = None
        if len(recent) >= rows:
            arr = np.asarray(recent[-(rows + self.config.agent.health_windows - 1) :])
            view = np.lib.stride_tricks.sliding_window_view(arr, rows, axis=0)
            windows = np.ascontiguousarray(np.moveaxis(view, -1, 1))
        if self.device_id not in bundle.manifest.calibrations:
            # A device without a hub calibration: judge the model on its own recent (or stored) data.
            ref = self._normal_period(n_sensors)
            base = ref if ref is not None else (np.asarray(recent) if recent else None)
            if base is None or base.shape[0] < 2:
                return HealthDecision(False, (_NO_DATA,))
            center, scale = _center_scale(base)
        measured = measure_health(
            bundle,
            self.device_id,
            windows,
            center=None if center is None else center.tolist(),
            scale=None if scale is None else scale.tolist(),
        )
        budget = bundle.manifest.build.budgets.get("max_latency_ms")
        return decide_health(measured, None if budget is None else float(budget))

    def _rollback(self, reason: str) -> None:
        try:
            state = self.slots.rollback()
        except PumpopsError as exc:
            log.error("cannot roll back (%s): %s", reason, exc)
            self.health = "failed"
            self.health_reasons = [reason, str(exc)]
            self.model = None
            return
        log.error("rolled back to %s v%s: %s", state.model_name, state.model_version, reason)
        self.health = "rolled_back"
        self.health_reasons = [reason]
        self._resampler = None
        self._load_current(fresh=False)
        self._report_state(force=True)

    def _refuse_running(self, reason: str) -> None:
        if self.health != "incompatible":
            log.error("the installed model cannot run on this pump: %s", reason)
        self.health = "incompatible"
        self.health_reasons = [reason]

    def _take_desired(self) -> bool:
        if self.uplink is None:
            return False
        wanted = False
        while True:
            try:
                raw = self.uplink.desired.get_nowait()
            except Exception:  # queue.Empty
                return wanted
            try:
                doc = json.loads(raw) if raw else {}
                version = doc.get("version") if isinstance(doc, dict) else None
            except ValueError:
                log.warning("ignoring a desired-state message that is not JSON")
                continue
            self._desired = None if version is None else str(version)
            self._persist["desired_version"] = self._desired
            wanted = True
            log.info("hub desires version %s", self._desired or "newest")

    # ------------------------------------------------------------------ state

    def stale(self) -> bool:
        """Past the maximum model age without a successful update check (a model is installed)."""
        if self.model is None:
            return False
        last = self._persist.get("last_update_ok_ms")
        if last is None:
            return False
        return self._clock_ms() - int(last) > self.config.agent.max_model_age_h * 3_600_000

    def calibration_status(self) -> str:
        """``calibrated (bundle|device)``, ``calibrating h/n`` or ``none``."""
        if self.model is None:
            return "none"
        if self.commissioner is not None:
            have, need = self.commissioner.progress
            return f"calibrating {have}/{need}"
        return f"calibrated ({self.model.calibration_source})"

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
        }

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
            return
        self._last_state_key = key
        self._next_state_ms = now + round(self.config.agent.state_interval_s * 1000)
        self._message("state", body)
        write_atomic(self.state_dir / "state.json", json.dumps(body, sort_keys=True, indent=1).encode())

    # ------------------------------------------------------------------ the loop

    def _forward(self) -> int:
        uplink = self.uplink
        if uplink is None or not uplink.connected:
            return 0

        def publish(topic: str, payload: bytes, msg_id: str) -> bool:
            return uplink.publish(topic, with_msg_id(payload, msg_id), retain=topic.endswith("/state"))

        return self.outbox.forward(publish)

    def housekeeping(self) -> None:
        """Everything between frames: desired state, updates, summaries, state, outbox."""
        now = self._clock_ms()
        refresh_ms = round(self.config.agent.refresh_interval_s * 1000)
        if self._next_check_ms - now > refresh_ms:  # the clock went back (first data row, replays)
            self._next_check_ms = now
            self._next_summary_ms = None
            self._next_state_ms = now
        if (self.state_dir / RECALIBRATE_FILE).exists() and not self._recalibrating():
            self.recalibrate()
        desired = self._take_desired()
        if desired or now >= self._next_check_ms:
            self._next_check_ms = now + refresh_ms
            self.check_for_update()
        if self._next_summary_ms is None:
            self._next_summary_ms = now + round(self.config.agent.summary_interval_s * 1000)
        elif now >= self._next_summary_ms:
            self._flush_summary(now)
            self._next_summary_ms = now + round(self.config.agent.summary_interval_s * 1000)
        self._report_state()
        self._forward()

    def recalibrate(self) -> None:
        """Forget this device's calibration and gather a new normal period (after maintenance)."""
        log.info("recalibration requested: gathering a new normal period")
        self._persist["recalibrate"] = True
        self._save_persist()
        (self.state_dir / NORMAL_PERIOD_FILE).unlink(missing_ok=True)
        if self.model is not None:
            self.model.window = None
            self.model.alarm = None
            self.model.drift = None
            self._calibrate_from_what_is_known()
        self._report_state(force=True)

    def _paced(self, frames: Iterator[Frame], deadline: float | None) -> Iterator[Frame]:
        speed = self.config.source.speed
        t0_wall: float | None = None
        t0_data = 0
        for frame in frames:
            if self._stop or (deadline is not None and time.monotonic() >= deadline):
                return
            end = int(frame.ts_ms[-1])
            if speed > 0:
                if t0_wall is None:
                    t0_wall, t0_data = time.monotonic(), int(frame.ts_ms[0])
                due = t0_wall + (end - t0_data) / 1000.0 / speed
                while not self._stop and (wait := due - time.monotonic()) > 0:
                    time.sleep(min(wait, 0.2))
                    self.housekeeping()
            yield frame

    def run(self, *, max_seconds: float | None = None) -> int:
        """Run until the source ends, ``max_seconds`` pass, or SIGTERM/SIGINT.

        Returns:
            The exit code (0).
        """
        deadline = None if max_seconds is None else time.monotonic() + max_seconds

        def stop(_sig: int, _frame: object) -> None:
            self._stop = True

        with contextlib.suppress(ValueError):  # not the main thread (tests): no signal handlers
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
        if self.uplink is not None:
            self.uplink.wait_desired(3.0)
        self._report_state(force=True)
        self.housekeeping()
        for frame in self._paced(self.source.frames(), deadline):
            self.feed(frame)
            self.housekeeping()
        self.shutdown()
        return 0

    def shutdown(self) -> None:
        """Send what is left (best effort, a few seconds), then close files and the link."""
        self._flush_summary(self._clock_ms())
        self._report_state(force=True)
        if self.uplink is not None:
            end = time.monotonic() + 5.0
            while self.outbox.depth()[0] and time.monotonic() < end and self.uplink.connected:
                self._forward()
            self.uplink.close()
        self.outbox.close()
        log.info("agent stopped: %s", json.dumps(self.counts, sort_keys=True))
