"""Command-line commands of ``pumpops.sources``: ``pumpops sources skab`` checks a SKAB folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

sources_app = typer.Typer(
    name="sources",
    help="Sensor sources: the simulator and SKAB CSV replay.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root ``pumpops`` command."""
    app.add_typer(sources_app, name="sources")


@sources_app.command("skab")
def skab_cmd(
    path: Annotated[Path, typer.Argument(help="A SKAB CSV file or a folder of them.")],
    utc_offset_s: Annotated[
        int, typer.Option("--utc-offset-s", help="Local time offset of the recording from UTC, seconds.")
    ] = 0,
) -> None:
    """Read and check SKAB CSV files; list each experiment with its rows, times and labels.

    A malformed or truncated file fails with its name and line.
    """
    from rich.table import Table

    from pumpops._cli_support import console
    from pumpops.sim import iso_utc
    from pumpops.sources import SkabCsvSource

    source = SkabCsvSource(path, utc_offset_s=utc_offset_s)
    table = Table(title=f"SKAB files under {path}")
    for column in ("experiment", "device", "rows", "first", "last", "anomaly rows", "changepoints"):
        table.add_column(
            column, justify="right" if column in ("rows", "anomaly rows", "changepoints") else "left"
        )
    for labels, experiment in zip(source.labels(), source.experiments, strict=True):
        table.add_row(
            experiment.experiment,
            labels.device_id,
            str(experiment.n_rows),
            iso_utc(int(experiment.ts_ms[0])),
            iso_utc(int(experiment.ts_ms[-1])),
            "-" if labels.anomaly is None else str(int(labels.anomaly.sum())),
            "-" if labels.changepoint is None else str(int(labels.changepoint.sum())),
        )
    console.print(table)
