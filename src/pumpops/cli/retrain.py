"""Command-line commands of retraining: ``pumpops retrain run|policy`` and ``pumpops approve``.

``retrain run`` tells its steps on stderr (training, validation, release take
minutes) and exits by the scheme: 0 released or awaiting approval, 1 the
candidate failed validation (or a step failed), 4 the group or model was not
found, 5 a service did not answer. Only typer, the standard library and
``pumpops.cli._support`` load with this module; the chain (the hub libraries)
loads inside the commands.

May import: typer, settings, the retrain chain, the rollout service, registry, store.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from pumpops.audit import resolve_actor
from pumpops.cli._support import (
    DatabaseUrlOption,
    ExitCode,
    JsonFlag,
    OutputFormat,
    OutputOption,
    TrackingUriOption,
    console,
    emit_record,
    err_console,
    output_format,
    parse_time_us,
    settings_from,
)
from pumpops.cli.audit import ActorOption
from pumpops.errors import ConfigError, NotFoundError, ServiceError
from pumpops.hub import open_workspace_store, rollout_publishers, rollout_service

if TYPE_CHECKING:
    from pumpops.retrain import RetrainOutcome, RolloutStarter
    from pumpops.settings import Settings

__all__ = ["register", "retrain_app"]

retrain_app = typer.Typer(
    help="Retraining: a new candidate from recent data, validated, released, rolled out.",
    no_args_is_help=True,
)

NoRolloutFlag = Annotated[bool, typer.Option("--no-rollout", help="Release, but do not start a rollout.")]


def register(app: typer.Typer) -> None:
    """Add ``retrain`` and ``approve`` to the root ``pumpops`` command."""
    app.add_typer(retrain_app, name="retrain")
    app.command("approve")(approve_cmd)


def _progress(line: str) -> None:
    err_console.print(f"[dim]…[/] {line}", highlight=False, markup=True)


@retrain_app.command("run")
def run_cmd(  # noqa: PLR0917 - typer passes options by keyword
    ctx: typer.Context,
    group: Annotated[str, typer.Option("--group", "-g", help="The device group to retrain.")],
    until: Annotated[
        str | None,
        typer.Option(
            help="End of the training window: ISO 8601 (naive = UTC) or a duration before now (1h); "
            "default: now.",
            show_default=False,
        ),
    ] = None,
    drift_onset: Annotated[
        str | None,
        typer.Option(
            help="When the group's drift began (ISO 8601 or a duration before now): a drift-triggered "
            "run that trains on post-drift data and meets the post-drift gate (docs/retrain.md).",
            show_default=False,
        ),
    ] = None,
    no_rollout: NoRolloutFlag = False,
    actor: ActorOption = None,
    db: DatabaseUrlOption = None,
    tracking_uri: TrackingUriOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Retrain a group by hand: the policy's chain, trigger 'manual' ('drift' with --drift-onset).

    Exit 0 also when a drift-triggered run is waiting for post-drift data (status waiting).
    """
    import time

    until_us = round(time.time() * 1_000_000) if until is None else parse_time_us(until, option="--until")
    onset_us = None if drift_onset is None else parse_time_us(drift_onset, option="--drift-onset")
    if onset_us is not None and onset_us >= until_us:
        raise ConfigError(f"--drift-onset must be before --until (the end of the data): {drift_onset!r}")
    settings = settings_from(ctx, database_url=db, tracking_uri=tracking_uri)
    who = resolve_actor(settings, actor)
    from pumpops.retrain import run_retrain

    starter = None if no_rollout else _rollout_starter(settings, who)
    outcome = run_retrain(
        settings,
        group,
        trigger="manual" if onset_us is None else "drift",
        actor=who,
        policy=settings.retrain,
        until_us=until_us,
        start_rollout=starter,
        progress=_progress,
        drift_onset_us=onset_us,
    )
    _show(outcome.to_dict(), as_json)
    _exit(outcome)


def _exit(outcome: RetrainOutcome) -> None:
    """Exit by the scheme when the chain did not get through."""
    if outcome.status == "validation_failed":
        raise typer.Exit(ExitCode.FAILED)
    if outcome.status != "failed":
        return
    if isinstance(outcome.error, NotFoundError):
        raise typer.Exit(ExitCode.NOT_FOUND)
    if isinstance(outcome.error, ServiceError):
        raise typer.Exit(ExitCode.UNREACHABLE)
    if isinstance(outcome.error, ConfigError):
        raise typer.Exit(ExitCode.USAGE)
    raise typer.Exit(ExitCode.FAILED)


@retrain_app.command("policy")
def policy_cmd(
    ctx: typer.Context, output: OutputOption = OutputFormat.TABLE, as_json: JsonFlag = False
) -> None:
    """Show the retraining policy in force (``[retrain]`` in pumpops.toml or PUMPOPS_RETRAIN__*)."""
    settings = settings_from(ctx)
    emit_record(
        settings.retrain.model_dump(mode="json"),
        output=output_format(output, as_json),
        title="Retraining policy (pumpops.toml, section retrain)",
    )


def approve_cmd(  # noqa: PLR0917 - typer passes options by keyword
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(help="A validated candidate awaiting approval: <name>/<version> or <name>@<alias>."),
    ],
    no_rollout: NoRolloutFlag = False,
    actor: ActorOption = None,
    db: DatabaseUrlOption = None,
    tracking_uri: TrackingUriOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Approve a validated candidate held by the policy: release it and start its rollout."""
    settings = settings_from(ctx, database_url=db, tracking_uri=tracking_uri)
    who = resolve_actor(settings, actor)
    from pumpops.release import resolve_model_ref
    from pumpops.retrain import approve

    with open_workspace_store(settings, upgrade=True) as store:
        name, version = resolve_model_ref(ref, tracking_uri=settings.resolved_tracking_uri, store=store)
    _progress(f"approving {name}/{version}: release, then rollout")
    outcome = approve(
        settings,
        f"{name}/{version}",
        actor=who,
        policy=settings.retrain,
        start_rollout=None if no_rollout else _rollout_starter(settings, who),
        progress=_progress,
    )
    _show(outcome.to_dict(), as_json)
    _exit(outcome)


def _rollout_starter(settings: Settings, actor: str) -> RolloutStarter:
    """Start rollouts with the rollout service (desired states on the settings' broker)."""

    def start(ref: str, group: str, waves: Sequence[int]) -> str:
        desired, events = rollout_publishers(settings, None)
        with open_workspace_store(settings) as store:
            service = rollout_service(settings, store, desired, events, actor=actor)
            return service.start(ref, group, tuple(waves), reason="retrained")

    return start


def _show(outcome: dict[str, object], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(outcome, sort_keys=True))
        return
    console.print(f"[bold]{outcome['group']}[/]: {outcome['status']} — {outcome['reason']}")
    steps = outcome["steps"] if isinstance(outcome["steps"], list) else []
    console.print("steps: " + " → ".join(str(s) for s in steps))
