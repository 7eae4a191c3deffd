"""Command-line commands of the device agent: ``pumpops agent run|recalibrate|status``.

May import: typer, ``pumpops.edge`` and its edge-safe dependencies only (the
agent's install has no hub libraries); heavy modules load inside commands.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["agent_app", "register"]

agent_app = typer.Typer(
    help="The device agent: detects faults on the pump, updates itself, works offline.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="The agent's settings file (agent.toml).", show_default=False)
]


def register(app: typer.Typer) -> None:
    """Add ``agent`` to the root ``pumpops`` command."""
    app.add_typer(agent_app, name="agent")


@agent_app.command("run")
def run_cmd(
    config: ConfigOption,
    max_seconds: Annotated[
        float | None, typer.Option(min=0, help="Stop after this many wall-clock seconds (default: run on).")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log every step, not only warnings.")
    ] = False,
) -> None:
    """Run the agent: read the pump, score, raise alarms, update the model, report to the hub."""
    from pumpops.edge._agent import Agent
    from pumpops.edge._config import load_agent_config

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    agent = Agent(load_agent_config(config))
    raise typer.Exit(agent.run(max_seconds=max_seconds))


@agent_app.command("recalibrate")
def recalibrate_cmd(config: ConfigOption) -> None:
    """After maintenance: gather a new normal period and compute this pump's own calibration."""
    from pumpops.edge._agent import RECALIBRATE_FILE
    from pumpops.edge._config import load_agent_config

    cfg = load_agent_config(config)
    cfg.agent.state_dir.mkdir(parents=True, exist_ok=True)
    (cfg.agent.state_dir / RECALIBRATE_FILE).write_text("requested\n", encoding="utf-8")
    typer.echo(
        f"recalibration requested for {cfg.agent.device_id}: the agent reports 'calibrating' until "
        f"{cfg.agent.calibration_rows} normal rows are gathered"
    )


@agent_app.command("status")
def status_cmd(
    config: ConfigOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print the state report as JSON.")] = False,
) -> None:
    """Show the agent's last state report (model, health, calibration, outbox, drift)."""
    from pumpops.edge._config import load_agent_config
    from pumpops.errors import NotFoundError

    cfg = load_agent_config(config)
    path = cfg.agent.state_dir / "state.json"
    if not path.is_file():
        raise NotFoundError(f"no state report in {cfg.agent.state_dir}: has the agent run yet?")
    state = json.loads(path.read_bytes())
    if as_json:
        typer.echo(json.dumps(state, indent=2, sort_keys=True))
        return
    for key in (
        "status", "model_name", "model_version", "slot", "execution_provider", "health", "calibration",
        "stale", "last_update_error", "outbox_depth", "outbox_dropped", "drift_status",
    ):  # fmt: skip
        typer.echo(f"{key:20} {state.get(key)}")
