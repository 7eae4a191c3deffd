"""Command-line commands of retraining: ``pumpops retrain run|policy`` and ``pumpops approve``.

May import: typer, settings, the retrain chain (loaded inside commands: it needs the hub libraries).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from pumpops._cli_support import console, settings_from
from pumpops.settings import Settings

if TYPE_CHECKING:
    from pumpops.retrain._chain import RolloutStarter

__all__ = ["register", "retrain_app"]

retrain_app = typer.Typer(
    help="Retraining: a new candidate from recent data, validated, released, rolled out.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add ``retrain`` and ``approve`` to the root ``pumpops`` command."""
    app.add_typer(retrain_app, name="retrain")
    app.command("approve")(approve_cmd)


def _until(text: str | None) -> int:
    if text is None:
        return int(datetime.now(UTC).timestamp() * 1_000_000)
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        from pumpops.errors import ConfigError

        raise ConfigError(f"--until {text!r} needs a time zone (e.g. a trailing Z for UTC)")
    return int(when.timestamp() * 1_000_000)


@retrain_app.command("run")
def run_cmd(  # noqa: PLR0917 - typer passes options by keyword
    ctx: typer.Context,
    group: Annotated[str, typer.Option("--group", "-g", help="The device group to retrain.")],
    until: Annotated[
        str | None, typer.Option(help="End of the training window, ISO 8601 UTC (default: now).")
    ] = None,
    no_rollout: Annotated[
        bool, typer.Option("--no-rollout", help="Release, but do not start a rollout.")
    ] = False,
    actor: Annotated[str | None, typer.Option(help="Who runs it (audit trail).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Retrain a group by hand: the same chain the policy runs, with trigger 'manual'."""
    from pumpops.retrain._chain import run_retrain

    settings = settings_from(ctx)
    starter = None if no_rollout else _rollout_starter(settings)
    outcome = run_retrain(
        settings,
        group,
        trigger="manual",
        actor=actor or settings.actor,
        policy=settings.retrain,
        until_us=_until(until),
        start_rollout=starter,
    )
    _show(outcome.to_dict(), as_json)
    if outcome.status in ("failed", "validation_failed"):
        raise typer.Exit(1)


@retrain_app.command("policy")
def policy_cmd(ctx: typer.Context) -> None:
    """Show the retraining policy in force (``[retrain]`` in pumpops.toml or PUMPOPS_RETRAIN__*)."""
    settings = settings_from(ctx)
    typer.echo(json.dumps(settings.retrain.model_dump(mode="json"), indent=2, sort_keys=True))


def approve_cmd(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="<name>/<version> of a validated candidate awaiting approval.")],
    no_rollout: Annotated[
        bool, typer.Option("--no-rollout", help="Release, but do not start a rollout.")
    ] = False,
    actor: Annotated[str | None, typer.Option(help="Who approves (audit trail).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Approve a validated candidate held by the policy: release it and start its rollout."""
    from pumpops.retrain._chain import approve

    settings = settings_from(ctx)
    outcome = approve(
        settings,
        ref,
        actor=actor or settings.actor,
        policy=settings.retrain,
        start_rollout=None if no_rollout else _rollout_starter(settings),
    )
    _show(outcome.to_dict(), as_json)


def _rollout_starter(settings: Settings) -> RolloutStarter:
    """Start rollouts with the rollout service (desired states on the settings' broker)."""

    def start(ref: str, group: str, waves: Sequence[int]) -> str:
        from pumpops.registry import EventSink
        from pumpops.rollout._cli import _publisher
        from pumpops.rollout._service import RolloutService
        from pumpops.store import open_store

        publisher, events = _publisher(settings, None)
        with open_store(settings.resolved_database_url) as store:
            sink = EventSink(store, events, topic_prefix=settings.topic_prefix)
            service = RolloutService(
                store, publisher, events=sink, actor=settings.actor, topic_prefix=settings.topic_prefix
            )
            return service.start(ref, group, tuple(waves), reason="retrained")

    return start


def _show(outcome: dict[str, object], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(outcome, sort_keys=True))
        return
    console.print(f"[bold]{outcome['group']}[/]: {outcome['status']} — {outcome['reason']}")
    steps = outcome["steps"] if isinstance(outcome["steps"], list) else []
    console.print("steps: " + " → ".join(str(s) for s in steps))
