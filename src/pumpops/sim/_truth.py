"""Ground truth: every fault and drift interval of a scenario, as a JSON document.

Building the document is pure (:func:`ground_truth`); writing it is a thin
shell (:func:`write_ground_truth`) that replaces the file atomically, so a
reader never sees half a file. The format is described in ``pumpops.sim``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pumpops.errors import ConfigError
from pumpops.schema import CANONICAL_SENSORS, affine_to
from pumpops.sim._climate import site_climate
from pumpops.sim._engine import FleetSimulator
from pumpops.sim._faults import SIGNATURES, affected_sensors
from pumpops.sim._scenario import DriftKind, Event, Onset, Scenario, iso_utc

GROUND_TRUTH_FORMAT = "pumpops.ground-truth/1"


def _entry(
    scenario: Scenario,
    event_fields: dict[str, Any],
    sensors: tuple[str, ...],
    window_end: int,
) -> dict[str, Any]:
    profile = scenario.profile_of(event_fields["device_id"])
    present = [s for s in sensors if profile.sensor(s) is not None]
    end = min(event_fields["end_ms"], window_end)
    return {
        "device_id": event_fields["device_id"],
        "kind": event_fields["kind"],
        "category": event_fields["category"],
        "start": iso_utc(event_fields["start_ms"]),
        "end": iso_utc(end),
        "start_ms": event_fields["start_ms"],
        "end_ms": end,
        "clipped": event_fields["end_ms"] > window_end,
        "onset": event_fields["onset"],
        "severity": event_fields["severity"],
        "sensors": present,
        "native_sensors": [s.native for s in profile.sensors if s.canonical in present],
        "params": event_fields.get("params", {}),
    }


def _event_params(event: Event, scenario: Scenario, base_ratio: float) -> dict[str, Any]:
    if event.kind is DriftKind.SETPOINT_CHANGE:
        return {"from_speed_ratio": base_ratio, "to_speed_ratio": event.speed_ratio}
    if event.kind is DriftKind.SEASONAL_AMBIENT:
        return {"ambient_change_k": event.offset}
    if event.kind is DriftKind.PUMP_REPLACEMENT:
        s = event.severity
        return {"head_factor": 1 + 0.04 * s, "efficiency_factor": 1 + 0.05 * s, "bearing_change_k": -4.0 * s}
    if event.kind is DriftKind.SENSOR_RECALIBRATION and event.sensor is not None:
        sensor = scenario.profile_of(event.device_id).sensor(event.sensor)
        si_unit = CANONICAL_SENSORS[event.sensor].unit
        params: dict[str, Any] = {"sensor": event.sensor, "offset_si": event.offset, "si_unit": si_unit}
        if sensor is not None:
            scale, _ = affine_to(si_unit, sensor.unit)  # an offset converts without the affine shift
            params.update(
                native=sensor.native, offset_native=float(event.offset or 0.0) * scale, unit=sensor.unit
            )
        return params
    return {}


def ground_truth(scenario: Scenario, *, until_ms: int | None = None) -> dict[str, Any]:
    """Return the ground-truth document of a scenario (see ``pumpops.sim`` for the format).

    Args:
        scenario: the scenario.
        until_ms: end of the window to describe; default the scenario's end.
            Intervals running past it are cut there and marked ``clipped``.

    Raises:
        ConfigError: the scenario is endless and no ``until_ms`` was given.
    """
    end = scenario.end_ms if until_ms is None else until_ms
    if end is None:
        raise ConfigError("the scenario is endless: give the ground truth an until_ms")
    if end <= scenario.start_ms:
        raise ConfigError("until_ms must be after the scenario start")
    sim = FleetSimulator(scenario)
    entries = []
    sites = sorted({d.site for d in scenario.devices})
    climates = {site: site_climate(scenario, site) for site in sites}
    for device in scenario.devices:
        dev_sim = sim.device(device.device_id)
        if scenario.ambient is not None:
            climate = climates[device.site]
            swing = climate.daily_amplitude_k + climate.seasonal_amplitude_k
            entries.append(
                _entry(
                    scenario,
                    {
                        "device_id": device.device_id,
                        "kind": str(DriftKind.AMBIENT_TEMPERATURE),
                        "category": "drift",
                        "start_ms": scenario.start_ms,
                        "end_ms": end,
                        "onset": str(Onset.GRADUAL),
                        "severity": round(min(1.0, max(0.01, swing / 20.0)), 3),
                        "params": {"site": device.site},
                    },
                    affected_sensors_for_ambient(),
                    end,
                )
            )
        for event in dev_sim.events_until(end):
            entries.append(
                _entry(
                    scenario,
                    {
                        "device_id": event.device_id,
                        "kind": str(event.kind),
                        "category": event.category,
                        "start_ms": event.start_ms,
                        "end_ms": event.end_ms,
                        "onset": str(event.onset),
                        "severity": event.severity,
                        "params": _event_params(event, scenario, dev_sim.base_ratio),
                    },
                    affected_sensors(event),
                    end,
                )
            )
    entries.sort(key=lambda e: (e["start_ms"], e["device_id"], e["kind"]))
    return {
        "format": GROUND_TRUTH_FORMAT,
        "seed": scenario.seed,
        "start": iso_utc(scenario.start_ms),
        "end": iso_utc(end),
        "start_ms": scenario.start_ms,
        "end_ms": end,
        "devices": [
            {
                "device_id": d.device_id,
                "site": d.site,
                "profile": d.profile_id,
                "group": d.group,
                "base_speed_ratio": sim.device(d.device_id).base_ratio,
            }
            for d in scenario.devices
        ],
        "sites": [
            {
                "site": c.site,
                "ambient_mean_c": c.mean_c,
                "daily_amplitude_k": c.daily_amplitude_k,
                "seasonal_amplitude_k": c.seasonal_amplitude_k,
                "utc_offset_h": c.utc_offset_h,
            }
            for c in climates.values()
        ],
        "events": entries,
    }


def affected_sensors_for_ambient() -> tuple[str, ...]:
    """Return the canonical sensors ambient temperature drift moves."""
    return SIGNATURES[DriftKind.AMBIENT_TEMPERATURE].sensors


def write_ground_truth(
    path: str | os.PathLike[str], scenario: Scenario, *, until_ms: int | None = None
) -> Path:
    """Write the scenario's ground truth as JSON to ``path``, atomically.

    Args:
        path: the file to write (its folder must exist).
        scenario: the scenario.
        until_ms: end of the window to describe; see :func:`ground_truth`.

    Returns:
        The path written.

    Raises:
        ConfigError: as :func:`ground_truth`, or the file cannot be written.
    """
    target = Path(path)
    document = ground_truth(scenario, until_ms=until_ms)
    text = json.dumps(document, indent=1, sort_keys=False) + "\n"
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise ConfigError(f"cannot write ground truth to {target}: {exc}") from exc
    return target
