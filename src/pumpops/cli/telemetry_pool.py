"""``pumpops ingest --workers N``: a pool of ingest processes on one MQTT shared subscription.

The pool itself (start, watch, start a dead worker again with its client id,
stop) is :class:`pumpops.telemetry.WorkerPool`; this module turns the
command's options into each worker's ``pumpops ingest`` command line.
May import: typer, ``pumpops.cli._support``, ``pumpops.errors``; ``pumpops.settings``
and ``pumpops.telemetry`` inside the command.
"""

from __future__ import annotations

import sys
import threading

import typer

from pumpops.cli._support import err_console, settings_from
from pumpops.errors import ConfigError

__all__ = ["ingest_pool"]


def ingest_pool(
    ctx: typer.Context,
    *,
    broker: str | None,
    database_url: str | None,
    client_id: str | None,
    shared_group: str | None,
    duration_s: float | None,
    workers: int,
) -> None:
    """``ingest --workers N``: N ingest processes on one shared subscription, restarted if they die."""
    from pumpops.settings import IngestSettings
    from pumpops.telemetry import WorkerPool, parse_broker_url, stop_on_signals, worker_client_id

    settings = settings_from(ctx, broker_url=broker, database_url=database_url)
    if parse_broker_url(settings.broker_url) is None:
        raise ConfigError(
            "the embedded broker (amqtt) has no shared subscriptions, so --workers needs a real broker "
            "(--broker mqtt://host:1883, or broker_url in pumpops.toml)"
        )
    base_id = client_id or settings.ingest.client_id
    group = shared_group or settings.ingest.shared_group or "pumpops-ingest"
    try:  # checked here so that a bad value fails once, not in every worker
        IngestSettings.model_validate(
            {**settings.ingest.model_dump(), "shared_group": group, "client_id": base_id}
        )
        for i in range(workers):
            IngestSettings.model_validate({"client_id": worker_client_id(base_id, i)})
    except ValueError as exc:
        raise ConfigError(f"invalid ingest option: {exc}") from exc

    def command(i: int) -> list[str]:
        cmd = [sys.executable, "-m", "pumpops", "-w", str(settings.workspace), "ingest"]
        cmd += ["--broker", settings.broker_url, "--database-url", settings.resolved_database_url]
        return [*cmd, "--client-id", worker_client_id(base_id, i), "--shared-group", group]

    err_console.print(
        f"{workers} ingest workers on $share/{group}/{settings.topic_prefix}/# at {settings.broker_url} "
        f"(client ids {worker_client_id(base_id, 0)} ... {worker_client_id(base_id, workers - 1)}); "
        "Ctrl-C stops",
        highlight=False,
    )
    stop = threading.Event()
    if duration_s is not None:
        threading.Timer(duration_s, stop.set).start()
    with stop_on_signals(stop):
        restarts = WorkerPool(command=command, size=workers).run(stop)
    err_console.print(f"ingest workers stopped; {restarts} restart(s) of a dead worker", highlight=False)
