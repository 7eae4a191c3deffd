"""The ``pumpops`` root command for the pipeline's CLI tests (``from _cli import cli_app``)."""

from __future__ import annotations

from types import ModuleType

import typer


def cli_app(*commands: ModuleType) -> typer.Typer:
    """A root ``pumpops`` command with these CLI modules registered (each has ``register(app)``)."""
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def root(ctx: typer.Context) -> None:
        """Test root."""
        ctx.obj = {"workspace": None}

    for module in commands:
        module.register(app)
    return app
