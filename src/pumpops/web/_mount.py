"""Mount the API on the hub's application: routers, JSON errors, OpenAPI and its docs page, ``/metrics``.

The OpenAPI document is served at ``/api/openapi.json`` and Swagger UI at
``/api/docs``, its JavaScript and CSS from the ``fastapi-offline`` package's
copy (served under ``/api/docs/assets/``): nothing is loaded from a CDN, so the
page works at a site with no internet. Both are public (they describe the API,
they hold no data); every other ``/api`` route needs a token. A middleware
records each request's server time in ``pumpops_api_request_seconds``.
May import: fastapi, starlette, fastapi_offline (its files), this part.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from pumpops.web._context import ApiContext
from pumpops.web._errors import install_error_handlers
from pumpops.web._metrics import CONTENT_TYPE_LATEST, HubMetrics
from pumpops.web._pages import mount_dashboard
from pumpops.web._read_routes import fleet_view, read_router
from pumpops.web._stream import stream_router
from pumpops.web._write_routes import write_router

__all__ = ["DOCS_URL", "OPENAPI_URL", "mount_api"]

OPENAPI_URL = "/api/openapi.json"
DOCS_URL = "/api/docs"
_ASSETS = "/api/docs/assets"


_DESCRIPTION = (
    "The pumpops hub's HTTP API. Every route needs `Authorization: Bearer <token>` "
    "(`pumpops tokens create --name NAME --role viewer|operator|admin`): viewer reads; operator also "
    "acknowledges alarms, gives feedback, pauses and resumes rollouts; admin also starts and aborts "
    "rollouts, promotes and approves. Every write is an audit entry whose actor is the token's name. "
    'Errors are JSON: `{"error": code, "detail": reason}`. See docs/api.md.'
)


def _version() -> str:
    from pumpops import __version__  # noqa: PLC0415 - read once, when the document is built

    return str(__version__)


def _assets_folder() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def mount_api(app: FastAPI, context: ApiContext) -> HubMetrics:
    """Add the API, its docs and ``/metrics`` to ``app``; return the metrics (for in-process timers).

    Args:
        app: the hub's application (:func:`pumpops.hub.create_app`).
        context: what the routes run on.
    """
    app.state.pumpops_api = context
    metrics = HubMetrics(context, fleet_view)
    install_error_handlers(app)
    app.include_router(read_router)
    app.include_router(write_router)
    app.include_router(stream_router)
    app.mount(_ASSETS, StaticFiles(directory=_assets_folder()), name="api-docs-assets")

    document: list[dict[str, object]] = []

    @app.get(OPENAPI_URL, include_in_schema=False)
    def openapi() -> JSONResponse:
        if not document:  # the API's routes only: /tuf/ and /healthz are not part of it
            routes = [*read_router.routes, *write_router.routes, *stream_router.routes]
            built = get_openapi(
                title="pumpops hub API", version=_version(), description=_DESCRIPTION, routes=routes
            )
            # the bearer token, so that the docs page's "Authorize" can send it with each try
            built.setdefault("components", {})["securitySchemes"] = {
                "token": {"type": "http", "scheme": "bearer", "description": "pumpops tokens create"}
            }
            built["security"] = [{"token": []}]
            document.append(built)
        return JSONResponse(document[0])

    @app.get(DOCS_URL, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title="pumpops hub API",
            swagger_js_url=f"{_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{_ASSETS}/favicon.png",
        )

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.middleware("http")
    async def timed(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        if request.url.path.startswith("/api/") and not request.url.path.startswith(_ASSETS):
            route = getattr(request.scope.get("route"), "path", "(unmatched)")
            metrics.requests.labels(
                route=route, method=request.method, status=str(response.status_code)
            ).observe(time.perf_counter() - started)
        return response

    mount_dashboard(app)  # the dashboard, /ui/ (issue 17, part 2)
    return metrics
