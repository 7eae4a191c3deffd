"""Command-line commands of ``pumpops.sim``: ``pumpops sim faults`` and ``pumpops sim truth``.

Publishing a simulated fleet is ``pumpops simulate`` (in ``pumpops.telemetry``,
which owns the MQTT publisher); these commands only describe and label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

sim_app = typer.Typer(
    name="sim",
    help="The pump fleet simulator: fault signatures and ground truth (publishing is `pumpops simulate`).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root ``pumpops`` command."""
    app.add_typer(sim_app, name="sim")


@sim_app.command("faults")
def faults_cmd() -> None:
    """List the fault and drift kinds the simulator makes, with the sensors each one moves."""
    from pumpops._cli_support import console
    from pumpops.sim import SIGNATURES, FaultKind

    for kind, sig in SIGNATURES.items():
        category = "fault" if isinstance(kind, FaultKind) else "drift (benign)"
        console.print(f"[bold]{kind}[/] ({category})", highlight=False)
        console.print(f"  {sig.summary}", highlight=False, soft_wrap=False)
        for label, sensors in (
            ("up", sig.up),
            ("down", sig.down),
            ("noisier", sig.noisier),
            ("moves", sig.other),
        ):
            if sensors:
                console.print(f"  {label + ':':9}{', '.join(sorted(sensors))}", highlight=False)
        if kind.value == "sensor_recalibration":
            console.print("  moves:   the one recalibrated sensor, by a constant offset", highlight=False)


@sim_app.command("truth")
def truth_cmd(
    out: Annotated[Path, typer.Argument(help="Ground-truth JSON file to write.")],
    *,
    devices: Annotated[int, typer.Option("--devices", min=1, help="How many pumps (makes in turn).")] = 30,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of everything random.")] = 0,
    start: Annotated[str, typer.Option("--start", help="Simulated start, ISO-8601 (UTC if no offset).")] = (
        "2025-01-01T00:00:00Z"
    ),
    duration_s: Annotated[float, typer.Option("--duration-s", min=1.0, help="Simulated seconds.")] = 86_400.0,
    fault_rate: Annotated[
        float, typer.Option("--fault-rate", min=0.0, help="Random faults per device per day.")
    ] = 1.0,
    drift_rate: Annotated[
        float,
        typer.Option(
            "--drift-rate", min=0.0, help="Set-point changes and recalibrations per device per day."
        ),
    ] = 2.0,
) -> None:
    """Write the ground truth (fleet, faults, drift) of a simulated fleet without publishing it.

    Same options, same seed, same file as ``pumpops simulate`` would label.
    """
    from pumpops._cli_support import console
    from pumpops.sim import Scenario, build_fleet, ground_truth, to_epoch_ms, write_ground_truth

    scenario = Scenario(
        devices=build_fleet(devices, seed),
        start_ms=to_epoch_ms(start),
        duration_s=duration_s,
        seed=seed,
        fault_rate_per_day=fault_rate,
        drift_rate_per_day=drift_rate,
    )
    path = write_ground_truth(out, scenario)
    events = ground_truth(scenario)["events"]  # cheap: events are drawn, no samples are made
    counts: dict[str, int] = {}
    for event in events:
        counts[event["kind"]] = counts.get(event["kind"], 0) + 1
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no events"
    console.print(f"wrote {path}: {devices} devices, {summary}", highlight=False)
