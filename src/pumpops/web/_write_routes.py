"""The API's write endpoints: each runs the same code path as its ``pumpops`` command, as the token's owner.

- ``operator``: acknowledge an alarm (:func:`acknowledge_alarm`), give a
  technician's verdict (:func:`pumpops.monitoring.record_feedback`, what
  ``pumpops feedback`` calls and the retrain chain counts), pause and resume a
  rollout (:class:`pumpops.rollout.RolloutService`, as ``pumpops rollout pause|resume``).
- ``admin``: start and abort rollouts (the same service, the same checks),
  promote a version (:meth:`pumpops.registry.Registry.promote`, as ``pumpops
  models promote``) and approve a held candidate (:func:`pumpops.retrain.approve`,
  as ``pumpops approve``).

Every write leaves an audit entry whose actor is the token's name (the
service's own entry, or :func:`acknowledge_alarm`'s). Bodies are pydantic
models that forbid unknown fields: a typo is a 422 with the field named.
May import: fastapi, pydantic, monitoring, rollout, registry, release, retrain, errors, this part.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from pumpops.errors import ConfigError, NotFoundError
from pumpops.monitoring import find_alarm, record_feedback
from pumpops.release import resolve_model_ref
from pumpops.retrain import approve
from pumpops.rollout import GatePolicy, parse_waves
from pumpops.web._context import Admin, Ctx, Operator
from pumpops.web._read_routes import rollout_summary

__all__ = ["acknowledge_alarm", "write_router"]

write_router = APIRouter(prefix="/api")

#: Event and audit action of an operator's acknowledgement.
EVENT_ALARM_ACKNOWLEDGED = "alarm.acknowledged"

AlarmId = Annotated[
    str,
    Path(max_length=128, pattern=r"^.+:\d+$", description="<device_id>:<started_ms>, as in its messages."),
]
RolloutId = Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AckBody(_Body):
    """An acknowledgement: an optional note."""

    note: str = Field(default="", max_length=2000)


class FeedbackBody(_Body):
    """A technician's verdict on an alarm."""

    verdict: Literal["confirmed", "false_alarm"]
    note: str = Field(default="", max_length=2000)


class ReasonBody(_Body):
    """Why, for the audit trail."""

    reason: str = Field(default="", max_length=2000)


class AbortBody(ReasonBody):
    """Abort a rollout; ``roll_back`` makes the previous release desired again on every sent device."""

    roll_back: bool = False


class StartBody(_Body):
    """Start a rollout of a release to a group (as ``pumpops rollout start``)."""

    release: str = Field(max_length=256, description="<model>/<version> or <model>@<alias>")
    group: str = Field(max_length=64)
    waves: list[int] = Field(default=[1, 10, 50, 100], min_length=1, max_length=20)
    gate: dict[str, float | int | str] = Field(
        default_factory=dict, description="Gate settings (seconds for *_s), e.g. {'min_soak_s': 600}."
    )
    previous_version: str | None = Field(default=None, max_length=64)
    reason: str = Field(default="", max_length=2000)


class PromoteBody(_Body):
    """Promote a version to its group's champion (as ``pumpops models promote``)."""

    group: str | None = Field(default=None, max_length=64)
    force: bool = False
    reason: str | None = Field(default=None, max_length=2000)


class ApproveBody(_Body):
    """Approve a validated candidate held by the retrain policy (as ``pumpops approve``)."""

    rollout: bool = True


def acknowledge_alarm(store: Any, sink: Any, alarm_id: str, *, actor: str, note: str = "") -> dict[str, Any]:
    """Acknowledge an alarm the hub received: stored once (the first kept), audited and an event each time.

    Raises:
        NotFoundError: the hub never received an alarm message with this id.
        InputError: the id is malformed.
    """
    alarm = find_alarm(store, alarm_id)
    if alarm is None:
        raise NotFoundError(f"alarm {alarm_id!r}: the hub never received an alarm message with this id")
    ack, new = store.put_alarm_ack(alarm_id, actor=actor, note=note)
    payload = {"alarm_id": alarm_id, "device_id": alarm.device_id, "note": note, "first": new}
    store.append_audit(actor, EVENT_ALARM_ACKNOWLEDGED, alarm_id, payload)
    sink.emit(EVENT_ALARM_ACKNOWLEDGED, alarm_id, payload)
    return {
        "alarm_id": alarm_id,
        "acknowledged_by": ack.actor,
        "at_us": ack.at_us,
        "note": ack.note,
        "new": new,
    }


# -- alarms (operator) ------------------------------------------------------------------------


@write_router.post("/alarms/{alarm_id}/ack", tags=["alarms"], summary="Acknowledge an alarm")
def post_ack(ctx: Ctx, who: Operator, alarm_id: AlarmId, body: AckBody | None = None) -> dict[str, Any]:
    """Acknowledge: stored once (the first acknowledgement is kept), audited every time."""
    note = "" if body is None else body.note
    return acknowledge_alarm(ctx.store, ctx.sink, alarm_id, actor=who.name, note=note)


@write_router.post("/alarms/{alarm_id}/feedback", tags=["alarms"], summary="A technician's verdict")
def post_feedback(ctx: Ctx, who: Operator, alarm_id: AlarmId, body: FeedbackBody) -> dict[str, Any]:
    """Confirmed fault or false alarm: the record the retrain chain reads (as ``pumpops feedback``)."""
    stored = record_feedback(
        ctx.store, ctx.sink, alarm_id, verdict=body.verdict, actor=who.name, note=body.note
    )
    return {
        "alarm_id": stored.alarm_id,
        "device_id": stored.device_id,
        "verdict": stored.verdict,
        "actor": stored.actor,
        "note": stored.note,
        "at_us": stored.at_us,
    }


# -- rollouts ---------------------------------------------------------------------------------


def _after(ctx: Any, who: Any, rollout_id: str) -> dict[str, Any]:
    service = ctx.rollouts(who.name)
    return rollout_summary(service.record(rollout_id), service.get(rollout_id))


@write_router.post("/rollouts/{rollout_id}/pause", tags=["rollouts"], summary="Pause a rollout")
def post_pause(
    ctx: Ctx, who: Operator, rollout_id: RolloutId, body: ReasonBody | None = None
) -> dict[str, Any]:
    """Stop moving on to further waves (as ``pumpops rollout pause``)."""
    ctx.rollouts(who.name).pause(rollout_id, reason="" if body is None else body.reason)
    return _after(ctx, who, rollout_id)


@write_router.post("/rollouts/{rollout_id}/resume", tags=["rollouts"], summary="Resume a rollout")
def post_resume(
    ctx: Ctx, who: Operator, rollout_id: RolloutId, body: ReasonBody | None = None
) -> dict[str, Any]:
    """Continue a paused rollout (as ``pumpops rollout resume``)."""
    ctx.rollouts(who.name).resume(rollout_id, reason="" if body is None else body.reason)
    return _after(ctx, who, rollout_id)


@write_router.post("/rollouts/{rollout_id}/abort", tags=["rollouts"], summary="Abort a rollout")
def post_abort(ctx: Ctx, who: Admin, rollout_id: RolloutId, body: AbortBody | None = None) -> dict[str, Any]:
    """End a rollout for good, optionally rolling back (as ``pumpops rollout abort``)."""
    body = body or AbortBody()
    ctx.rollouts(who.name).abort(rollout_id, roll_back=body.roll_back, reason=body.reason)
    return _after(ctx, who, rollout_id)


@write_router.post("/rollouts", tags=["rollouts"], summary="Start a rollout", status_code=201)
def post_rollout(ctx: Ctx, who: Admin, body: StartBody) -> dict[str, Any]:
    """Start a rollout: the first wave's devices get the release (as ``pumpops rollout start``)."""
    waves = parse_waves(",".join(str(w) for w in body.waves))
    if "on_fail" in body.gate and body.gate["on_fail"] not in ("pause", "rollback"):
        raise ConfigError("gate on_fail: must be pause or rollback")
    policy = GatePolicy.from_dict(dict(body.gate))
    name, version = resolve_model_ref(
        body.release, tracking_uri=ctx.settings.resolved_tracking_uri, store=ctx.store
    )
    service = ctx.rollouts(who.name)
    rid = service.start(
        f"{name}/{version}",
        body.group,
        waves,
        policy,
        previous_version=body.previous_version,
        reason=body.reason,
    )
    return _after(ctx, who, rid)


# -- models (admin) ---------------------------------------------------------------------------


@write_router.post("/models/{name}/{version}/promote", tags=["models"], summary="Promote to champion")
def post_promote(
    ctx: Ctx, who: Admin, name: str, version: Annotated[int, Path(ge=1)], body: PromoteBody | None = None
) -> dict[str, Any]:
    """Make a validated version its group's champion (as ``pumpops models promote``)."""
    body = body or PromoteBody()
    if body.force and not (body.reason or "").strip():
        raise ConfigError("force needs a reason (it is written to the audit trail)")
    registry = ctx.registry()
    found = registry.get(name, version)
    group = body.group or found.group
    if not group:
        raise ConfigError(f"{found.ref} names no device group: give 'group'")
    info = registry.promote(name, version, group, actor=who.name, force=body.force, reason=body.reason)
    return {"model": info.ref, "group": group, "aliases": list(info.aliases), "forced": body.force}


@write_router.post("/models/{name}/{version}/approve", tags=["models"], summary="Approve a held candidate")
def post_approve(
    ctx: Ctx, who: Admin, name: str, version: Annotated[int, Path(ge=1)], body: ApproveBody | None = None
) -> dict[str, Any]:
    """Release (and roll out) a validated candidate the retrain policy held (as ``pumpops approve``)."""
    body = body or ApproveBody()
    ctx.registry().get(name, version)  # 404 before any work

    def start(ref: str, group: str, waves: Any) -> str:
        return ctx.rollouts(who.name).start(ref, group, tuple(waves), reason="approved")

    outcome = approve(
        ctx.settings,
        f"{name}/{version}",
        actor=who.name,
        policy=ctx.settings.retrain,
        start_rollout=start if body.rollout else None,
    )
    result: dict[str, Any] = outcome.to_dict()
    return result
