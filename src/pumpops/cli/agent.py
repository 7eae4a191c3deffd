"""Command-line commands of the device agent: ``pumpops agent init|run|recalibrate|status``.

May import: typer, ``pumpops.edge`` and its edge-safe dependencies only (the
agent's install has no hub libraries); heavy modules load inside commands.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from pumpops.cli._support import (
    JsonFlag,
    OutputFormat,
    OutputOption,
    emit_record,
    output_format,
    parse_duration,
)
from pumpops.errors import ConfigError

__all__ = ["agent_app", "register", "status_verdict"]

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


@agent_app.command("init")
def init_cmd(
    path: Annotated[Path, typer.Argument(help="Where to write the settings file.", show_default=True)] = Path(
        "agent.toml"
    ),
) -> None:
    """Write a commented starting agent.toml: every key with its default (never overwrites).

    The values marked FILL IN are placeholders (the file loads as it is): set the
    pump's id, site, group, profile and target, and the repository and its root.
    """
    from pumpops.edge import write_starting_agent_toml

    written = write_starting_agent_toml(path.resolve())
    typer.echo(f"wrote {written}: set the values marked FILL IN, then `pumpops agent run --config {path}`")


@agent_app.command("run")
def run_cmd(
    config: ConfigOption,
    duration: Annotated[
        str | None,
        typer.Option("--duration", help="Stop after this wall time, e.g. 90s, 10m, 1h (default: run on)."),
    ] = None,
    max_seconds: Annotated[
        float | None, typer.Option("--max-seconds", min=0, hidden=True, help="Old form of --duration.")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log every step, not only warnings.")
    ] = False,
) -> None:
    """Run the agent: read the pump, score, raise alarms, update the model, report to the hub.

    This process hands over to the lean device process (``pumpops-agent``, the same
    options): the command line's libraries do not stay resident beside the agent.
    """
    try:
        seconds = parse_duration(duration) if duration is not None else max_seconds
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--duration") from None
    from pumpops.edge import exec_agent, load_agent_config

    load_agent_config(config)  # a settings error is told here, with the pumpops exit code
    exec_agent(config, seconds=seconds, verbose=verbose)


@agent_app.command("recalibrate")
def recalibrate_cmd(config: ConfigOption) -> None:
    """After maintenance: gather a new normal period and compute this pump's own calibration."""
    from pumpops.edge import RECALIBRATE_FILE, load_agent_config

    cfg = load_agent_config(config)
    cfg.agent.state_dir.mkdir(parents=True, exist_ok=True)
    (cfg.agent.state_dir / RECALIBRATE_FILE).write_text("requested\n", encoding="utf-8")
    typer.echo(
        f"recalibration requested for {cfg.agent.device_id}: the agent reports 'calibrating' until "
        f"{cfg.agent.calibration_rows} normal rows are gathered"
    )


_MAX_LISTED = 6  # sensors named in a verdict before "…"


def status_verdict(state: Mapping[str, Any]) -> str:
    """One line judging an agent's state report: ``ok``, or what needs a look.

    A state is ``ok`` only if a model detects with health ``ok``, is not stale,
    its last update did not fail and no sensor drifts. Drift is named even when
    the model still fits (PSI flags the shifted sensors; the model's median score
    over its threshold decides whether the pump "drifts" for the hub).

    >>> status_verdict({"status": "detecting", "health": "ok", "drift_status": {"status": "ok"}})
    'ok'
    >>> status_verdict({"status": "detecting", "health": "ok",
    ...                 "drift_status": {"status": "ok", "drifted": ["a", "b"]}})
    'drifting: 2 sensors (a, b); the model still fits'
    """
    problems: list[str] = []
    status = state.get("status")
    health = state.get("health")
    reasons = "; ".join(str(r) for r in state.get("health_reasons") or [])
    if status == "no_model":
        problems.append("no model installed" + (f" ({reasons})" if reasons else ""))
    elif status == "calibrating":
        problems.append(f"calibrating ({state.get('calibration')})")
    elif status not in ("detecting", None):
        problems.append(f"{status}" + (f": {reasons}" if reasons else ""))
    if health not in ("ok", "none", "waiting", None) and status != health:
        problems.append(f"health {health}" + (f": {reasons}" if reasons else ""))
    drift = state.get("drift_status") or {}
    drifted = [str(name) for name in drift.get("drifted") or []]
    named = ", ".join(drifted[:_MAX_LISTED]) + (", …" if len(drifted) > _MAX_LISTED else "")
    ratio = drift.get("median_score_over_threshold")
    if drift.get("status") == "drift":
        what = (
            f"median score {ratio:g}x the threshold"
            if isinstance(ratio, int | float)
            else "model no longer fits"
        )
        problems.append(
            f"drifting: {len(drifted)} sensors ({named}), {what}" if drifted else f"drifting: {what}"
        )
    elif drifted:
        problems.append(f"drifting: {len(drifted)} sensors ({named}); the model still fits")
    if state.get("stale"):
        problems.append("stale: no successful update check within max_model_age_h")
    if state.get("last_update_error"):
        problems.append(f"last update failed: {state['last_update_error']}")
    if state.get("outbox_dropped"):
        problems.append(f"outbox dropped {state['outbox_dropped']} messages")
    if state.get("alarm_active"):
        problems.append("alarm active")
    return "; ".join(problems) if problems else "ok"


@agent_app.command("status")
def status_cmd(
    config: ConfigOption,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Show the agent's last state report with a verdict (model, health, calibration, outbox, drift)."""
    from pumpops.edge import load_agent_config
    from pumpops.errors import NotFoundError

    fmt = output_format(output, as_json)
    cfg = load_agent_config(config)
    path = cfg.agent.state_dir / "state.json"
    if not path.is_file():
        raise NotFoundError(f"no state report in {cfg.agent.state_dir}: has the agent run yet?")
    state = json.loads(path.read_bytes())
    verdict = status_verdict(state)
    if fmt is OutputFormat.JSON:
        typer.echo(json.dumps({"verdict": verdict, **state}, indent=2, sort_keys=True))
        return
    keys = (
        "status", "model_name", "model_version", "slot", "execution_provider", "health", "calibration",
        "stale", "last_update_error", "outbox_depth", "outbox_dropped", "drift_status",
    )  # fmt: skip
    emit_record({"verdict": verdict, **{key: state.get(key) for key in keys}}, output=fmt)
