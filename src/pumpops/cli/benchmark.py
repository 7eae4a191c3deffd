"""Command-line commands of the benchmarks: ``pumpops benchmark skab``.

It logs nothing to MLflow (no tracking URI): predictions go to ``--out``, the
summary to stdout (``--output table|json|csv``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pumpops.cli._support import JsonFlag, OutputFormat, OutputOption, console, emit_rows, output_format
from pumpops.errors import ConfigError

benchmark_app = typer.Typer(
    name="benchmark",
    help="Public benchmarks: SKAB with its published protocol.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``benchmark`` commands to the root ``pumpops`` command."""
    app.add_typer(benchmark_app, name="benchmark")


@benchmark_app.command("skab")
def skab_cmd(  # noqa: PLR0917 - Typer maps each option to a parameter
    data: Annotated[
        list[Path],
        typer.Option(
            "--data", help="A SKAB folder; repeatable. Every labelled *.csv below it is an experiment."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for the predictions (OUT/<relative path>.csv).")],
    detector: Annotated[
        str | None, typer.Option("--detector", help="Detector kind (default: the benchmark's default).")
    ] = None,
    params: Annotated[
        str | None,
        typer.Option("--params", help="JSON object of hyper-parameters replacing the benchmark's setting."),
    ] = None,
    engine: Annotated[str, typer.Option("--engine", help="'onnx' (exported model) or 'numpy'.")] = "onnx",
    seed: Annotated[int, typer.Option("--seed", help="Detector seed.")] = 0,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Run SKAB's protocol: fit on each experiment's first 400 rows, score the rest, print the table.

    Point-wise F1 / FAR / MAR pooled over all test rows and the NAB changepoint
    score (60 s windows right of each true changepoint), per subfolder and
    overall, beside the published leaderboard. --output json|csv prints one row
    per subfolder and one for all of them (folder "overall") instead.
    """
    for folder in data:
        if not folder.is_dir():
            raise ConfigError(f"--data {folder}: no such folder")
    if engine not in ("onnx", "numpy"):
        raise ConfigError(f"--engine must be 'onnx' or 'numpy', not {engine!r}")
    from rich.markdown import Markdown

    from pumpops.pipeline.skab import (
        DEFAULT_DETECTOR,
        SkabRun,
        leaderboard_table,
        markdown_table,
        run_skab,
    )

    settings = None
    if params is not None:
        try:
            settings = json.loads(params)
        except ValueError as exc:
            raise ConfigError(f"--params is not JSON: {exc}") from exc
        if not isinstance(settings, dict):
            raise ConfigError("--params must be a JSON object")
    kind = detector or DEFAULT_DETECTOR
    run = run_skab(data, out=out, detector=kind, settings=settings, seed=seed, engine=engine)
    overall = SkabRun.summary(run.files)
    fmt = output_format(output, as_json)
    if fmt is not OutputFormat.TABLE:
        rows = [
            {"folder": name, "detector": kind, "engine": engine, **SkabRun.summary(files)}
            for name, files in [*run.groups().items(), ("overall", run.files)]
        ]
        emit_rows(rows, output=fmt)
        return
    console.print(f"SKAB, detector {kind} {json.dumps(run.settings, sort_keys=True)}, engine {engine}")
    console.print(Markdown(markdown_table(run)))
    console.print(Markdown(leaderboard_table()))
    console.print(
        f"This copy has {overall['files']} experiments; the published figures are over all 34 upstream ones. "
        f"ONNX vs numpy max |score diff| {overall['onnx_parity']:.1e}. Predicted changepoints: edges of "
        f"the alarm before its off-delay ({run.settings.get('alarm_hold', 0)} rows). Predictions in {out}. "
        f"{run.seconds:.1f} s."
    )
