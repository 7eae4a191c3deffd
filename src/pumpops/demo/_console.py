"""The loop demo's console: a live status line, phase titles, progress setters."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.text import Text


class _Live:
    """A status line drawn afresh at each refresh of Rich's spinner (elapsed time, counters)."""

    def __init__(self, text: Callable[[], str]) -> None:
        self.text = text

    def __rich__(self) -> Text:
        return Text(self.text())


@contextmanager
def _status(out: Console, text: Callable[[], str]) -> Iterator[None]:
    """A live status line on a terminal; off a terminal (CI logs) nothing: the timeline says enough."""
    if not out.is_terminal:
        yield
        return
    with out.status(_Live(text)):
        yield


def _elapsed(label: str, step: list[str], began: float) -> Callable[[], str]:
    """``<label>: <the step it is at> … <seconds> s``."""
    return lambda: f"{label}: {step[0]} … {time.monotonic() - began:.0f} s"


def _setter(step: list[str], prefix: str = "") -> Callable[[str], None]:
    def say(text: str) -> None:
        step[0] = prefix + text

    return say


def _phase(out: Console, number: int, title: str) -> None:
    if out.is_terminal:
        out.rule(f"[bold]{number}/4[/] {title}", align="left")
    else:  # a log: one line (off a terminal the console is as wide as a line needs)
        out.print(f"── [bold]{number}/4[/] {title} ──")


def _default_console() -> Console:
    """Stdout; off a terminal as wide as a line needs (as the CLI's console)."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=100_000, soft_wrap=True)
