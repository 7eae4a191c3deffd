"""Command-line commands of the hub: ``pumpops hub serve``.

May import: typer, uvicorn, ``pumpops.cli._support``, settings, the release repository location,
the hub's services.
"""

from __future__ import annotations

from typing import Annotated

import typer

from pumpops.cli._support import console, settings_from

__all__ = ["hub_app", "register"]

hub_app = typer.Typer(help="The hub process: serves the TUF repository over HTTP.", no_args_is_help=True)


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
    """Serve the repository read-only under /tuf/ (metadata/ and targets/), and /healthz.

    With --services, each service's start, stop and failure is logged to stderr, one line each.
    The embedded broker listens on the embedded_broker_port setting (default 1884; 1883 is
    Mosquitto's): if that port is taken the command fails at once (exit 5) instead of using whatever
    broker holds it.
    """
    import logging
    import sys

    import uvicorn

    from pumpops.hub import HubServices, create_app
    from pumpops.release import open_repository

    settings = settings_from(ctx)
    repo = open_repository(settings)
    logger = logging.getLogger("pumpops")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    hub = HubServices(settings).start() if services else None
    console.print(f"serving {repo.folder} at http://{host}:{port}/tuf/")
    try:
        uvicorn.run(create_app(repo.folder), host=host, port=port, log_level="warning")
    finally:
        if hub is not None:
            hub.stop()
