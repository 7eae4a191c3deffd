"""Command-line command of honest model selection: ``pumpops tune``.

``pumpops tune --config pipeline.toml --split valve1->valve2`` searches the
config's detector settings (Optuna, seeded) on the split's training folders
only, scores the chosen setting on the test folder with SKAB's protocol, and
logs the search, the choice and the held-out result to the workspace's
tracking URI (one MLflow run per split, experiment ``<output.experiment>-tuning``).
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
    TrackingUriOption,
    TrialsOption,
    console,
    emit_rows,
    output_format,
    settings_from,
    space_names,
)
from pumpops.errors import ConfigError


def register(app: typer.Typer) -> None:
    """Add the ``tune`` command to the root ``pumpops`` command."""
    app.command("tune")(tune_cmd)


def tune_cmd(  # noqa: PLR0917 - Typer maps each option to a parameter
    ctx: typer.Context,
    config: Annotated[
        Path,
        typer.Option("--config", "-c", help="The pipeline file (file data in SKAB format).", dir_okay=False),
    ],
    split: Annotated[
        str,
        typer.Option(
            "--split",
            help="'folders' (each leave-one-folder-out split) or 'TRAIN[,TRAIN]->TEST[,TEST]' (folders).",
        ),
    ],
    trials: TrialsOption = 150,
    spaces: SpacesOption = DEFAULT_SPACES,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Sampler and detector seed (default: the config's).")
    ] = None,
    tracking_uri: TrackingUriOption = None,
    log: Annotated[bool, typer.Option("--log/--no-log", help="Log each split's search to MLflow.")] = True,
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
) -> None:
    """Choose detector settings on some SKAB folders and report them on another (held-out).

    The search never reads a test-folder file; the same seed gives the same
    trials and the same choice. Each split becomes one MLflow run with the
    search space, every trial, the chosen setting and the held-out F1 / FAR /
    MAR / NAB.
    """
    if not config.is_file():
        raise ConfigError(f"--config {config}: no such file")
    from pumpops.pipeline import load_config
    from pumpops.pipeline.skab import SkabRun, experiment_paths, group_of, load_experiment, score_experiment
    from pumpops.pipeline.tuning import log_search, normal_pieces, parse_split, search_split

    cfg = load_config(config)
    if cfg.data.source != "files":
        raise ConfigError(f'{config}: pumpops tune needs [data] source = "files" (SKAB-format folders)')
    dirs = [Path(p) for p in cfg.data.paths]
    for folder in dirs:
        if not folder.is_dir():
            raise ConfigError(f"{config}: data path {folder} is not a folder")
    kind = cfg.detector.kind
    use_seed = cfg.seed if seed is None else seed
    paths = experiment_paths(dirs)
    splits = parse_split(split, [group_of(r, p) for r, p in paths])
    normal = normal_pieces(dirs)
    settings = settings_from(ctx, tracking_uri=tracking_uri) if log else None
    rows = []
    for one in splits:
        search = search_split(
            paths, one, kind=kind, n_trials=trials, seed=use_seed, normal=normal, spaces=space_names(spaces)
        )
        test = [
            score_experiment(load_experiment(r, p), detector=kind, settings=search.chosen, seed=use_seed)
            for r, p in paths
            if group_of(r, p) in one.test
        ]
        run_id = ""
        if settings is not None:
            run_id = log_search(
                search,
                test,
                tracking_uri=settings.resolved_tracking_uri,
                workspace=settings.workspace,
                experiment=f"{cfg.output.experiment}-tuning",
            )
        m = SkabRun.summary(test)
        rows.append(
            {
                "split": one.name,
                "detector": kind,
                "seed": use_seed,
                "trials": trials,
                "heldout_f1": m["f1"],
                "heldout_far": m["far"],
                "heldout_mar": m["mar"],
                "heldout_nab_standard": m["nab_standard"],
                "heldout_mean_delay_s": m["mean_delay_s"],
                "train_objective": search.value,
                "chosen": json.dumps(search.chosen, sort_keys=True),
                "mlflow_run_id": run_id,
            }
        )
    fmt = output_format(output, as_json)
    if fmt is not OutputFormat.TABLE:
        emit_rows(rows, output=fmt)
        return
    for row in rows:
        console.print(
            f"{row['split']}: HELD-OUT F1 {row['heldout_f1']:.3f}, FAR {row['heldout_far']:.2f} %, "
            f"MAR {row['heldout_mar']:.2f} %, NAB standard {row['heldout_nab_standard']:.2f}, "
            f"mean delay {row['heldout_mean_delay_s']:.1f} s (train objective {row['train_objective']:.3f})"
        )
        console.print(f"  chosen on the training folders: {row['chosen']}")
        if row["mlflow_run_id"]:
            console.print(f"  MLflow run {row['mlflow_run_id']}")
