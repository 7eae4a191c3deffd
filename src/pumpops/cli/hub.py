"""Command-line commands of the hub: ``pumpops hub serve`` (the TUF repository, the HTTP API, metrics).

May import: typer, uvicorn, ``pumpops.cli._support``, settings, the release repository location,
the hub's services.
"""

from __future__ import annotations

from typing import Annotated

import typer

from pumpops.cli._support import console, settings_from

__all__ = ["hub_app", "register"]

hub_app = typer.Typer(
    help="The hub process: serves the TUF repository, the HTTP API and /metrics.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add ``hub`` to the root ``pumpops`` command."""
    app.add_typer(hub_app, name="hub")


@hub_app.command("serve")
def serve_cmd(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    services: Annotated[
        bool,
        typer.Option(
            "--services/--no-services",
            help="Also run ingest, fleet monitoring, the retrain policy and the rollout controller "
            "(and, on the embedded default, the MQTT broker).",
        ),
    ] = False,
) -> None:
    """Serve the repository read-only under /tuf/, the HTTP API under /api/ (docs at /api/docs), /metrics.

    Every /api route but the docs needs a token (`pumpops tokens create`).
    With --services, each service's start, stop and failure is logged to stderr, one line each.
    The embedded broker listens on the embedded_broker_port setting (default 1884; 1883 is
    Mosquitto's): if that port is taken the command fails at once (exit 5) instead of using whatever
    broker holds it.
    """
    import logging
    import sys
    from typing import cast

    import uvicorn

    from pumpops.hub import HubServices, api_context, create_app, open_workspace_store
    from pumpops.release import open_repository
    from pumpops.store import TelemetryStore
    from pumpops.web import StoreWriteTimer, mount_api

    settings = settings_from(ctx)
    repo = open_repository(settings)
    logger = logging.getLogger("pumpops")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    with open_workspace_store(settings, upgrade=True) as store, api_context(settings, store) as context:
        metrics = []
        app = create_app(repo.folder, api=lambda a: metrics.append(mount_api(a, context)))
        hub = None
        if services:
            hub = HubServices(
                settings,
                wrap_ingest_store=lambda s: cast(TelemetryStore, StoreWriteTimer(s, metrics[0].store_writes)),
            ).start()
            context.ingest_stats = lambda: None if hub is None or hub.ingest is None else hub.ingest.stats()
        base = f"http://{host}:{port}"
        console.print(
            f"serving {repo.folder} at {base}/tuf/; the API at {base}/api/ (docs {base}/api/docs, "
            f"tokens: `pumpops tokens create`); metrics at {base}/metrics; the dashboard at {base}/ui/",
            soft_wrap=True,
        )
        try:
            uvicorn.run(app, host=host, port=port, log_level="warning")
        finally:
            if hub is not None:
                hub.stop()
