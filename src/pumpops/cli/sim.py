"""Command-line commands of ``pumpops.sim``: ``pumpops sim faults`` and ``pumpops sim truth``.

Publishing a simulated fleet is ``pumpops simulate`` (in ``pumpops.telemetry``,
which owns the MQTT publisher); these commands only describe and label.
May import: typer, ``pumpops.cli._support``; the simulator inside the commands.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from pumpops.cli._support import (
    JsonFlag,
    OutputFormat,
    OutputOption,
    console,
    emit_record,
    emit_rows,
    output_format,
    parse_duration,
)
from pumpops.errors import ConfigError

_T = TypeVar("_T")


def _option_value(option: str, text: str, parse: Callable[[str], _T]) -> _T:
    """Parse a flag's value; a bad one is a usage error naming the flag as typed (``--duration``)."""
    try:
        return parse(text)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


sim_app = typer.Typer(
    name="sim",
    help="The pump fleet simulator: fault signatures and ground truth (publishing is `pumpops simulate`).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root ``pumpops`` command."""
    app.add_typer(sim_app, name="sim")


@sim_app.command("faults")
def faults_cmd(output: OutputOption = OutputFormat.TABLE, as_json: JsonFlag = False) -> None:
    """List the fault and drift kinds the simulator makes, with the sensors each one moves."""
    from pumpops.sim import SIGNATURES, FaultKind

    fmt = output_format(output, as_json)
    rows = []
    for kind, sig in SIGNATURES.items():
        moves = sorted(sig.other)
        if kind.value == "sensor_recalibration":
            moves.append("the one recalibrated sensor, by a constant offset")
        rows.append(
            {
                "kind": kind.value,
                "category": "fault" if isinstance(kind, FaultKind) else "drift (benign)",
                "summary": sig.summary,
                "up": sorted(sig.up),
                "down": sorted(sig.down),
                "noisier": sorted(sig.noisier),
                "moves": moves,
            }
        )
    if fmt is not OutputFormat.TABLE:
        if fmt is OutputFormat.CSV:  # one cell per list: names joined by spaces
            rows = [{k: " ".join(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows]
        emit_rows(rows, output=fmt, columns=("kind", "category", "summary", "up", "down", "noisier", "moves"))
        return
    # A block per kind: the summaries are sentences, and each line stays greppable.
    for row in rows:
        console.print(f"[bold]{row['kind']}[/] ({row['category']})", highlight=False)
        console.print(f"  {row['summary']}", highlight=False)
        for label in ("up", "down", "noisier", "moves"):
            if row[label]:
                console.print(f"  {label + ':':9}{', '.join(row[label])}", highlight=False)


@sim_app.command("truth")
def truth_cmd(
    out: Annotated[Path, typer.Argument(help="Ground-truth JSON file to write.")],
    *,
    devices: Annotated[int, typer.Option("--devices", min=1, help="How many pumps (makes in turn).")] = 30,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of everything random.")] = 0,
    start: Annotated[str, typer.Option("--start", help="Simulated start, ISO-8601 (UTC if no offset).")] = (
        "2025-01-01T00:00:00Z"
    ),
    duration: Annotated[
        str, typer.Option("--duration", help="Simulated time, e.g. 90s, 10m, 1h, 1d.")
    ] = "1d",
    duration_s: Annotated[
        float | None, typer.Option("--duration-s", min=1.0, hidden=True, help="Old form of --duration.")
    ] = None,
    fault_rate: Annotated[
        float, typer.Option("--fault-rate", min=0.0, help="Random faults per device per day.")
    ] = 1.0,
    drift_rate: Annotated[
        float,
        typer.Option(
            "--drift-rate", min=0.0, help="Set-point changes and recalibrations per device per day."
        ),
    ] = 2.0,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Write the ground truth (fleet, faults, drift) of a simulated fleet without publishing it.

    Same options, same seed, same file as ``pumpops simulate`` would label.
    """
    fmt = output_format(output, as_json)
    seconds = duration_s if duration_s is not None else _option_value("--duration", duration, parse_duration)
    from pumpops.sim import Scenario, build_fleet, ground_truth, to_epoch_ms, write_ground_truth

    scenario = Scenario(
        devices=build_fleet(devices, seed),
        start_ms=_option_value("--start", start, to_epoch_ms),
        duration_s=seconds,
        seed=seed,
        fault_rate_per_day=fault_rate,
        drift_rate_per_day=drift_rate,
    )
    path = write_ground_truth(out, scenario)
    events = ground_truth(scenario)["events"]  # cheap: events are drawn, no samples are made
    counts: dict[str, int] = {}
    for event in events:
        counts[event["kind"]] = counts.get(event["kind"], 0) + 1
    if fmt is not OutputFormat.TABLE:
        emit_record(
            {
                "path": str(path),
                "devices": devices,
                "duration_s": seconds,
                "events": dict(sorted(counts.items())),
            },
            output=fmt,
        )
        return
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no events"
    console.print(f"wrote {path}: {devices} devices, {summary}", highlight=False)
