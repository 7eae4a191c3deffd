"""Pins the pipeline's public API: a change to this list is a change users see."""

from __future__ import annotations

import pumpops.pipeline

PUBLIC = {"PipelineConfig", "RunResult", "load_config", "parse_config", "run_pipeline"}


def test_pipeline_exported_members_are_pinned() -> None:
    assert set(pumpops.pipeline.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(pumpops.pipeline, name), name


def test_pipeline_cli_registers_train_and_pipeline_group() -> None:
    import typer

    from pumpops.pipeline import _cli

    app = typer.Typer()
    _cli.register(app)
    assert [c.name for c in app.registered_commands] == ["train"]
    assert [g.name for g in app.registered_groups] == ["pipeline"]
