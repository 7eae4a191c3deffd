"""``pumpops validate-model``: run every validation gate on a model folder and write the report.

The folder-based command; ``pumpops validate <name>/<version>`` (the
registry's) resolves a registered version to folders and calls
:func:`pumpops.validation.validate_model` the same way. Exit code 0 when the
candidate passes, 1 when a gate fails (after the report is printed and
written); bad input raises a :mod:`pumpops.errors` error, which
``pumpops.cli.main`` maps to its exit code.

Arguments are checked (folders exist, files exist) before the measurement
layer (scikit-learn, onnxruntime, the simulator) is imported.

May import: typer, ``pumpops.cli._support``, this package, errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pumpops.cli._support import (
    ExitCode,
    JsonFlag,
    OutputFormat,
    OutputOption,
    console,
    emit_rows,
    err_console,
    output_format,
)
from pumpops.errors import ConfigError

if TYPE_CHECKING:
    from pumpops.validation import ValidationReport

REPORT_NAME = "validation-report.json"


def check_folder(path: Path | None, option: str) -> None:
    """A folder given on the command line must exist (a usage error, exit code 2)."""
    if path is not None and not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise ConfigError(f"{option} {path}: {what}")


def check_file(path: Path | None, option: str) -> None:
    """A file given on the command line must exist (a usage error, exit code 2)."""
    if path is not None and not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise ConfigError(f"{option} {path}: {what}")


def print_report(report: ValidationReport, output: OutputFormat) -> None:
    """The report as text (table), its JSON document, or one CSV row a gate."""
    if output is OutputFormat.JSON:
        typer.echo(report.to_json(), nl=False)
        return
    if output is OutputFormat.CSV:
        rows = [{"gate": g.name, "status": g.status, "reasons": "; ".join(g.reasons)} for g in report.gates]
        emit_rows(rows, output=output, columns=("gate", "status", "reasons"))
        return
    console.print(report.to_text(), highlight=False, markup=False)


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
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Validate a candidate model folder: parity, champion vs challenger, behaviour, budgets."""
    if data is not None and simulate_seed is not None:
        raise ConfigError("give --data or --simulate-seed, not both")
    check_folder(candidate, "--candidate")
    check_folder(champion, "--champion")
    check_folder(data, "--data")
    check_file(config, "--config")
    from pumpops._atomic import write_atomic
    from pumpops.validation import load_validation_config, validate_model

    cfg = load_validation_config(config)
    with err_console.status("validating: parity, champion, behaviour, budgets"):
        report = validate_model(
            candidate,
            champion_dir=champion,
            config=cfg,
            data=data if data is not None else simulate_seed,
        )
    write_atomic(out or candidate / REPORT_NAME, report.to_json().encode())
    print_report(report, output_format(output, as_json))
    if not report.passed:
        raise typer.Exit(ExitCode.FAILED)


def register(app: typer.Typer) -> None:
    """Add ``validate-model`` to the root command."""
    app.command("validate-model")(validate_model_command)
