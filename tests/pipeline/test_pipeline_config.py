"""pipeline.toml validation: every bad key or value is a ConfigError that names it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pumpops.errors import ConfigError
from pumpops.pipeline import load_config, parse_config
from pumpops.pipeline._config import FilesData, StoreData

FILES = {"source": "files", "paths": ["data"]}
STORE = {
    "source": "store",
    "group": "acme-ansi",
    "since": "2025-06-01T00:00:00Z",
    "until": "2025-06-02T00:00:00Z",
}

BAD = [
    ("unknown top-level key", {"data": FILES, "colour": 1}, "colour: unknown key"),
    ("unknown data key", {"data": {**FILES, "rows": 1}}, "data.rows: unknown key"),
    ("unknown source", {"data": {"source": "kafka"}}, "data"),
    ("missing group", {"data": {**STORE, "group": None}}, "data.group"),
    ("until before since", {"data": {**STORE, "until": "2025-05-01T00:00:00Z"}}, "until must be after since"),
    ("naive time", {"data": {**STORE, "since": "2025-06-01T00:00:00"}}, "data.since"),
    ("unknown sensor", {"data": {**FILES, "sensors": ["rpm"]}}, "data.sensors"),
    ("negative margin", {"data": {**FILES, "hygiene": {"margin_s": -1}}}, "data.hygiene.margin_s"),
    ("bad category", {"data": {**FILES, "hygiene": {"exclude_categories": ["oops"]}}}, "exclude_categories"),
    ("zero period", {"data": FILES, "features": {"resample_period_s": 0}}, "features.resample_period_s"),
    (
        "baseline shorter than window",
        {"data": FILES, "features": {"window_samples": 30, "baseline_window_samples": 10}},
        "baseline_window_samples",
    ),
    ("owned hyper", {"data": FILES, "detector": {"hyper": {"alarm_k": 3}}}, "set smoothing.k"),
    ("bad kind", {"data": FILES, "detector": {"kind": "PCA!"}}, "detector.kind"),
    ("quantile above 1", {"data": FILES, "threshold": {"quantile": 1.5}}, "threshold.quantile"),
    ("k above n", {"data": FILES, "smoothing": {"k": 4, "n": 3}}, "k must be <= n"),
    ("half an eval range", {"data": FILES, "evaluation": {"since": "2025-06-01T00:00:00Z"}}, "evaluation"),
    ("negative seed", {"data": FILES, "seed": -1}, "seed"),
    ("unknown output key", {"data": FILES, "output": {"uri": "x"}}, "output.uri: unknown key"),
]


@pytest.mark.parametrize(("case", "data", "needle"), BAD, ids=[b[0] for b in BAD])
def test_config_invalid_names_the_key(case: str, data: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert needle in str(info.value), case


def test_config_defaults_fill_every_section() -> None:
    config = parse_config({"data": FILES})
    assert isinstance(config.data, FilesData)
    assert config.data.train_rows == 400
    assert config.detector.kind == "pca_t2q"
    assert config.smoothing.k == 1
    assert config.output.experiment == "pumpops-training"


def test_config_hash_changes_with_any_value() -> None:
    a = parse_config({"data": STORE})
    b = parse_config({"data": STORE, "seed": 1})
    assert isinstance(a.data, StoreData)
    assert a.config_hash != b.config_hash
    assert a.section_hash("detector") == b.section_hash("detector")


def test_config_file_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.toml"
    path.write_text(
        '[data]\nsource = "files"\npaths = ["skab"]\n[data.hygiene]\nground_truth = "truth.json"\n'
    )
    config = load_config(path)
    assert isinstance(config.data, FilesData)
    assert config.data.paths == (tmp_path / "skab",)
    assert config.data.hygiene.ground_truth == tmp_path / "truth.json"


def test_config_not_toml_is_config_error(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.toml"
    path.write_text("[data\n")
    with pytest.raises(ConfigError, match="cannot read pipeline config"):
        load_config(path)


def test_config_examples_are_valid() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    found = sorted(examples.glob("pipeline*.toml"))
    assert found
    for path in found:
        load_config(path)
