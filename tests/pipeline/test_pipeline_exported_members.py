"""Pins the pipeline's public API: a change to this list is a change users see."""

from __future__ import annotations

import pumpops.pipeline

PUBLIC = {
    "CalibratedHoldout",
    "FanoutReport",
    "GroupOutcome",
    "InterruptGuard",
    "ModelFolder",
    "PipelineConfig",
    "Recording",
    "RunResult",
    "calibrate_new_device",
    "calibrated_holdout",
    "check_detector",
    "check_scheduler",
    "event_delays",
    "load_config",
    "load_labelled_files",
    "load_model_folder",
    "mlflow_quiet",
    "open_session",
    "parse_config",
    "pipeline_template",
    "quiet_mlflow_env",
    "resolve_tracking_uri",
    "run_pipeline",
    "summarise",
    "train_groups",
}


def test_pipeline_exported_members_are_pinned() -> None:
    assert set(pumpops.pipeline.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(pumpops.pipeline, name), name


def test_pipeline_cli_registers_train_and_pipeline_group() -> None:
    import typer

    from pumpops.cli import pipeline as _cli

    app = typer.Typer()
    _cli.register(app)
    assert [c.name for c in app.registered_commands] == ["train"]
    assert [g.name for g in app.registered_groups] == ["pipeline"]
