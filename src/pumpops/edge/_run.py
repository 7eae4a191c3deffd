"""The device process: ``pumpops-agent --config agent.toml`` (also ``python -m pumpops.edge``).

The lean entry point of the agent. It parses its few options with ``argparse`` and
imports only what the device path needs (``pumpops.edge``, numpy, onnxruntime,
paho-mqtt, msgspec): no command-line framework, no hub code, no pydantic, no pint;
python-tuf and cryptography load only in the short-lived update-check child
(``_update_child.py``). ``pumpops agent run`` parses its options with typer and then
replaces its own process with this one (:func:`exec_agent`, ``os.execv``), so the
typer process does not stay resident beside the agent. Exit codes are the
``pumpops`` ones (docs/cli.md): 0 ok, 2 a settings error, 3 bad input, 4 not found,
5 unreachable, 1 any other failure.
May import: edge modules, errors, the stdlib.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pumpops import errors

if TYPE_CHECKING:
    from pumpops.edge._config import AgentConfig

__all__ = ["agent_argv", "exec_agent", "main", "needs_openssl", "parse_duration", "skip_openssl"]

_DURATION = re.compile(r"^\s*(?P<num>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>ms|s|m|h|d)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds of ``90``, ``90s``, ``30m``, ``2h``, ``1d`` (as ``pumpops``' ``--duration``).

    Raises:
        ConfigError: anything else, or not positive.

    >>> parse_duration("2h"), parse_duration("90"), parse_duration("1.5m")
    (7200.0, 90.0, 90.0)
    """
    match = _DURATION.match(text)
    if match is None:
        raise errors.ConfigError(
            f"duration {text!r} must be a number with an optional unit (ms, s, m, h, d), e.g. 2h"
        )
    seconds = float(match["num"]) * _SECONDS[match["unit"] or "s"]
    if seconds <= 0:
        raise errors.ConfigError(f"duration {text!r} must be positive")
    return seconds


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pumpops-agent",
        description="The device agent: read the pump, score, raise alarms, update the model, report to "
        "the hub. Exit codes: 0 ok, 2 settings error, 3 bad input, 4 not found, 5 unreachable.",
    )
    parser.add_argument("--config", "-c", type=Path, required=True, help="the agent's settings (agent.toml)")
    parser.add_argument("--duration", help="stop after this wall time, e.g. 90s, 10m, 1h (default: run on)")
    parser.add_argument("--max-seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--verbose", "-v", action="store_true", help="log every step, not only warnings")
    return parser


def _exit_code(exc: errors.PumpopsError) -> int:
    for cls, code in (
        (errors.ConfigError, 2),
        (errors.NotFoundError, 4),
        (errors.InputError, 3),
        (errors.ServiceError, 5),
    ):
        if isinstance(exc, cls):
            return code
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run the agent from the command line; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        seconds = parse_duration(args.duration) if args.duration is not None else args.max_seconds
    except errors.ConfigError as exc:
        parser.error(f"--duration: {exc}")
    if seconds is not None and seconds < 0:
        parser.error("--max-seconds must not be negative")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from pumpops import edge  # noqa: PLC0415 - after argparse: --help answers without numpy

    try:
        config = edge.load_agent_config(args.config)
        if not needs_openssl(config):
            skip_openssl()
        agent = edge.Agent(config)
    except errors.PumpopsError as exc:
        print(f"pumpops-agent: error: {exc}", file=sys.stderr)
        return _exit_code(exc)
    return int(agent.run(max_seconds=seconds))


def needs_openssl(config: AgentConfig) -> bool:
    """Whether the device process talks TLS: an ``mqtts`` broker or an ``https`` repository (data clock).

    (On the wall clock the repository is read by the update-check child, which loads what it needs.)
    """
    repository = config.repository.url or ""
    return config.broker.tls or (config.agent.clock == "data" and repository.startswith("https://"))


def skip_openssl() -> bool:
    """Keep OpenSSL out of a device process whose links are plain (about 4.6 MiB resident).

    paho-mqtt imports ``ssl`` whether or not it is used, and ``hashlib`` loads OpenSSL's
    ``libcrypto`` for its digests. Marking ``ssl`` and ``_hashlib`` as absent before they load
    makes paho run without TLS (plain ``mqtt://`` needs none) and ``hashlib`` use Python's own
    SHA-256. Returns False (and changes nothing) if either was already loaded.
    """
    if "ssl" in sys.modules or "_hashlib" in sys.modules:
        return False
    sys.modules["ssl"] = None  # type: ignore[assignment]
    sys.modules["_hashlib"] = None  # type: ignore[assignment]
    import paho.mqtt.client as paho  # noqa: PLC0415 - after ssl is marked absent

    if getattr(paho, "ssl", None) is None:
        setattr(paho, "ssl", _NoTls)  # noqa: B010 - paho does not export the name it reads
    return True


class _NoTls:
    """What paho-mqtt's socket calls find under ``ssl`` in a process without it: errors nothing raises.

    paho names ``ssl.SSLWantReadError`` and ``ssl.SSLWantWriteError`` in the except clauses of its
    socket reads and writes; with ``ssl`` None, any socket error there (a broker resetting the link)
    raised AttributeError in paho's network thread, which died, and the agent never reconnected.
    paho's own ``ssl is None`` checks guard only TLS set-up, which a plain link never calls.
    """

    class SSLWantReadError(OSError):
        """Never raised: no TLS socket exists in this process."""

    class SSLWantWriteError(OSError):
        """Never raised: no TLS socket exists in this process."""


def agent_argv(config: Path, *, seconds: float | None = None, verbose: bool = False) -> list[str]:
    """The command line of the device process (this interpreter, ``-m pumpops.edge``)."""
    argv = [sys.executable, "-m", "pumpops.edge", "--config", str(config)]
    if seconds is not None:
        argv += ["--max-seconds", repr(float(seconds))]
    if verbose:
        argv.append("--verbose")
    return argv


def exec_agent(config: Path, *, seconds: float | None = None, verbose: bool = False) -> None:
    """Replace this process with the device process (never returns)."""
    argv = agent_argv(config, seconds=seconds, verbose=verbose)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)  # noqa: S606 - this interpreter, our own module
