"""Champion vs challenger only on data neither was fitted on: the check before validation measures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pumpops.errors import ConfigError
from pumpops.validation._run import SCORED_FROM_ROW, fitted_on_scored_rows, validate_candidate


def _model(folder: Path, data: dict[str, Any]) -> Path:
    folder.mkdir(parents=True)
    (folder / "pipeline.json").write_text(json.dumps({"data": data}))
    return folder


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    train = tmp_path / "train" / "valve1"
    train.mkdir(parents=True)
    (train / "0.csv").write_text("datetime;x;anomaly\n2020-01-01 00:00:00;1;0\n")
    (train / "1.csv").write_text("datetime;x;anomaly\n2020-01-01 00:00:00;2;0\n")
    held = tmp_path / "held"
    held.mkdir()
    shutil.copyfile(train / "1.csv", held / "renamed.csv")  # same bytes, another name
    (held / "new.csv").write_text("datetime;x;anomaly\n2020-01-01 00:00:00;3;0\n")
    return tmp_path / "train", held


def test_a_copy_of_a_fully_fitted_training_file_is_found_by_content(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    train, held = files
    model = _model(tmp_path / "m", {"source": "files", "paths": [str(train)], "train_rows": 0})
    assert fitted_on_scored_rows(model, held) == [str(held / "renamed.csv")]


def test_rows_validation_leaves_out_are_not_a_problem(files: tuple[Path, Path], tmp_path: Path) -> None:
    train, held = files
    same_protocol = _model(
        tmp_path / "a", {"source": "files", "paths": [str(train)], "train_rows": SCORED_FROM_ROW}
    )
    assert fitted_on_scored_rows(same_protocol, held) == []
    more_rows = _model(tmp_path / "b", {"source": "files", "paths": [str(train)], "train_rows": 600})
    assert fitted_on_scored_rows(more_rows, held) == [str(held / "renamed.csv")]
    store = _model(tmp_path / "c", {"source": "store", "group": "g"})
    assert fitted_on_scored_rows(store, held) == []
    assert fitted_on_scored_rows(tmp_path / "no-model", held) == []


class _Registry:
    def __init__(self, folders: dict[str, Path]) -> None:
        self.folders = folders
        self.stored: list[Any] = []

    def champion(self, group: str) -> Any | None:
        return None

    def download_model(self, info: Any, dest: Path) -> Path:
        shutil.copytree(self.folders[info.ref], dest)
        return dest

    def store_validation(
        self, info: Any, *, passed: bool, report_json: str, against: Any | None, actor: str
    ) -> Any:
        self.stored.append(info)
        return info


def test_validation_refuses_data_the_champion_was_fitted_on(files: tuple[Path, Path], tmp_path: Path) -> None:
    train, held = files
    fresh = _model(
        tmp_path / "cand", {"source": "files", "paths": [str(tmp_path / "elsewhere")], "train_rows": 0}
    )
    champ = _model(tmp_path / "champ", {"source": "files", "paths": [str(train)], "train_rows": 0})
    registry = _Registry({"cand": fresh, "champ": champ})
    with pytest.raises(ConfigError, match="the champion was fitted on the rows validation would score"):
        validate_candidate(
            registry,
            SimpleNamespace(ref="cand"),
            champion=SimpleNamespace(ref="champ"),
            actor="test",
            data=held,
        )
    assert registry.stored == []  # nothing stored: no report on unfair data
