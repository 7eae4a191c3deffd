"""The SKAB runner and ``pumpops benchmark skab``: files found, protocol, prediction format, targets."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pumpops.cli.benchmark import register
from pumpops.errors import ConfigError, NotFoundError
from pumpops.pipeline.skab import (
    BENCHMARK_SETTINGS,
    DEFAULT_DETECTOR,
    TRAIN_ROWS,
    SkabRun,
    alarm_changepoints,
    benchmark_settings,
    run_skab,
)


def _write_experiment(
    write_skab: Callable[..., list[str]], path: Path, seed: int, rows: int = 520, labelled: bool = True
) -> list[str]:
    """A short experiment: CRLF lines, a 30 s gap in its clock after row 450, a fault at rows 460-500."""
    start = datetime(2020, 3, 9, 10, 0, 0)
    stamps = [
        (start + timedelta(seconds=i + (30 if i > 450 else 0))).strftime("%Y-%m-%d %H:%M:%S")
        for i in range(rows)
    ]
    return write_skab(
        path,
        seed,
        rows=rows,
        fault=(460, 500),
        labelled=labelled,
        stamps=stamps,
        unlabelled_flow="with_drop",
        newline="\r\n",
    )


@pytest.fixture
def tiny_skab(
    tmp_path: Path, write_skab: Callable[..., list[str]]
) -> tuple[Path, Path, dict[str, list[str]]]:
    root_a, root_b = tmp_path / "a", tmp_path / "b"
    stamps = {
        "valve9/0.csv": _write_experiment(write_skab, root_a / "valve9" / "0.csv", 1),
        "valve9/1.csv": _write_experiment(write_skab, root_a / "valve9" / "1.csv", 2),
        "deep/er/x.csv": _write_experiment(write_skab, root_b / "deep" / "er" / "x.csv", 3),
        "top.csv": _write_experiment(write_skab, root_b / "top.csv", 4),
    }
    _write_experiment(write_skab, root_a / "anomaly-free" / "free.csv", 5, labelled=False)
    return root_a, root_b, stamps


def test_run_skab_takes_every_labelled_file_under_every_folder(tiny_skab: tuple[Path, Path, dict]) -> None:
    root_a, root_b, stamps = tiny_skab
    run = run_skab([root_a, root_b], detector="pca_t2q")
    assert sorted(f.relative.as_posix() for f in run.files) == sorted(stamps)
    assert set(run.groups()) == {".", "deep/er", "valve9"}
    overall = SkabRun.summary(run.files)
    assert overall["rows"] == 4 * (520 - TRAIN_ROWS)
    assert overall["changepoints"] == 8
    assert overall["onnx_parity"] <= 1e-4


def test_run_skab_writes_predictions_in_skab_format(
    tiny_skab: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    root_a, root_b, stamps = tiny_skab
    out = tmp_path / "out"
    run = run_skab([root_a, root_b], out=out, detector="pca_t2q")
    for relative, times in stamps.items():
        text = (out / relative).read_bytes().decode("ascii")
        lines = text.split("\n")
        # The default detector holds its alarm (off-delay), so it reports its own changepoints.
        assert lines[0] == "datetime;anomaly;changepoint"
        assert lines[-1] == ""
        body = lines[1:-1]
        assert len(body) == 520 - TRAIN_ROWS
        assert [row.split(";")[0] for row in body] == times[TRAIN_ROWS:]
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d;[01];[01]", row) for row in body)
    assert not (out / "anomaly-free").exists()
    # What was written is what was scored.
    first = next(f for f in run.files if f.relative.as_posix() == "valve9/0.csv")
    rows = [r.split(";") for r in (out / "valve9/0.csv").read_text().splitlines()[1:]]
    assert [int(r[1]) for r in rows] == first.alarm.tolist()
    assert [int(r[2]) for r in rows] == first.changepoint.tolist()


def test_run_skab_without_off_delay_writes_alarm_only(
    tiny_skab: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    root_a, _, _ = tiny_skab
    settings = {**BENCHMARK_SETTINGS["pca_t2q"], "alarm_hold": 0, "cp_window": 0}
    run = run_skab([root_a], out=tmp_path / "out", detector="pca_t2q", settings=settings)
    for f in run.files:
        lines = (tmp_path / "out" / f.relative).read_text().splitlines()
        assert lines[0] == "datetime;anomaly"
        assert all(re.fullmatch(r"[0-9: -]{19};[01]", row) for row in lines[1:])
        assert f.changepoint.tolist() == alarm_changepoints(f.alarm).tolist()


def test_run_skab_changepoints_are_edges_of_the_state_before_the_off_delay(
    tiny_skab: tuple[Path, Path, dict],
) -> None:
    root_a, _, _ = tiny_skab
    held = run_skab([root_a], detector="pca_t2q")
    settings = {**benchmark_settings("pca_t2q"), "alarm_hold": 0}
    unheld = run_skab([root_a], detector="pca_t2q", settings=settings)
    for a, b in zip(held.files, unheld.files, strict=True):
        assert a.changepoint.tolist() == b.changepoint.tolist()
        assert (a.alarm >= b.alarm).all()  # the off-delay only extends alarms


def test_run_skab_finds_the_injected_fault(tiny_skab: tuple[Path, Path, dict]) -> None:
    root_a, root_b, _ = tiny_skab
    overall = SkabRun.summary(run_skab([root_a, root_b], engine="numpy").files)
    assert overall["mar"] < 50.0


def test_run_skab_errors(tmp_path: Path, write_skab: Callable[..., list[str]]) -> None:
    with pytest.raises(NotFoundError):
        run_skab([tmp_path / "missing"])
    _write_experiment(write_skab, tmp_path / "free" / "f.csv", 1, labelled=False)
    with pytest.raises(NotFoundError, match="labelled"):
        run_skab([tmp_path / "free"])
    with pytest.raises(ConfigError):
        run_skab([tmp_path], engine="tensorflow")


def test_benchmark_skab_command(tiny_skab: tuple[Path, Path, dict], tmp_path: Path) -> None:
    root_a, root_b, stamps = tiny_skab
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    register(app)
    out = tmp_path / "cli-out"
    result = CliRunner().invoke(
        app,
        [
            "benchmark",
            "skab",
            "--data",
            str(root_a),
            "--data",
            str(root_b),
            "--out",
            str(out),
            "--trials",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    held = [i for i, line in enumerate(lines) if "held-out" in line and "→" in line]
    fixed = [i for i, line in enumerate(lines) if "chosen on these files" in line]
    assert len(held) == 3  # leave-one-folder-out over valve9, deep/er and the top level
    assert fixed
    assert max(held) < fixed[0]
    assert "all test folders pooled" in result.output
    assert "Conv-AE" in result.output
    assert "34 upstream" in result.output
    assert all((out / "fixed" / relative).is_file() for relative in stamps)
    held_out_files = [p.relative_to(out / "held-out") for p in (out / "held-out").rglob("*.csv")]
    assert len(held_out_files) == len(stamps)  # each file predicted once, by one split
    bad = CliRunner().invoke(
        app, ["benchmark", "skab", "--data", str(root_a), "--out", str(out), "--params", "[1]"]
    )
    assert bad.exit_code != 0


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_benchmark_skab_summary_json_or_csv(
    tiny_skab: tuple[Path, Path, dict], tmp_path: Path, fmt: str
) -> None:
    root_a, root_b, _ = tiny_skab
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    register(app)
    args = ["benchmark", "skab", "--data", str(root_a), "--data", str(root_b), "--out", str(tmp_path / "o")]
    args += ["--trials", "2", "--split", "valve9->deep/er"]
    result = CliRunner().invoke(app, [*args, "--output", fmt])
    assert result.exit_code == 0, result.output
    if fmt == "json":
        rows = json.loads(result.stdout)
    else:
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
        assert list(rows[0])[:3] == ["folder", "detector", "engine"]
    assert [r["folder"] for r in rows] == ["deep/er", "overall", "all-files-fixed"]
    assert [str(r["held_out"]) for r in rows] == ["True", "True", "False"]
    assert rows[0]["split"] == "valve9->deep/er"
    assert {"f1", "far", "mar", "nab_standard", "mean_delay_s"} <= set(rows[-1])


def test_benchmark_skab_missing_data_folder_is_usage_error(tmp_path: Path) -> None:
    from pumpops.errors import ConfigError

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    register(app)
    missing = tmp_path / "nope"
    result = CliRunner().invoke(app, ["benchmark", "skab", "--data", str(missing), "--out", str(tmp_path)])
    assert isinstance(result.exception, ConfigError)
    assert f"--data {missing}: no such folder" in str(result.exception)


def test_default_detector_beats_published_best_on_skab(skab_dir: Path, tmp_path: Path) -> None:
    run = run_skab([skab_dir], out=tmp_path / "out", detector=DEFAULT_DETECTOR)
    m = SkabRun.summary(run.files)
    assert m["files"] >= 1
    assert m["onnx_parity"] <= 1e-4
    # Published best (all 34 upstream files): F1 0.78 at FAR 13.55 %, NAB standard 32.42. A regression
    # check of the fixed setting on the files it was chosen on: NOT the held-out figure (benchmarks/skab.py).
    if m["files"] == 20:  # the targets are measured on this copy; other copies are only run
        assert m["f1"] > 0.78
        assert m["far"] <= 13.55
        assert m["nab_standard"] > 32.42
    assert benchmark_settings(DEFAULT_DETECTOR) == run.settings


@pytest.mark.parametrize(
    ("split", "reason"),
    [
        ("valve9", "write 'folders' or 'TRAIN"),
        ("valve9->nowhere", "no experiments in folder(s) ['nowhere']"),
        ("valve9->valve9", "in both the training and the test side"),
        ("->valve9", "at least one training and one test folder"),
    ],
)
def test_benchmark_skab_bad_split_is_explained(
    tiny_skab: tuple[Path, Path, dict], tmp_path: Path, split: str, reason: str
) -> None:
    from pumpops.errors import ConfigError

    root_a, _, _ = tiny_skab
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    register(app)
    args = ["benchmark", "skab", "--data", str(root_a), "--out", str(tmp_path), "--split", split]
    result = CliRunner().invoke(app, [*args, "--trials", "1"])
    assert isinstance(result.exception, ConfigError)
    assert reason in str(result.exception)
    assert not (tmp_path / "held-out").exists()  # refused before anything was searched or written
