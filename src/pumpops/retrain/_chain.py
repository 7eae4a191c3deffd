"""One retraining run: recent data → pipeline → register → validate against the champion → release → rollout.

Every step is an audit entry (``retrain.*``) and an event, and a failed step
stops the chain with its reason in the outcome: a candidate that fails
validation is never released. The training data is the group's most recent
``window_h`` hours from the store, minus every period an agent raised an alarm
in (with a margin) and every alarm a technician confirmed as a fault.

A drift-triggered run that knows the drift's onset (``drift_onset_us``) is
judged on what the drift broke (``docs/retrain.md``, "Post-drift gate"): it
waits until ``min_post_drift_s`` of data followed the onset (status
``waiting``), trains on post-drift data only, keeps the newest
``post_drift_holdout_fraction`` of it out of training, and adds the
``post_drift`` validation gate: false alarms on that hold-out back to the
champion's pre-drift level (within ``post_drift_far_tolerance``) and fault
recall on the simulated suite not below the champion's. The gate's figures go
into the validation report, the outcome and the audit entry.
May import: every hub-side part.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pumpops.audit import workspace_signer
from pumpops.errors import ConfigError, NotFoundError, PumpopsError
from pumpops.fleet import get_target
from pumpops.pipeline import parse_config, run_pipeline
from pumpops.registry import EventSink, Registry, parse_ref
from pumpops.release import bundles_of, create_release, publish_bundles
from pumpops.retrain._policy import RetrainSettings
from pumpops.retrain._post_drift import gate_figures, json_safe, post_drift_data, post_drift_windows
from pumpops.settings import Settings
from pumpops.store import TelemetryStore, open_store
from pumpops.validation import load_validation_config, rival_champion, validate_candidate

__all__ = ["RetrainOutcome", "alarm_intervals", "pipeline_config", "run_retrain"]


def _open_store(settings: Settings) -> TelemetryStore:
    """The workspace's store; the audit entries the chain appends are signed with its key (ADR 0013)."""
    return open_store(settings.resolved_database_url, audit_signer=workspace_signer(settings.workspace))


#: Starts a rollout of ``<name>/<version>`` to a group; returns the rollout id.
RolloutStarter = Callable[[str, str, Sequence[int]], str]


@dataclass
class RetrainOutcome:
    """What a run did.

    Attributes:
        group: the group.
        trigger: why it ran (``drift``, ``schedule``, ``feedback``, ``manual``).
        status: ``rolled_out``, ``released``, ``awaiting_approval``, ``validation_failed`` or ``failed``.
        reason: a sentence for people.
        model_ref: the registered candidate (``<name>/<version>``), if it got that far.
        release_id: the release, if any.
        rollout_id: the rollout, if any.
        steps: the steps done, in order.
        post_drift: the post-drift gate's figures (a drift-triggered run with a known onset), else None.
        error: the pumpops error that failed the run (None unless ``failed``); the
            command line's exit code follows it (not found, service unreachable, ...).
    """

    group: str
    trigger: str
    status: str = "failed"
    reason: str = ""
    model_ref: str | None = None
    release_id: int | None = None
    rollout_id: str | None = None
    steps: list[str] = field(default_factory=list)
    post_drift: dict[str, Any] | None = None
    error: PumpopsError | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the error as its class name)."""
        data = {k: v for k, v in self.__dict__.items() if k != "error"}
        data["error"] = None if self.error is None else type(self.error).__name__
        return data


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat().replace("+00:00", "Z")


def alarm_intervals(store: Any, devices: Sequence[str], since_us: int, until_us: int) -> list[dict[str, str]]:
    """Periods to leave out: every alarm the agents raised, unless a technician called it a false alarm.

    Open alarms are left out up to ``until``; an alarm marked ``pumpops feedback <alarm-id>
    --false-alarm`` stays in: the pump was fine, so its data is normal.

    Returns:
        ``{"device_id", "start", "end"}`` items for ``data.hygiene.alarm_intervals``.
    """
    out: list[dict[str, str]] = []
    false_alarms = {f.alarm_id for f in store.feedback() if f.verdict == "false_alarm"}
    for device in devices:
        opened: dict[str, int] = {}
        for rec in store.agent_messages(device_id=device, kind="alarm"):
            body = rec.body()
            if str(body.get("alarm_id")) in false_alarms:  # a technician said the pump was fine
                continue
            start = int(body.get("started_ms", rec.ts_ms)) * 1000
            if body.get("event") == "raised":
                opened[str(body.get("alarm_id"))] = start
            elif body.get("event") == "cleared":
                begin = opened.pop(str(body.get("alarm_id")), start)
                end = int(body.get("ended_ms") or rec.ts_ms) * 1000
                if end > since_us and begin < until_us and end > begin:
                    out.append({"device_id": device, "start": _iso(begin), "end": _iso(end)})
        for begin in opened.values():  # still raised: excluded to the end of the window
            if begin < until_us:
                out.append({"device_id": device, "start": _iso(begin), "end": _iso(until_us)})
    return out


def pipeline_config(
    group: str, since_us: int, until_us: int, policy: RetrainSettings, intervals: list[dict[str, str]]
) -> dict[str, Any]:
    """The training pipeline's configuration for a retraining run (``docs/pipeline.md``)."""
    return {
        "seed": 0,
        "data": {
            "source": "store",
            "group": group,
            "since": _iso(since_us),
            "until": _iso(until_us),
            "hygiene": {
                "exclude_labelled": False,
                "alarm_intervals": intervals,
                "margin_s": policy.alarm_margin_s,
            },
        },
        "features": {
            "window_samples": policy.window_samples,
            "baseline_window_samples": policy.baseline_window_samples,
        },
        "detector": {"kind": policy.detector},
        "threshold": {"quantile": policy.threshold_quantile, "factor": policy.threshold_factor},
        "smoothing": {"k": policy.smoothing_k, "n": policy.smoothing_n},
        "evaluation": {"enabled": False},
        "output": {"experiment": f"retrain-{group}"},
    }


def _failed_reasons(text: str) -> list[str]:
    r"""The reasons under each failed gate of a validation report's text.

    >>> _failed_reasons("v: FAILED\n  [pass] a\n  [FAIL] b\n      - too slow\n  [pass] c")
    ['b: too slow']
    """
    out: list[str] = []
    gate = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            gate = stripped[7:].strip() if stripped.startswith("[FAIL]") else None
        elif gate is not None and stripped.startswith("- "):
            out.append(f"{gate}: {stripped[2:]}")
    return out


def _validation_config(settings: Settings) -> Any:
    """The workspace's ``validation.toml`` (the gates' tolerances and suite), if it has one."""
    path = settings.workspace / "validation.toml"
    return load_validation_config(path) if path.is_file() else None


def run_retrain(  # noqa: PLR0915 - one chain, its steps in order
    settings: Settings,
    group: str,
    *,
    trigger: str,
    actor: str,
    policy: RetrainSettings,
    until_us: int,
    start_rollout: RolloutStarter | None = None,
    config_overrides: dict[str, Any] | None = None,
    validation_data: Path | int | None = None,
    progress: Callable[[str], None] | None = None,
    drift_onset_us: int | None = None,
) -> RetrainOutcome:
    """Run the chain for ``group`` on its data up to ``until_us``.

    Args:
        settings: the workspace settings.
        group: the device group.
        trigger: why (recorded).
        actor: who (audit trail).
        policy: the retraining policy (window, detector, targets, waves, approval).
        until_us: end of the training window (the newest data to use).
        start_rollout: starts the rollout after the release (None: release only).
        config_overrides: pipeline configuration sections replacing the policy's (tests,
            the demo's deliberately bad candidate).
        validation_data: held-out data for the gates (default: the gates' simulated suite).
        progress: told each step as it starts (one line for people; the command shows it on stderr).
        drift_onset_us: when the drift began (a ``drift`` trigger): the run waits for
            ``min_post_drift_s`` of post-drift data, trains on it and adds the post-drift
            gate (module docstring). None: the plain chain.

    Returns:
        The outcome; failures are outcomes with a reason, not exceptions (``waiting``:
        not enough post-drift data yet, nothing trained).
    """
    say = progress or (lambda _: None)
    out = RetrainOutcome(group=group, trigger=trigger)
    since_us = until_us - round(policy.window_h * 3_600_000_000)
    train_until_us = until_us
    windows = None
    if drift_onset_us is not None and trigger == "drift":
        windows = post_drift_windows(drift_onset_us, until_us, policy)
        since_us, train_until_us = windows.onset, windows.holdout_since
    with _open_store(settings) as store:
        store.upgrade()
        sink = EventSink(store, None, topic_prefix=settings.topic_prefix)

        def step(name: str, payload: dict[str, Any]) -> None:
            out.steps.append(name)
            say(f"{name}: {payload.get('model') or payload.get('reason') or group}")
            store.append_audit(actor, f"retrain.{name}", f"group/{group}", {"trigger": trigger, **payload})
            sink.emit(f"retrain.{name}", f"group/{group}", {"trigger": trigger, **payload})

        try:
            devices = [d.device_id for d in store.devices() if d.group == group]
            if not devices:
                raise NotFoundError(f"group {group!r} has no registered devices")
            if windows is not None and windows.post_s < policy.min_post_drift_s:
                out.status = "waiting"
                out.reason = (
                    f"{windows.post_s:.0f} s of data since the drift's onset {_iso(windows.onset)}; "
                    f"waiting for {policy.min_post_drift_s:g} s (retrain.min_post_drift_s)"
                )
                step("waiting", {"reason": out.reason, **windows.to_dict()})
                return out
            intervals = alarm_intervals(
                store, devices, since_us if windows is None else windows.pre_since, until_us
            )
            raw = pipeline_config(group, since_us, train_until_us, policy, intervals)
            for key, value in (config_overrides or {}).items():
                raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
            step(
                "started",
                {
                    "since": _iso(since_us),
                    "until": _iso(train_until_us),
                    "excluded_alarms": len(intervals),
                    **({} if windows is None else {"post_drift": windows.to_dict()}),
                },
            )
            config = parse_config(raw, source=f"retrain {group}")
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                say(f"training on {len(devices)} device(s) from {_iso(since_us)} to {_iso(train_until_us)}")
                result = run_pipeline(
                    config,
                    workspace=settings.workspace,
                    database_url=settings.resolved_database_url,
                    tracking_uri=settings.resolved_tracking_uri,
                    progress=say,
                )
            store.append_audit(
                actor,
                "training.run",
                f"run/{result.run_id or 'not-logged'}",
                {
                    "config": "retrain",
                    "config_hash": result.config_hash,
                    "dataset_digest": result.dataset_digest,
                    "onnx_sha256": result.onnx_sha256,
                    "devices": len(result.devices),
                },
            )
            registry = Registry(settings.resolved_tracking_uri, sink)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                candidate = registry.register(result, actor=actor)
                out.model_ref = candidate.ref
                step("trained", {"model": candidate.ref, "devices": len(result.devices)})
                champion = rival_champion(registry, group, candidate)
                say(f"validating {candidate.ref}" + ("" if champion is None else f" against {champion.ref}"))
                post = None
                if windows is not None:
                    post = post_drift_data(
                        store,
                        group,
                        windows,
                        intervals=intervals,
                        margin_s=policy.alarm_margin_s,
                        far_tolerance=policy.post_drift_far_tolerance,
                    )
                report = validate_candidate(
                    registry,
                    candidate,
                    champion=champion,
                    actor=actor,
                    config=_validation_config(settings),
                    data=validation_data,
                    post_drift=post,
                ).report
            out.post_drift = gate_figures(report)
            gate_audit = {} if out.post_drift is None else {"post_drift": json_safe(out.post_drift)}
            if not report.passed:
                failed = _failed_reasons(report.to_text())
                out.status = "validation_failed"
                out.reason = f"{candidate.ref} failed validation: " + (
                    "; ".join(failed[:4]) or "see the report"
                )
                step("blocked", {"model": candidate.ref, "reason": out.reason, **gate_audit})
                return out
            step(
                "validated",
                {
                    "model": candidate.ref,
                    "against": None if champion is None else champion.ref,
                    **gate_audit,
                },
            )
            if policy.approval_required:
                out.status = "awaiting_approval"
                out.reason = (
                    f"{candidate.ref} passed validation; waiting for `pumpops approve {candidate.ref}`"
                )
                step("awaiting_approval", {"model": candidate.ref})
                return out
            return _release_and_roll_out(
                settings,
                store,
                registry,
                sink,
                candidate,
                out,
                actor,
                policy,
                step,
                start_rollout,
                progress=say,
            )
        except PumpopsError as exc:
            out.status = "failed"
            out.reason = f"{type(exc).__name__}: {exc}"
            out.error = exc
            step("failed", {"reason": out.reason})
            return out


def _release_and_roll_out(  # noqa: PLR0917 - the chain's state, passed on
    settings: Settings,
    store: Any,
    registry: Any,
    sink: Any,
    candidate: Any,
    out: RetrainOutcome,
    actor: str,
    policy: RetrainSettings,
    step: Callable[[str, dict[str, Any]], None],
    start_rollout: RolloutStarter | None,
    *,
    progress: Callable[[str], None] | None = None,
) -> RetrainOutcome:

    if not policy.targets:
        raise ConfigError("retrain.targets names no target profile")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        release = create_release(
            registry,
            sink,
            name=candidate.name,
            version=candidate.version,
            targets=[get_target(t) for t in policy.targets],
            out=settings.workspace / "bundles",
            data=0,
            actor=actor,
            progress=progress,
        )
    out.release_id = release.release_id
    step("released", {"model": candidate.ref, "release": release.release_id, "targets": list(policy.targets)})
    publish_bundles(settings, bundles_of(settings, str(release.release_id)), actor=actor, store=store)
    step("published", {"release": release.release_id})
    out.status = "released"
    out.reason = f"{candidate.ref} validated, released as {release.release_id} and published"
    if start_rollout is not None:
        out.rollout_id = start_rollout(candidate.ref, out.group, policy.waves)
        out.status = "rolled_out"
        out.reason += f"; rollout {out.rollout_id} started"
        step("rollout_started", {"model": candidate.ref, "rollout": out.rollout_id})
    return out


def approve(
    settings: Settings,
    ref: str,
    *,
    actor: str,
    policy: RetrainSettings,
    start_rollout: RolloutStarter | None = None,
    progress: Callable[[str], None] | None = None,
) -> RetrainOutcome:
    """Release (and roll out) a validated candidate that waited for a person's approval.

    ``progress`` is told each step of the release as it starts.
    """
    name, version = parse_ref(ref)
    with _open_store(settings) as store:
        store.upgrade()
        sink = EventSink(store, None, topic_prefix=settings.topic_prefix)
        registry = Registry(settings.resolved_tracking_uri, sink)
        candidate = registry.get(name, version)
        if candidate.validation != "passed":
            raise ConfigError(
                f"{ref} has validation {candidate.validation!r}; only a passed candidate is approved"
            )
        out = RetrainOutcome(group=candidate.group, trigger="approval", model_ref=ref)

        def step(step_name: str, payload: dict[str, Any]) -> None:
            out.steps.append(step_name)
            store.append_audit(actor, f"retrain.{step_name}", f"group/{candidate.group}", payload)
            sink.emit(f"retrain.{step_name}", f"group/{candidate.group}", payload)

        step("approved", {"model": ref})
        return _release_and_roll_out(
            settings,
            store,
            registry,
            sink,
            candidate,
            out,
            actor,
            policy,
            step,
            start_rollout,
            progress=progress,
        )


def outcome_json(outcome: RetrainOutcome) -> str:
    """The outcome as JSON text."""
    return json.dumps(outcome.to_dict(), sort_keys=True)
