from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from pumpops.demo import DemoOptions, run_demo


def test_demo_stores_every_simulated_reading_and_quarantines_the_bad_messages(tmp_path: Path) -> None:
    out = io.StringIO()
    counts = run_demo(
        DemoOptions(workspace=tmp_path / "demo", devices=3, hours=0.25, seed=1),
        Console(file=out, width=200),
    )
    text = out.getvalue()
    assert "Every simulated reading stored once: yes." in text
    # one dead letter per kind of bad input the demo sends
    assert counts["dead_letters"] == 6
    for reason in (
        "malformed_json",
        "unknown_device",
        "wrong_unit",
        "non_finite",
        "future_timestamp",
        "wrong_topic",
    ):
        assert reason in text
    assert counts["devices"] == 3
    assert (tmp_path / "demo" / "ground-truth.json").is_file()
