"""``pumpops demo``: the whole loop on embedded defaults, or only the telemetry path.

May import at module level: typer, stdlib; ``pumpops.demo`` inside the command.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pumpops.cli._support import console


def register(app: typer.Typer) -> None:
    """Add ``pumpops demo`` to the root command."""
    app.command("demo")(demo_cmd)


def demo_cmd(  # noqa: PLR0917 - typer passes options by keyword
    workspace: Path = typer.Option(Path("demo-workspace"), help="Folder for the demo's database and files."),
    telemetry_only: bool = typer.Option(
        False, "--telemetry-only", help="Only the telemetry path (simulate → broker → ingest → SQLite)."
    ),
    pumps: int = typer.Option(21, min=6, max=60, help="Pumps in the loop demo (three makes take turns)."),
    run_hours: float = typer.Option(8.0, min=4.0, max=24.0, help="Simulated hours the agents run."),
    speed: float = typer.Option(120.0, min=10.0, max=600.0, help="Simulated seconds per wall second."),
    devices: int = typer.Option(9, min=3, max=300, help="--telemetry-only: pumps in the fleet."),
    hours: float = typer.Option(6.0, min=0.1, max=72.0, help="--telemetry-only: hours, ending now."),
    seed: int = typer.Option(7, min=0, help="Seed of everything random."),
    drift_kind: str = typer.Option(
        "sensor_recalibration",
        "--drift-kind",
        help="The benign drift on one make: sensor_recalibration, setpoint_change, seasonal_ambient, "
        "or pump_replacement (one pump of the make).",
    ),
    secure: bool = typer.Option(
        False,
        "--secure",
        help="Run the loop over Mosquitto with TLS, passwords and access rules (`pumpops broker config`); "
        "every pump provisioned with its own credentials. Needs the mosquitto binary.",
    ),
    serve: bool = typer.Option(
        False,
        "--serve",
        help="After the loop, keep the hub running (`pumpops hub serve`) so the run can be explored in the "
        "dashboard at /ui/ with a fresh operator token printed here; Ctrl-C stops it.",
    ),
    serve_port: int = typer.Option(8080, min=1, max=65535, help="--serve: the hub's port."),
) -> None:
    """Run the whole loop on embedded defaults, with the agents as real processes (about 7 minutes).

    Train, validate, release and roll out one model per make; agents detect faults; a
    benign drift makes one make's stale model raise false alarms; the hub sees the fleet
    drift, retrains, validates, releases and rolls out wave by wave; a bad candidate is
    blocked; the audit chain verifies. Writes <workspace>/report.html. Needs no running service.
    With --secure the broker is a Mosquitto started from the generated configuration.
    With --serve the hub then serves the workspace (dashboard, API) until Ctrl-C.
    """
    workspace = workspace.resolve()  # child processes run in other folders
    if telemetry_only and (secure or serve):
        raise typer.BadParameter("--secure and --serve run the loop demo; not with --telemetry-only")
    if telemetry_only:
        from pumpops.demo import DemoOptions, run_demo

        run_demo(DemoOptions(workspace=workspace, devices=devices, hours=hours, seed=seed))
        return
    from pumpops.demo import LoopOptions, run_loop_demo
    from pumpops.errors import ConfigError

    try:
        options = LoopOptions(
            workspace=workspace,
            pumps=pumps,
            run_h=run_hours,
            speed=speed,
            seed=seed,
            secure=secure,
            drift_kind=drift_kind,
        )
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--drift-kind") from exc
    run_loop_demo(options, console)
    if serve:
        _serve(workspace, serve_port)


def _serve(workspace: Path, port: int) -> None:
    """Run ``pumpops hub serve`` on the demo's workspace with a fresh operator token, until Ctrl-C."""
    import subprocess
    import sys

    base = [sys.executable, "-m", "pumpops", "-w", str(workspace)]
    token = [*base, "tokens", "create", "--name", "demo-operator", "--role", "operator"]
    subprocess.run(token, check=True)  # noqa: S603 - this interpreter, our own arguments
    console.print(
        f"Dashboard: http://127.0.0.1:{port}/ui/ (log in with the token above); Ctrl-C stops the hub.",
        soft_wrap=True,
    )
    try:
        subprocess.run([*base, "hub", "serve", "--port", str(port)], check=False)  # noqa: S603 - as above
    except KeyboardInterrupt:
        console.print("hub stopped")
