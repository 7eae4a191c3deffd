"""``pumpops validate-model``: run every validation gate on a model folder and write the report.

The folder-based command; ``pumpops validate <name>/<version>`` (the
registry's) resolves a registered version to folders and calls
:func:`pumpops.validation.validate_model` the same way. Exit code 0 when the
candidate passes, 1 when a gate fails (after the report is printed and
written); bad input raises a :mod:`pumpops.errors` error, which
``pumpops.cli.main`` maps to its exit code.

May import: typer, this package, errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pumpops._atomic import write_atomic
from pumpops.errors import ConfigError
from pumpops.validation._config import load_validation_config

REPORT_NAME = "validation-report.json"


def validate_model_command(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    candidate: Annotated[
        Path, typer.Option("--candidate", help="The candidate's model folder (from `pumpops train`).")
    ],
    champion: Annotated[
        Path | None,
        typer.Option("--champion", help="The champion's model folder (default: none, first of its group)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="validation.toml (default: documented defaults).")
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Held-out SKAB-format files (default: the simulator).")
    ] = None,
    simulate_seed: Annotated[
        int | None,
        typer.Option("--simulate-seed", help="Seed of the simulated held-out suite (default: from config)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help=f"Where to write the JSON report (default: CANDIDATE/{REPORT_NAME})."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the JSON report instead of the text.")
    ] = False,
) -> None:
    """Validate a candidate model folder: parity, champion vs challenger, behaviour, budgets."""
    if data is not None and simulate_seed is not None:
        raise ConfigError("give --data or --simulate-seed, not both")
    from pumpops.validation._measure import validate_model  # heavy (pipeline, scikit-learn): loads on use

    cfg = load_validation_config(config)
    report = validate_model(
        candidate,
        champion_dir=champion,
        config=cfg,
        data=data if data is not None else simulate_seed,
    )
    text = report.to_json()
    write_atomic(out or candidate / REPORT_NAME, text.encode())
    typer.echo(text if as_json else report.to_text(), nl=not as_json)
    if not report.passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``validate-model`` to the root command."""
    app.command("validate-model")(validate_model_command)
