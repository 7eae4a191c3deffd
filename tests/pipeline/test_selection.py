"""Choosing a search space by an inner split of the training side: folds, a known winner, seeds, wiring."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pumpops.errors import ConfigError
from pumpops.pipeline._selection import choose_space, deal
from pumpops.pipeline.skab import Experiment, experiment_paths, group_of, load_experiment
from pumpops.pipeline.tuning import (
    CANDIDATE_SPACES,
    SEARCH_SPACES,
    Split,
    normal_pieces,
    search_split,
    suggest,
)

HEADER = (
    "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;Thermocouple;"
    "Voltage;Volume Flow RateRMS"
)
# threshold 1e5 x (q + 100): never reached, never alarms
DEAF = {"window": ("cat", (5,)), "threshold_factor": ("cat", (1e5,)), "score_offset": ("cat", (100.0,))}
KEEN = {"window": ("cat", (5,)), "threshold_factor": ("cat", (2.0,)), "alarm_n": ("cat", (3,))}


@pytest.fixture
def folders(tmp_path: Path, write_skab: Callable[..., list[str]]) -> Path:
    root = tmp_path / "skab"
    for i in range(4):
        write_skab(root / "valveA" / f"{i}.csv", i)
    write_skab(root / "valveB" / "0.csv", 10)
    write_skab(root / "anomaly-free" / "anomaly-free.csv", 30, rows=2400, labelled=False)
    return root


def _labelled(root: Path, group: str) -> list[Experiment]:
    return [load_experiment(r, p) for r, p in experiment_paths([root]) if group_of(r, p) == group]


def test_deal_is_fixed_and_round_robin() -> None:
    assert deal(list(range(7)), 3) == [[0, 3, 6], [1, 4], [2, 5]]
    with pytest.raises(ConfigError, match="one experiment per fold"):
        deal([1], 2)
    with pytest.raises(ConfigError, match="at least 2 folds"):
        deal([1, 2, 3], 1)


@pytest.mark.parametrize("order", [("deaf", "keen"), ("keen", "deaf")])
def test_the_space_that_detects_the_fault_wins_the_inner_split(folders: Path, order: tuple[str, str]) -> None:
    spaces = {"deaf": DEAF, "keen": KEEN}
    candidates = {name: spaces[name] for name in order}
    normal = normal_pieces([folders], rows=1000)
    winner, results = choose_space(
        candidates, _labelled(folders, "valveA"), normal, kind="pca_t2q", n_trials=2
    )
    assert winner == "keen"
    by_name = {r.name: r for r in results}
    assert [r.name for r in results] == list(order)
    assert by_name["deaf"].summary["f1"] == 0.0  # no alarm on any inner test file
    assert by_name["keen"].summary["f1"] > 0.5
    assert by_name["keen"].summary["files"] == 4  # every training file scored once, by the other fold
    assert len(by_name["keen"].chosen) == 2  # one search per fold


def test_same_seed_same_choice_and_ties_go_to_the_first(folders: Path) -> None:
    labelled = _labelled(folders, "valveA")
    candidates = {"one": KEEN, "same": dict(KEEN)}
    a = choose_space(candidates, labelled, kind="pca_t2q", n_trials=3, seed=4)
    b = choose_space(candidates, labelled, kind="pca_t2q", n_trials=3, seed=4)
    assert a == b
    assert a[0] == "one"  # identical spaces tie: the first listed wins
    with pytest.raises(ConfigError, match="at least one candidate"):
        choose_space({}, labelled, kind="pca_t2q")


def test_search_split_records_the_space_it_chose_without_the_test_folder(folders: Path) -> None:
    paths = experiment_paths([folders])
    read: list[str] = []

    def spy(root: Path, path: Path) -> Experiment:
        read.append(group_of(root, path))
        return load_experiment(root, path)

    split = Split(("valveA",), ("valveB",))
    search = search_split(paths, split, n_trials=2, seed=1, loader=spy, spaces=("base", "flow_floor"))
    assert "valveB" not in read
    assert search.space_name in {"base", "flow_floor"}
    assert [r["space"] for r in search.inner] == ["base", "flow_floor"]
    assert search.space == CANDIDATE_SPACES["pca_t2q"][search.space_name]
    single = search_split(paths, split, n_trials=2, seed=1, spaces=("flow_window",))
    assert single.space_name == "flow_window"
    assert single.inner == []
    assert "window_by_kind" in single.chosen or all(
        t["setting"].get("window_by_kind") is None for t in single.trials
    )
    with pytest.raises(ConfigError, match="unknown search space"):
        search_split(paths, split, n_trials=1, spaces=("nope",))


def test_candidate_spaces_extend_the_default_and_map_to_detector_options() -> None:
    import optuna

    for name, space in CANDIDATE_SPACES["pca_t2q"].items():
        assert set(SEARCH_SPACES["pca_t2q"]) <= set(space), name
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    trial = study.ask()
    setting = suggest(trial, CANDIDATE_SPACES["pca_t2q"]["flow_both"])
    assert "window_flow" not in setting
    assert "scale_floor_flow" not in setting
    assert setting["scale_floors"] == {"flow": trial.params["scale_floor_flow"]}
    if trial.params["window_flow"]:
        assert setting["window_by_kind"] == {"flow": trial.params["window_flow"]}
    else:
        assert "window_by_kind" not in setting


def test_the_commands_default_to_the_same_candidates() -> None:
    from pumpops.cli._support import DEFAULT_SPACES
    from pumpops.pipeline.tuning import DEFAULT_CANDIDATES

    assert ",".join(DEFAULT_CANDIDATES) == DEFAULT_SPACES
    assert set(DEFAULT_CANDIDATES) <= set(CANDIDATE_SPACES["pca_t2q"])
