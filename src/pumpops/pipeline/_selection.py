"""Choosing between search spaces (detector families, option sets) inside a split's training side only.

A held-out split answers "how good is the setting the search chose"; it must
not also decide *which search* to run, or the test folder leaks back in
through that choice. :func:`choose_space` decides it with an inner split of
the training side: the training experiments (and the anomaly-free pieces)
are dealt into ``folds`` folds in a fixed order; for every candidate space
and every fold, the search runs on the other folds and its chosen setting
scores the fold. The candidate whose pooled inner result has the best
objective (:func:`pumpops.pipeline.tuning.objective`) wins; ties go to the
earlier candidate (list the simplest first). The outer test folder is never
read here.

May import: ``pumpops.pipeline.tuning``, ``pumpops.pipeline.skab``, numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pumpops.errors import ConfigError
from pumpops.pipeline.skab import Experiment, FileResult, SkabRun, score_experiment
from pumpops.pipeline.tuning import objective, run_trials

__all__ = ["InnerResult", "choose_space", "deal"]

T = TypeVar("T")


def deal(items: Sequence[T], folds: int) -> list[list[T]]:
    """Deal ``items`` into ``folds`` folds in order, like cards (fold ``i`` gets items ``i, i+folds, ...``).

    >>> deal(["a", "b", "c", "d", "e"], 2)
    [['a', 'c', 'e'], ['b', 'd']]

    Raises:
        ConfigError: fewer than 2 folds, or fewer items than folds.
    """
    if folds < 2 or len(items) < folds:
        raise ConfigError(
            f"an inner split needs at least 2 folds and one experiment per fold: {folds}, {len(items)}"
        )
    return [list(items[i::folds]) for i in range(folds)]


@dataclass(frozen=True)
class InnerResult:
    """One candidate space's inner-split result (every training experiment scored once, by a fold search)."""

    name: str
    value: float
    summary: dict[str, float]
    normal_far: float | None
    chosen: tuple[dict[str, Any], ...]


def _score(exp: Experiment, kind: str, setting: Mapping[str, Any], seed: int) -> FileResult:
    return score_experiment(exp, detector=kind, settings=setting, seed=seed, engine="numpy")


def _inner(
    name: str,
    space: Mapping[str, tuple[Any, ...]],
    labelled: Sequence[Experiment],
    normal: Sequence[Experiment],
    *,
    kind: str,
    folds: int,
    n_trials: int,
    seed: int,
) -> InnerResult:
    lab_folds = deal(labelled, folds)
    norm_folds = deal(normal, folds) if len(normal) >= folds else [[] for _ in range(folds)]
    tested, fp, tn, chosen = [], 0, 0, []
    for i in range(folds):
        train = [e for j, f in enumerate(lab_folds) if j != i for e in f]
        train_normal = [e for j, f in enumerate(norm_folds) if j != i for e in f]
        _, best = run_trials(train, train_normal, kind=kind, space=space, n_trials=n_trials, seed=seed)
        setting = dict(best["setting"])
        chosen.append(setting)
        tested += [_score(e, kind, setting, seed) for e in lab_folds[i]]
        for r in (_score(e, kind, setting, seed) for e in norm_folds[i]):
            fp, tn = fp + r.counts.fp, tn + r.counts.tn
    summary = SkabRun.summary(tested)
    normal_far = 100.0 * fp / (fp + tn) if fp + tn else None
    return InnerResult(name, objective(summary, normal_far), summary, normal_far, tuple(chosen))


def choose_space(
    candidates: Mapping[str, Mapping[str, tuple[Any, ...]]],
    labelled: Sequence[Experiment],
    normal: Sequence[Experiment] = (),
    *,
    kind: str,
    folds: int = 2,
    n_trials: int = 100,
    seed: int = 0,
) -> tuple[str, list[InnerResult]]:
    """The candidate space with the best inner-split objective on these (training-side) experiments.

    Returns:
        The winner's name and every candidate's inner result, in the given order.

    Raises:
        ConfigError: no candidate, or too few experiments for ``folds``.
    """
    if not candidates:
        raise ConfigError("choose_space needs at least one candidate search space")
    results = [
        _inner(name, space, labelled, normal, kind=kind, folds=folds, n_trials=n_trials, seed=seed)
        for name, space in candidates.items()
    ]
    best = max(range(len(results)), key=lambda i: (results[i].value, -i))
    return results[best].name, results
