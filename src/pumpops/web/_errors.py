"""JSON errors of the API: every failure is ``{"error": <code>, "detail": <reason>}``, never a traceback.

pumpops' own errors map to statuses by who is at fault (``pumpops.errors``):
bad input or a refusal (a rule of the state machine, a gate) 400, a malformed
request 422, not found 404, a failed check 409, the store or broker down 503. Request
validation errors (a malformed query or JSON body) are 422 with each field's
reason; anything unexpected is 500 with no detail beyond its type, logged.
May import: fastapi, starlette, errors.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pumpops.errors import (
    CheckFailed,
    ConfigError,
    InputError,
    IntegrityError,
    NotFoundError,
    PumpopsError,
    ServiceError,
)

__all__ = ["ApiError", "install_error_handlers"]

_log = logging.getLogger("pumpops.web")


class ApiError(HTTPException):
    """An API failure with a status, a short code and a reason a person can act on."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(status_code=status, detail=detail)
        self.code = code


def status_of(exc: PumpopsError) -> tuple[int, str]:
    """The HTTP status and code of a pumpops error.

    >>> status_of(NotFoundError("x")), status_of(ServiceError("x"))
    ((404, 'not_found'), (503, 'unavailable'))
    """
    table: tuple[tuple[type[PumpopsError], int, str], ...] = (
        (NotFoundError, 404, "not_found"),
        (InputError, 400, "bad_input"),
        (ConfigError, 400, "refused"),
        (CheckFailed, 409, "check_failed"),
        (IntegrityError, 409, "integrity"),
        (ServiceError, 503, "unavailable"),
    )
    for kind, status, code in table:
        if isinstance(exc, kind):
            return status, code
    return 500, "error"


def _body(code: str, detail: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail}


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` a JSON body (``error``, ``detail``)."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(_body(exc.code, exc.detail), status_code=exc.status_code, headers=headers)

    @app.exception_handler(StarletteHTTPException)  # also routing's own 404 and 405
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(_body(code, exc.detail), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        reasons = [
            {"where": ".".join(str(p) for p in err.get("loc", ())), "reason": err.get("msg", "invalid")}
            for err in exc.errors()
        ]
        return JSONResponse(_body("invalid_request", reasons), status_code=422)

    @app.exception_handler(PumpopsError)
    async def pumpops_error(request: Request, exc: PumpopsError) -> JSONResponse:
        status, code = status_of(exc)
        if status >= 500:
            _log.warning("%s %s failed: %s", request.method, request.url.path, exc)
        return JSONResponse(_body(code, str(exc)), status_code=status)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.exception("%s %s failed unexpectedly", request.method, request.url.path)
        return JSONResponse(
            _body("internal", f"unexpected {type(exc).__name__}; the hub's log has the details"),
            status_code=500,
        )
