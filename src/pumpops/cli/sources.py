"""Command-line commands of ``pumpops.sources``: ``pumpops sources skab`` checks a SKAB folder.

May import: typer, ``pumpops.cli._support``; the sources inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pumpops.cli._support import JsonFlag, OutputFormat, OutputOption, emit_rows, output_format

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
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Read and check SKAB CSV files; list each experiment with its rows, times and labels.

    A malformed or truncated file fails with its name and line (exit 3); a
    missing path or a folder without CSV files exits 4.
    """
    fmt = output_format(output, as_json)
    from pumpops.sim import iso_utc
    from pumpops.sources import SkabCsvSource

    source = SkabCsvSource(path, utc_offset_s=utc_offset_s)
    rows = [
        {
            "experiment": experiment.experiment,
            "device": labels.device_id,
            "rows": experiment.n_rows,
            "first": iso_utc(int(experiment.ts_ms[0])),
            "last": iso_utc(int(experiment.ts_ms[-1])),
            "anomaly_rows": None if labels.anomaly is None else int(labels.anomaly.sum()),
            "changepoints": None if labels.changepoint is None else int(labels.changepoint.sum()),
        }
        for labels, experiment in zip(source.labels(), source.experiments, strict=True)
    ]
    emit_rows(rows, output=fmt, title=f"SKAB files under {path}")
