"""Pure helpers of the rollout service: release references, the desired payload, device reports.

:func:`device_report` turns the agent messages the hub's ingest stored into
one :class:`~pumpops.rollout.DeviceReport` per device; no I/O.

May import: errors, ``pumpops.store`` records, this package's pure modules, the stdlib.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from pumpops.errors import ConfigError
from pumpops.rollout._gate import DeviceReport, Health
from pumpops.store import AgentRecord

__all__ = [
    "ACTIVE_STATUSES",
    "ReportOptions",
    "desired_payload",
    "device_report",
    "parse_release_ref",
]

#: Statuses the controller ticks (``pending``: created, but its start did not complete).
ACTIVE_STATUSES: Final = ("pending", "running", "paused", "rolling_back")
# Agent health values that mean "the desired release did not take" (docs/rollout.md).
_AGENT_FAILED: Final = frozenset({"refused", "failed", "rolled_back", "incompatible"})
# ... and those of them that mean the agent started the release and had to give it up.
_AGENT_CRASHED: Final = frozenset({"failed", "rolled_back"})


def parse_release_ref(ref: str) -> tuple[str, int]:
    """Split ``<model name>/<version>`` into its parts.

    Raises:
        ConfigError: not of that shape, or the version is not a whole number ≥ 1.

    >>> parse_release_ref("pumpops-skab/3")
    ('pumpops-skab', 3)
    """
    name, sep, version = ref.strip().rpartition("/")
    if not sep or not name or not version.isdigit() or int(version) < 1:
        raise ConfigError(
            f"release {ref!r} must be <model>/<version> (pumpops-skab-testbed/3) or <model>@<alias>"
        )
    return name, int(version)


def desired_payload(version: str, rollout_id: str) -> bytes:
    """The retained ``desired`` message: the agent installs exactly ``version``.

    A version of digits is sent as a JSON number, as the agent's ``{"version": N}`` has it.

    >>> desired_payload("3", "r-1")
    b'{"rollout_id":"r-1","version":3}'
    """
    value: int | str = int(version) if version.isdigit() else version
    return json.dumps(
        {"rollout_id": rollout_id, "version": value}, sort_keys=True, separators=(",", ":")
    ).encode()


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """How agent messages become a :class:`~pumpops.rollout.DeviceReport`.

    Attributes:
        state_history: the device's newest ``state`` messages looked at for flips.
        crash_flips: returns to an earlier (status, model version) since the
            wave started that make a device crash-looping.
        baseline_window_s: how far before the wave started summaries on the
            previous model count towards the baseline alarm rate.
        min_rate_period_s: summarised time below which a rate is not known yet.
    """

    state_history: int = 20
    crash_flips: int = 2
    baseline_window_s: float = 86_400.0  # s
    min_rate_period_s: float = 600.0  # s

    def __post_init__(self) -> None:
        if self.state_history < 2 or self.crash_flips < 1:
            raise ConfigError("state_history must be at least 2 and crash_flips at least 1")
        if not self.baseline_window_s > 0 or not self.min_rate_period_s >= 0:
            raise ConfigError("baseline_window_s must be above 0 and min_rate_period_s at least 0")


def _alarm_rate(summaries: Iterable[AgentRecord], version: str, min_period_s: float) -> float | None:
    """The alarm load per hour over the summaries of one model version (None: less than ``min_period_s``).

    Alarms raised per hour, plus one for every minute under alarm (the
    alarmed fraction of scored rows × 60): an alarm that stays on for hours
    is raised once but keeps a site busy, and must not look quieter than a
    few short ones.
    """
    alarms = 0
    period_ms = 0
    rows = 0
    alarm_rows = 0
    for record in summaries:
        body = record.body()
        if body.get("model_version") is None or str(body["model_version"]) != version:
            continue
        try:
            span = int(body["period_end_ms"]) - int(body["period_start_ms"])
            raised = int(body.get("alarms_raised") or 0)
            n_rows = int(body.get("rows") or 0)
            n_alarmed = int(body.get("alarm_rows") or 0)
        except (KeyError, TypeError, ValueError):
            continue  # a summary without its period says nothing about a rate
        if span > 0 and raised >= 0:
            period_ms += span
            alarms += raised
            if n_rows > 0 and 0 <= n_alarmed <= n_rows:
                rows += n_rows
                alarm_rows += n_alarmed
    if period_ms <= 0 or period_ms < min_period_s * 1000:
        return None
    alarmed_minutes_per_h = 60.0 * alarm_rows / rows if rows else 0.0
    return alarms / (period_ms / 3_600_000) + alarmed_minutes_per_h


def _flips(states: Sequence[AgentRecord], since_s: float) -> int:
    """Returns to an earlier (status, model version) among the states produced since ``since_s``."""
    seen: set[tuple[object, object]] = set()
    last: tuple[object, object] | None = None
    flips = 0
    for record in states:
        if record.ts_us / 1e6 < since_s:
            continue
        body = record.body()
        key = (body.get("status"), body.get("model_version"))
        if key != last and key in seen:
            flips += 1
        seen.add(key)
        last = key
    return flips


def device_report(
    device_id: str,
    states: Sequence[AgentRecord],
    summaries: Sequence[AgentRecord],
    *,
    version: str,
    previous_version: str | None,
    since_s: float,
    options: ReportOptions | None = None,
) -> DeviceReport | None:
    """What the gate needs to know of one device, from its stored agent messages.

    - ``installed_version``: the newest state's ``model_version``.
    - ``health``: ``ok`` when the agent says ``ok``; ``failed`` when it says
      ``refused``, ``failed``, ``rolled_back`` or ``incompatible`` *and* it
      has received this rollout's version as desired (an older failure is
      not this release's); ``unknown`` otherwise.
    - ``crash_loop``: the agent says ``failed`` or ``rolled_back`` for this
      version, or its (status, model version) returned to an earlier value
      ``crash_flips`` times since the wave started.
    - alarm rates: alarms per hour from the summaries on ``version`` and on
      ``previous_version``.
    - ``last_seen_s``: when the agent produced its newest state (``ts_us``).
      That is what "reported since the wave started" means: a state queued
      in an outbox before the desired message arrived is not an answer to
      it. The agent's clock is trusted within the ingest's
      ``max_future_skew_s``; a hub running on simulated time (the demo)
      works as long as its agents share that time.

    Args:
        device_id: the device.
        states: its ``state`` messages, oldest first (``agent_messages`` order).
        summaries: its ``summary`` messages.
        version: the release being rolled out.
        previous_version: the release the group ran before, or None.
        since_s: when the current wave started (the hub's clock, s).
        options: thresholds.

    Returns:
        The report, or None when the device has sent no state at all.
    """
    if not states:
        return None
    options = options or ReportOptions()
    newest = states[-1]
    body = newest.body()
    model_version = body.get("model_version")
    installed = None if model_version is None else str(model_version)
    desired = body.get("desired_version")
    told = desired is not None and str(desired) == version
    agent_health = body.get("health")
    health: Health = "unknown"
    if agent_health == "ok":
        health = "ok"
    elif agent_health in _AGENT_FAILED and told:
        health = "failed"
    crash_loop = (agent_health in _AGENT_CRASHED and told) or _flips(states, since_s) >= options.crash_flips
    rate = _alarm_rate(summaries, version, options.min_rate_period_s)
    baseline = (
        None
        if previous_version is None
        else _alarm_rate(summaries, previous_version, options.min_rate_period_s)
    )
    return DeviceReport(
        device_id=device_id,
        installed_version=installed,
        health=health,
        crash_loop=bool(crash_loop),
        alarm_rate_per_h=rate,
        baseline_alarm_rate_per_h=baseline,
        last_seen_s=newest.ts_us / 1e6,
    )
