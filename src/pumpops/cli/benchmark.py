"""Command-line commands of the benchmarks: ``pumpops benchmark skab``.

It logs nothing to MLflow (``pumpops tune`` does): predictions go to ``--out``, the
summary to stdout (``--output table|json|csv``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pumpops.cli._support import (
    DEFAULT_SPACES,
    JsonFlag,
    OutputFormat,
    OutputOption,
    SpacesOption,
    TrialsOption,
    console,
    emit_rows,
    output_format,
    space_names,
)
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
        typer.Option(
            "--params", help="JSON object of hyper-parameters replacing the fixed setting (secondary line)."
        ),
    ] = None,
    split: Annotated[
        str,
        typer.Option(
            "--split",
            help="'folders' (leave-one-folder-out, default) or 'TRAIN[,TRAIN]->TEST[,TEST]' (folder names).",
        ),
    ] = "folders",
    trials: TrialsOption = 150,
    engine: Annotated[str, typer.Option("--engine", help="'onnx' (exported model) or 'numpy'.")] = "onnx",
    spaces: SpacesOption = DEFAULT_SPACES,
    seed: Annotated[int, typer.Option("--seed", help="Search and detector seed.")] = 0,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Run SKAB's protocol held-out: choose the setting on some folders, report it on another.

    Per split (default: leave-one-folder-out), the detector's settings are
    searched (Optuna, seeded) on the training folders' experiments only, then
    the chosen setting is scored on the test folder (fit on each file's first
    400 rows, score the rest): point-wise F1 / FAR / MAR and the NAB score
    (60 s windows right of each true changepoint). The held-out lines come
    first; the fixed benchmark setting on all files follows, labelled as
    chosen on those files. --output json|csv prints one row per line instead.
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
        experiment_paths,
        group_of,
        leaderboard_table,
        run_skab,
    )
    from pumpops.pipeline.tuning import held_out, held_out_table, parse_split

    settings = None
    if params is not None:
        try:
            settings = json.loads(params)
        except ValueError as exc:
            raise ConfigError(f"--params is not JSON: {exc}") from exc
        if not isinstance(settings, dict):
            raise ConfigError("--params must be a JSON object")
    kind = detector or DEFAULT_DETECTOR
    groups = [group_of(r, p) for r, p in experiment_paths(data)]
    splits = parse_split(split, groups)
    run = held_out(
        data,
        splits=splits,
        kind=kind,
        n_trials=trials,
        seed=seed,
        engine=engine,
        out=out / "held-out",
        spaces=space_names(spaces),
    )
    fixed = run_skab(data, out=out / "fixed", detector=kind, settings=settings, seed=seed, engine=engine)
    fmt = output_format(output, as_json)
    if fmt is not OutputFormat.TABLE:
        base = {"detector": kind, "engine": engine}
        rows = [
            {
                "folder": "+".join(s.split.test),
                **base,
                "split": s.split.name,
                "held_out": True,
                **SkabRun.summary(files),
                "space": s.space_name,
                "setting": json.dumps(s.chosen, sort_keys=True),
            }
            for s, files in zip(run.searches, run.tests, strict=True)
        ]
        rows.append(
            {
                "folder": "overall",
                **base,
                "split": "pooled",
                "held_out": True,
                **SkabRun.summary(run.test_files),
                "space": "",
                "setting": "",
            }
        )
        rows.append(
            {
                "folder": "all-files-fixed",
                **base,
                "split": "none",
                "held_out": False,
                **SkabRun.summary(fixed.files),
                "space": "",
                "setting": json.dumps(fixed.settings, sort_keys=True),
            }
        )
        emit_rows(rows, output=fmt)
        return
    console.print(
        f"SKAB, detector {kind}, held-out protocol ({len(run.searches)} split(s), {trials} trials "
        f"each, seed {seed}), engine {engine}"
    )
    console.print(Markdown(held_out_table(run, fixed)))
    for s in run.searches:
        console.print(f"chosen on {'+'.join(s.split.train)}: {json.dumps(s.chosen, sort_keys=True)}")
        for r in s.inner:
            console.print(
                f"  inner split of {'+'.join(s.split.train)}, space {r['space']}: "
                f"objective {r['value']:.3f}, "
                f"F1 {r['f1']:.3f}, FAR {r['far']:.2f} %, NAB {r['nab_standard']:.2f}, anomaly-free FAR "
                f"{r['normal_far'] if r['normal_far'] is None else round(r['normal_far'], 2)} %"
                + ("  <- chosen" if r["space"] == s.space_name else "")
            )
    console.print(f"fixed setting (chosen on these files): {json.dumps(fixed.settings, sort_keys=True)}")
    console.print(Markdown(leaderboard_table()))
    parity = max(SkabRun.summary(run.test_files)["onnx_parity"], SkabRun.summary(fixed.files)["onnx_parity"])
    console.print(
        f"Held-out lines: each test file scored by a setting chosen without any file of its folder. "
        f"The published figures are over all 34 upstream experiments. "
        f"ONNX vs numpy max |score diff| {parity:.1e}. Predictions in {out}/held-out and {out}/fixed. "
        f"{run.seconds + fixed.seconds:.1f} s."
    )
