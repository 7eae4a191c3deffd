"""The dashboard's sessions, role checks, CSRF tokens, tables and CSV export (what every page shares).

A person logs in with an API token (``pumpops tokens create``). The hub keeps
the session server-side: the browser holds only a random session id in a
cookie that is ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other
site's page sends it) and scoped to ``/ui`` (the API never sees it; the API
takes bearer tokens only). The session keeps the token's SHA-256, never the
token, and each request looks the token up again: a revoked or expired token
ends its sessions at once. Every form post carries the session's CSRF token
(a hidden field, or the ``X-CSRF-Token`` header htmx sends) and a post whose
``Origin`` is another site is refused. Roles are those of the API, checked on
the server for every action (:func:`require_role`), not only by hiding buttons.
May import: fastapi, starlette, jinja2, the standard library, this part.
"""

from __future__ import annotations

import csv
import hmac
import io
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from pumpops.web._auth import Principal, hash_token, parse_bearer, role_allows, token_id_of
from pumpops.web._context import ApiContext, context_of

__all__ = [
    "COOKIE",
    "PREFIX",
    "PageError",
    "Session",
    "Sessions",
    "Table",
    "check_origin",
    "check_token",
    "csv_response",
    "form_of",
    "render",
    "require_role",
    "safe_next",
    "sessions_of",
    "templates",
    "user_of",
    "when_ms",
]

#: Where the dashboard lives; its cookie is scoped to this path.
PREFIX: Final = "/ui"
COOKIE: Final = "pumpops_session"
#: How long a session lasts at most (the token's own expiry ends it earlier).
SESSION_S: Final = 12 * 3600
_MAX_FORM_BYTES: Final = 16_384


def _folder(name: str) -> Path:
    return Path(str(files("pumpops.web") / name))


templates = Jinja2Templates(directory=_folder("templates"))


def _when(us: object) -> str:
    """µs since the epoch as ``YYYY-MM-DD HH:MM:SS`` UTC; '' for None."""
    if not isinstance(us, int | float):
        return ""
    return datetime.fromtimestamp(us / 1e6, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def when_ms(ms: object) -> str:
    """Ms since the epoch as ``YYYY-MM-DD HH:MM:SS`` UTC; '' for None."""
    return _when(ms * 1000) if isinstance(ms, int | float) else ""


templates.env.filters["when"] = _when
templates.env.filters["when_ms"] = when_ms


class PageError(Exception):
    """A refusal shown as a page (or an htmx fragment) with its status: 400, 403, 404."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Session:
    """One logged-in browser: the token's hash (never the token) and the form token."""

    token_sha256: str
    token_id: str
    csrf: str
    started_s: float


@dataclass
class Sessions:
    """The hub process's sessions by id (a restart logs everyone out)."""

    by_id: dict[str, Session] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, token: str) -> tuple[str, Session]:
        """A new session for a token already checked; returns ``(session id, session)``."""
        session_id = secrets.token_urlsafe(32)
        session = Session(hash_token(token), token_id_of(token), secrets.token_urlsafe(32), time.time())
        with self.lock:
            now = time.time()
            for old in [k for k, v in self.by_id.items() if now - v.started_s > SESSION_S]:
                del self.by_id[old]
            self.by_id[session_id] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of that id, or None."""
        if not session_id:
            return None
        with self.lock:
            session = self.by_id.get(session_id)
            if session is not None and time.time() - session.started_s > SESSION_S:
                del self.by_id[session_id]
                return None
            return session

    def close(self, session_id: str | None) -> None:
        """End a session (logout)."""
        with self.lock:
            self.by_id.pop(session_id or "", None)


def sessions_of(request: Request) -> Sessions:
    """The sessions of the app the dashboard was mounted on."""
    sessions: Sessions = request.app.state.pumpops_sessions
    return sessions


def check_token(context: ApiContext, token: str) -> Principal:
    """The principal of a token typed into the login page.

    Raises:
        PageError: 401 with the reason (malformed, unknown, revoked or expired).
    """
    if parse_bearer(f"Bearer {token.strip()}") is None:
        raise PageError(401, "that is not a pumpops token (expected pumpops_<id>_<secret>)")
    return _principal_of(context, hash_token(token.strip()), token_id_of(token.strip()))


def _principal_of(context: ApiContext, token_sha256: str, token_id: str) -> Principal:
    record = context.store.api_token_by_hash(token_sha256)
    if record is None or record.token_id != token_id:
        raise PageError(401, "unknown token (make one with `pumpops tokens create`)")
    refusal = record.refusal(context.clock_us())
    if refusal is not None:
        raise PageError(401, f"{refusal} (token {record.token_id})")
    return Principal(name=record.name, role=record.role, token_id=record.token_id)


def user_of(request: Request) -> tuple[Principal, Session] | None:
    """The logged-in principal and session of a request, or None (no, unknown or refused session)."""
    session = sessions_of(request).get(request.cookies.get(COOKIE))
    if session is None:
        return None
    try:
        return _principal_of(context_of(request), session.token_sha256, session.token_id), session
    except PageError:
        sessions_of(request).close(request.cookies.get(COOKIE))
        return None


def require_role(principal: Principal, role: str, what: str) -> None:
    """Refuse (403) unless the principal's role is at least ``role``.

    Raises:
        PageError: 403 naming the role held and the one needed.
    """
    if not role_allows(principal.role, role):
        raise PageError(403, f"{principal.name} has role {principal.role}; {what} needs {role} or above")


def check_origin(request: Request) -> None:
    """Refuse (403) a post whose ``Origin`` is another site (browsers send it with every form post).

    Raises:
        PageError: 403 naming the foreign origin.
    """
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise PageError(403, f"refused: a form posted from another site ({origin})")


async def form_of(request: Request, session: Session) -> dict[str, str]:
    """The posted form (urlencoded) after the CSRF and origin checks.

    Raises:
        PageError: 403 for a missing or wrong CSRF token or a foreign origin; 400 for an oversized body.
    """
    check_origin(request)
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        raise PageError(400, "form too large")
    fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), max_num_fields=50).items()}
    given = request.headers.get("x-csrf-token") or fields.get("csrf", "")
    if not hmac.compare_digest(given.encode(), session.csrf.encode()):
        raise PageError(403, "refused: the form's CSRF token is missing or wrong (reload the page)")
    return fields


def safe_next(target: str | None, default: str = f"{PREFIX}/") -> str:
    r"""A redirect target inside the dashboard (an open redirect to another site is refused).

    >>> safe_next("/ui/alarms?offset=50"), safe_next("//evil.example/ui/"), safe_next("https://x/ui/")
    ('/ui/alarms?offset=50', '/ui/', '/ui/')
    >>> safe_next("/ui/\\evil"), safe_next(None), safe_next("/api/fleet")
    ('/ui/', '/ui/', '/ui/')
    """
    if not target or not target.startswith(f"{PREFIX}/") or "//" in target or "\\" in target:
        return default
    return target


@dataclass(frozen=True, slots=True)
class Table:
    """A table as shown and as exported: columns ``(key, label)`` and rows of cells.

    Keys starting with ``_`` are not columns: ``_links`` maps a column to a
    URL, ``_actions`` lists the row's buttons ``(label, url, role)``.
    """

    name: str
    columns: tuple[tuple[str, str], ...]
    rows: list[dict[str, Any]]
    total: int | None = None

    def csv(self) -> str:
        """The table as CSV: a header of labels, then one line per row (cells as shown).

        A cell a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``
        not followed by a number) is prefixed with ``'``.

        >>> t = Table("t", (("a", "A"), ("b", "B")), [{"a": "=SUM(A1)", "b": -3.5}, {"a": None, "b": "x,y"}])
        >>> print(t.csv(), end="")
        A,B
        '=SUM(A1),-3.5
        ,"x,y"
        """
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([label for _, label in self.columns])
        for row in self.rows:
            writer.writerow([_cell(row.get(key)) for key, _ in self.columns])
        return out.getvalue()


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # a cell a spreadsheet would run as a formula is quoted (CSV injection)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") and not _number(text) else text


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_response(tables: list[Table], which: str | None) -> Response:
    """The CSV of one of the page's tables (``?format=csv&table=<name>``; default the first).

    Raises:
        PageError: 404 when the page has no table of that name.
    """
    table = next((t for t in tables if which in (None, t.name)), None)
    if table is None:
        names = ", ".join(t.name for t in tables)
        raise PageError(404, f"no table {which!r} on this page (tables: {names})")
    return Response(
        table.csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="pumpops-{table.name}.csv"'},
    )


def render(
    request: Request,
    template: str,
    user: tuple[Principal, Session] | None,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    """A page from ``templates/`` with the user, their role checks and the CSRF token."""
    principal, session = user if user is not None else (None, None)
    response = templates.TemplateResponse(
        request,
        template,
        {
            "user": principal,
            "csrf": None if session is None else session.csrf,
            "can": (lambda role: principal is not None and role_allows(principal.role, role)),
            "prefix": PREFIX,
            "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            **values,
        },
        status_code=status,
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
    )
    return response
