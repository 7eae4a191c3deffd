"""Honest model selection: splits, a search that never reads test rows, seeds, MLflow, the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pumpops.errors import ConfigError, NotFoundError
from pumpops.pipeline.skab import BENCHMARK_SETTINGS, Experiment, experiment_paths, group_of, load_experiment
from pumpops.pipeline.tuning import (
    SEARCH_SPACES,
    Split,
    folder_splits,
    held_out,
    log_search,
    normal_pieces,
    objective,
    parse_split,
    search_split,
)

HEADER = (
    "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;Thermocouple;"
    "Voltage;Volume Flow RateRMS"
)
SMALL_SPACE = {
    "window": ("int", 3, 15),
    "threshold_factor": ("log", 1.0, 4.0),
    "alarm_n": ("cat", (1, 5)),
    "alarm_k_frac": ("float", 0.2, 1.0),
    "scale_floor": ("cat", (0.0, 0.003)),
}


@pytest.fixture
def folders(tmp_path: Path, write_skab: Callable[..., list[str]]) -> Path:
    root = tmp_path / "skab"
    for i in range(3):
        write_skab(root / "valveA" / f"{i}.csv", i)
    for i in range(2):
        write_skab(root / "valveB" / f"{i}.csv", 10 + i, drop=8.0)
    write_skab(root / "leak" / "0.csv", 20)
    free = root / "anomaly-free" / "anomaly-free.csv"
    write_skab(free, 30, rows=2400, labelled=False, unlabelled_flow="flat")
    return root


def test_folder_splits_leave_each_folder_out_once_and_never_overlap() -> None:
    splits = folder_splits(["valveB", "valveA", "leak", "valveA"])
    assert [s.test for s in splits] == [("leak",), ("valveA",), ("valveB",)]
    for s in splits:
        assert not set(s.train) & set(s.test)
        assert set(s.train) | set(s.test) == {"leak", "valveA", "valveB"}


def test_a_split_with_a_folder_on_both_sides_is_refused() -> None:
    with pytest.raises(ConfigError, match="both the training and the test side"):
        Split(("valve1", "valve2"), ("valve2",))
    with pytest.raises(ConfigError, match="at least one training and one test folder"):
        Split((), ("valve2",))
    with pytest.raises(ConfigError, match="at least two experiment folders"):
        folder_splits(["valve1"])


def test_parse_split_checks_syntax_and_folders() -> None:
    groups = ["valve1", "valve2", "other"]
    assert parse_split("valve1,other->valve2", groups) == [Split(("valve1", "other"), ("valve2",))]
    assert len(parse_split("folders", groups)) == 3
    with pytest.raises(ConfigError, match="TRAIN"):
        parse_split("valve1:valve2", groups)
    with pytest.raises(ConfigError, match="no experiments in folder"):
        parse_split("valve1->valve9", groups)
    with pytest.raises(ConfigError, match="both"):
        parse_split("valve1,valve2->valve2", groups)


def test_objective_charges_false_alarms_above_the_margin() -> None:
    good = {"f1": 0.9, "far": 5.0, "nab_standard": 40.0}
    noisy = {"f1": 0.9, "far": 15.0, "nab_standard": 40.0}
    assert objective(good, None) == pytest.approx(1.1)
    assert objective(noisy, None) == pytest.approx(1.1 - 0.03 * 5)  # 5 points above the 10 % budget
    assert objective(good, 20.0) == pytest.approx(1.1 - 0.03 * 10)


def test_normal_pieces_cut_only_unlabelled_recordings(folders: Path) -> None:
    pieces = normal_pieces([folders], rows=1000)
    assert len(pieces) == 2  # 2,400 rows -> two whole pieces of 1,000
    assert all(p.group == "anomaly-free" and not p.anomaly.any() for p in pieces)
    assert pieces[0].X.shape == (1000, 8)


def test_search_never_reads_a_test_file(folders: Path) -> None:
    paths = experiment_paths([folders])
    read: list[str] = []
    split = Split(("valveA", "leak"), ("valveB",))

    def spy(root: Path, path: Path) -> Experiment:
        group = group_of(root, path)
        if group in split.test:
            raise AssertionError(f"the search read test file {path}")
        read.append(group)
        return load_experiment(root, path)

    search = search_split(paths, split, n_trials=4, seed=1, loader=spy, space=SMALL_SPACE)
    assert sorted(set(read)) == ["leak", "valveA"]
    assert len(read) == 4  # each training file once, not once per trial
    assert all(not f.startswith("valveB/") for f in search.train_files)
    assert len(search.trials) == 4


def test_held_out_scores_every_file_once_with_a_setting_chosen_without_its_folder(folders: Path) -> None:
    order: list[tuple[str, str]] = []

    def spy(root: Path, path: Path) -> Experiment:
        order.append((group_of(root, path), path.name))
        return load_experiment(root, path)

    run = held_out([folders], n_trials=3, seed=0, engine="onnx", loader=spy, use_normal=False)
    tested = sorted(f.relative.as_posix() for f in run.test_files)
    assert tested == sorted(p.relative_to(r).as_posix() for r, p in experiment_paths([folders]))
    for search, files in zip(run.searches, run.tests, strict=True):
        assert {f.group for f in files} == set(search.split.test)
        assert not {f.split("/")[0] for f in search.train_files} & set(search.split.test)
        assert max(f.onnx_parity for f in files) <= 1e-6
    # per split: the training files are read (search) before any test file
    first_split = run.searches[0].split
    n_train = len(run.searches[0].train_files)
    assert all(g in first_split.train for g, _ in order[:n_train])
    assert all(g in first_split.test for g, _ in order[n_train : n_train + len(run.tests[0])])


def test_same_seed_same_search_other_seed_other_trials(folders: Path) -> None:
    paths = experiment_paths([folders])
    split = Split(("valveA",), ("valveB",))
    normal = normal_pieces([folders], rows=1000)
    a = search_split(paths, split, n_trials=6, seed=7, normal=normal)
    b = search_split(paths, split, n_trials=6, seed=7, normal=normal)
    c = search_split(paths, split, n_trials=6, seed=8, normal=normal)
    assert [t["setting"] for t in a.trials] == [t["setting"] for t in b.trials]
    assert [t["value"] for t in a.trials] == [t["value"] for t in b.trials]
    assert a.chosen == b.chosen
    assert [t["setting"] for t in a.trials[1:]] != [t["setting"] for t in c.trials[1:]]
    # no trial starts from the benchmark's fixed setting (chosen on every folder, test ones included)
    fixed = BENCHMARK_SETTINGS["pca_t2q"]["threshold_factor"]
    assert all(t["setting"]["threshold_factor"] != fixed for t in a.trials)


def test_search_errors(folders: Path) -> None:
    paths = experiment_paths([folders])
    with pytest.raises(ConfigError, match="no search space"):
        search_split(paths, Split(("valveA",), ("valveB",)), kind="isolation_forest", n_trials=1)
    with pytest.raises(NotFoundError):
        search_split(paths, Split(("nowhere",), ("valveB",)), n_trials=1, space=SMALL_SPACE)
    with pytest.raises(ConfigError, match="unknown spec"):
        search_split(paths, Split(("valveA",), ("valveB",)), n_trials=1, space={"window": ("beta", 1, 2)})
    assert "pca_t2q" in SEARCH_SPACES


def test_log_search_records_space_trials_choice_and_held_out_result(folders: Path, tracking_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    from pumpops.pipeline import mlflow_quiet
    from pumpops.pipeline.skab import score_experiment

    paths = experiment_paths([folders])
    split = Split(("valveA",), ("valveB",))
    search = search_split(paths, split, n_trials=3, seed=0, space=SMALL_SPACE)
    test = [
        score_experiment(load_experiment(r, p), settings=search.chosen, engine="numpy")
        for r, p in paths
        if group_of(r, p) == "valveB"
    ]
    run_id = log_search(
        search, test, tracking_uri=tracking_uri, workspace=folders.parent, experiment="tune-test"
    )
    with mlflow_quiet():
        client = MlflowClient(tracking_uri)
        run = client.get_run(run_id)
        local = client.download_artifacts(run_id, "tuning/search.json", str(folders.parent / "dl"))
    assert run.data.params["split"] == "valveA->valveB"
    assert run.data.params["seed"] == "0"
    assert "heldout_f1" in run.data.metrics
    assert "train_objective" in run.data.metrics
    assert run.data.tags["pumpops.run_kind"] == "tuning"
    record = json.loads(Path(local).read_text())
    assert record["test_files"] == ["valveB/0.csv", "valveB/1.csv"]
    assert len(record["trials"]) == 3
    assert record["chosen"] == search.chosen


def _app() -> typer.Typer:
    from pumpops.cli.tune import register

    app = typer.Typer()

    @app.callback()
    def _root(ctx: typer.Context) -> None:
        """Test root."""
        ctx.obj = {"workspace": None}

    register(app)
    return app


def test_tune_command_prints_held_out_result(folders: Path, tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    config.write_text(
        f'seed = 3\n[data]\nsource = "files"\npaths = ["{folders}"]\n[detector]\nkind = "pca_t2q"\n'
    )
    args = ["tune", "--config", str(config), "--split", "valveA->valveB", "--trials", "2", "--no-log"]
    result = CliRunner().invoke(_app(), [*args, "--output", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["split"] for r in rows] == ["valveA->valveB"]
    assert rows[0]["seed"] == 3
    assert rows[0]["mlflow_run_id"] == ""
    again = CliRunner().invoke(_app(), [*args, "--output", "json"])
    assert json.loads(again.stdout) == rows  # same seed, same result
    table = CliRunner().invoke(_app(), args)
    assert "HELD-OUT F1" in table.output


def test_tune_command_bad_input_is_explained(folders: Path, tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    config.write_text(f'[data]\nsource = "files"\npaths = ["{folders}"]\n')
    missing = CliRunner().invoke(
        _app(), ["tune", "--config", str(tmp_path / "no.toml"), "--split", "folders"]
    )
    assert isinstance(missing.exception, ConfigError)
    bad = CliRunner().invoke(
        _app(), ["tune", "--config", str(config), "--split", "valveA->nowhere", "--no-log"]
    )
    assert isinstance(bad.exception, ConfigError)
    assert "no experiments in folder(s) ['nowhere']" in str(bad.exception)


def test_tune_refuses_a_store_config(tmp_path: Path) -> None:
    config = tmp_path / "store.toml"
    config.write_text(
        '[data]\nsource = "store"\ngroup = "g"\n'
        'since = "2025-06-01T00:00:00Z"\nuntil = "2025-06-02T00:00:00Z"\n'
    )
    result = CliRunner().invoke(_app(), ["tune", "--config", str(config), "--split", "folders", "--no-log"])
    assert isinstance(result.exception, ConfigError)
    assert 'source = "files"' in str(result.exception)


def test_tune_command_logs_each_split_to_the_workspace_tracking_uri(folders: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from pumpops.cli._root import app
    from pumpops.pipeline import mlflow_quiet

    ws = tmp_path / "ws"
    assert CliRunner().invoke(app, ["init", str(ws)]).exit_code == 0
    config = tmp_path / "p.toml"
    config.write_text(f'[data]\nsource = "files"\npaths = ["{folders}"]\n[output]\nexperiment = "tune-ws"\n')
    result = CliRunner().invoke(
        app,
        ["-w", str(ws), "tune", "--config", str(config), "--split", "folders", "--trials", "2", "--json"],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert sorted(r["split"] for r in rows) == [
        "leak+valveA->valveB",
        "leak+valveB->valveA",
        "valveA+valveB->leak",
    ]
    with mlflow_quiet():
        client = MlflowClient(f"sqlite:///{ws / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("tune-ws-tuning")
        assert experiment is not None
        runs = client.search_runs([experiment.experiment_id])
    assert {r.info.run_id for r in runs} == {r["mlflow_run_id"] for r in rows}
    assert {r.data.params["split"] for r in runs} == {r["split"] for r in rows}
