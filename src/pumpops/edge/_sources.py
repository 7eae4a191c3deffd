"""Where the agent's readings come from: the configured source, built with only what it needs.

A device reads its pump through a driver; this repository ships two sources for
replays and simulations: ``skab`` (the SKAB CSV files, ``pumpops.sources``) and
``simulator`` (the pump simulator, ``pumpops.sim``). The simulator needs the
fleet's validated profiles (pydantic, pint), so it is imported only when the
settings choose it: the SKAB replay, like a device, runs without them.
May import: sources, sim, fleet (the simulator only), errors, the stdlib.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pumpops.errors import ConfigError, InputError

if TYPE_CHECKING:
    from pumpops.edge._config import AgentConfig
    from pumpops.edge._device import DeviceProfile
    from pumpops.sources import Source

__all__ = ["build_source", "source_start_ms"]


def _epoch_ms(text: str) -> int:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"source.start {text!r} is neither 'now' nor an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def source_start_ms(config: AgentConfig, now_ms: int) -> int:
    """When the configured source's readings begin (``start``: ``now`` or an ISO time, UTC if no offset)."""
    start = config.source.start
    return now_ms - now_ms % 1000 if start == "now" else _epoch_ms(start)


def build_source(config: AgentConfig, now_ms: int, profile: DeviceProfile | None = None) -> Source:
    """The configured source of readings for this device (unpaced: the agent paces it).

    Args:
        config: the settings.
        now_ms: the wall clock.
        profile: the device's profile (the SKAB replay reads its columns with it).
    """
    a, s = config.agent, config.source
    start_ms = source_start_ms(config, now_ms)
    if s.kind == "skab":
        from pumpops.sources import SkabCsvSource  # noqa: PLC0415 - only the chosen source is loaded

        return SkabCsvSource(
            Path(str(s.path)),
            device_id=a.device_id,
            site=a.site,
            rebase_to_ms=start_ms,
            chunk_rows=max(1, round(s.chunk_s)),
            profile=profile if profile is not None and profile.id == "skab-testbed" else None,
        )
    from pumpops.fleet import Device  # noqa: PLC0415 - the simulator's profiles (pydantic, pint)
    from pumpops.sim import DriftKind, Event, FaultKind, Onset, Scenario  # noqa: PLC0415
    from pumpops.sources import SimulatorSource  # noqa: PLC0415

    kinds: dict[str, Any] = {k.value: k for k in (*FaultKind, *DriftKind)}
    events = []
    for e in s.events:
        if e.kind not in kinds:
            raise InputError(f"source.events: unknown kind {e.kind!r}; known: {', '.join(sorted(kinds))}")
        events.append(
            Event(
                a.device_id,
                kinds[e.kind],
                start_ms + round(e.start_s * 1000),
                start_ms + round((e.start_s + e.duration_s) * 1000),
                onset=Onset(e.onset),
                severity=e.severity,
                speed_ratio=e.speed_ratio,
                sensor=e.sensor,
                offset=e.offset,
            )
        )
    scenario = Scenario(
        devices=(Device(a.device_id, a.site, a.profile, a.group),),
        start_ms=start_ms,
        duration_s=s.duration_s,
        seed=s.seed,
        fault_rate_per_day=s.fault_rate_per_day,
        drift_rate_per_day=s.drift_rate_per_day,
        events=tuple(events),
    )
    return SimulatorSource(scenario, chunk_s=s.chunk_s)
