"""The dashboard (``/ui/``): login, the actions (form posts), the live event stream, static assets, mounting.

``mount_dashboard`` adds the pages (``_pages_views``), the actions below, the
cookie-authenticated twin of ``GET /api/events`` (``/ui/events``: the same
stream, for the browser's ``EventSource``, which cannot send a bearer header),
and the vendored htmx and uPlot under ``/ui/static/`` (each with its licence;
nothing is loaded from another site). Every action runs the API's own code
path as the logged-in token's owner: acknowledge is
:func:`~pumpops.web._write_routes.acknowledge_alarm`, a verdict is
:func:`pumpops.monitoring.record_feedback`, rollout commands are the rollout
service's. Refusals are pages (or htmx fragments) with their status.
May import: fastapi, starlette, monitoring, rollout, errors, this part.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from pumpops.errors import NotFoundError, PumpopsError
from pumpops.monitoring import record_feedback
from pumpops.web._context import context_of
from pumpops.web._pages_core import (
    COOKIE,
    PREFIX,
    PageError,
    Sessions,
    check_origin,
    check_token,
    form_of,
    render,
    require_role,
    safe_next,
    sessions_of,
    user_of,
)
from pumpops.web._pages_core import _folder as folder
from pumpops.web._pages_views import page_router
from pumpops.web._stream import get_events
from pumpops.web._write_routes import acknowledge_alarm

__all__ = ["DASHBOARD_URL", "mount_dashboard"]

#: The dashboard's address on the hub.
DASHBOARD_URL = f"{PREFIX}/"

action_router = APIRouter(prefix=PREFIX, include_in_schema=False)

AlarmId = Annotated[str, Path(max_length=128, pattern=r"^.+:\d+$")]
RolloutId = Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]


@action_router.get("/login")
def login_page(request: Request, next: Annotated[str | None, Query(max_length=300)] = None) -> Response:
    """The login form: paste an API token."""
    return render(request, "login.html", None, next=safe_next(next), problem="")


@action_router.post("/login")
async def login(request: Request) -> Response:
    """Check the token; open a session (cookie: HttpOnly, SameSite=Strict, Path=/ui)."""
    check_origin(request)  # no login forced from another site's page
    body = (await request.body())[:4096].decode("utf-8", "replace")
    fields = {k: v[0] for k, v in parse_qs(body, max_num_fields=5).items()}
    target = safe_next(fields.get("next"))
    try:
        check_token(context_of(request), fields.get("token", ""))
    except PageError as exc:
        return render(request, "login.html", None, status=exc.status, next=target, problem=exc.message)
    session_id, _ = sessions_of(request).open(fields["token"].strip())
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        session_id,
        httponly=True,
        samesite="strict",
        path=PREFIX,
        secure=request.url.scheme == "https",
        max_age=12 * 3600,
    )
    return response


@action_router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session."""
    user = user_of(request)
    if user is not None:
        await form_of(request, user[1])
        sessions_of(request).close(request.cookies.get(COOKIE))
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


async def _act(request: Request, role: str, what: str) -> tuple[str, str, dict[str, str]]:
    """The acting principal's name, the redirect target and the form, after every check.

    Raises:
        PageError: 401 without a session, 403 for a role below ``role`` or a failed CSRF check.
    """
    user = user_of(request)
    if user is None:
        raise PageError(401, "not logged in (or the session's token was revoked)")
    fields = await form_of(request, user[1])
    require_role(user[0], role, what)
    return user[0].name, safe_next(fields.get("next")), fields


def _done(target: str) -> Response:
    return RedirectResponse(target, status_code=303)


@action_router.post("/alarms/{alarm_id}/ack")
async def ack(request: Request, alarm_id: AlarmId) -> Response:
    """Acknowledge (operator): the API's acknowledgement, audited with the owner's name."""
    actor, target, fields = await _act(request, "operator", "acknowledging an alarm")
    ctx = context_of(request)
    _run(lambda: acknowledge_alarm(ctx.store, ctx.sink, alarm_id, actor=actor, note=fields.get("note", "")))
    return _done(target)


@action_router.post("/alarms/{alarm_id}/{verdict}")
async def feedback(request: Request, alarm_id: AlarmId, verdict: str) -> Response:
    """A technician's verdict (operator): ``confirmed`` or ``false_alarm``, as ``pumpops feedback``."""
    if verdict not in ("confirmed", "false_alarm"):
        raise PageError(404, f"no action {verdict!r} (confirmed or false_alarm)")
    actor, target, fields = await _act(request, "operator", "a verdict on an alarm")
    ctx = context_of(request)
    _run(lambda: record_feedback(ctx.store, ctx.sink, alarm_id, verdict=verdict, actor=actor,
                                 note=fields.get("note", "")))  # fmt: skip
    return _done(target)


@action_router.post("/rollouts/{rollout_id}/{command}")
async def rollout_command(request: Request, rollout_id: RolloutId, command: str) -> Response:
    """Pause or resume (operator), abort (admin): the rollout service's commands and checks."""
    needs = {"pause": "operator", "resume": "operator", "abort": "admin"}
    if command not in needs:
        raise PageError(404, f"no rollout command {command!r} (pause, resume or abort)")
    actor, target, fields = await _act(request, needs[command], f"{command} of a rollout")
    service = context_of(request).rollouts(actor)
    reason = fields.get("reason", "") or "from the dashboard"
    if command == "pause":
        _run(lambda: service.pause(rollout_id, reason=reason))
    elif command == "resume":
        _run(lambda: service.resume(rollout_id, reason=reason))
    else:
        _run(lambda: service.abort(rollout_id, roll_back=fields.get("roll_back") == "1", reason=reason))
    return _done(target)


def _run(action: object) -> None:
    """Run an action; a refusal of the part (unknown id, a rule) becomes a page with its reason."""
    try:
        action()  # type: ignore[operator]
    except NotFoundError as exc:
        raise PageError(404, str(exc)) from exc
    except PumpopsError as exc:
        raise PageError(400, str(exc)) from exc


@action_router.get("/events")
async def events(request: Request) -> Response:
    """The live stream for the logged-in browser (the same as ``GET /api/events``)."""
    user = user_of(request)
    if user is None:
        raise PageError(401, "not logged in")
    return await get_events(
        request,
        context_of(request),
        user[0],
        include=None,
        since=None,
        max_events=None,
        max_seconds=None,
        last_event_id=request.headers.get("last-event-id"),
    )


def mount_dashboard(app: FastAPI) -> None:
    """Add the dashboard to the hub's app (after :func:`pumpops.web.mount_api`, whose context it uses)."""
    app.state.pumpops_sessions = Sessions()
    app.include_router(action_router)
    app.include_router(page_router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=folder("static")), name="dashboard-static")

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return RedirectResponse(DASHBOARD_URL, status_code=307)

    @app.exception_handler(PageError)
    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        if exc.status == 401 and request.method == "GET" and not request.url.path.endswith("/events"):
            return RedirectResponse(f"{PREFIX}/login", status_code=303)
        user = user_of(request)
        response = render(request, "error.html", user, status=exc.status, message=exc.message)
        return HTMLResponse(response.body, status_code=exc.status, headers=dict(response.headers))
