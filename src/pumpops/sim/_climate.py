"""The ambient temperature at each site: a yearly mean plus daily and seasonal sinusoids."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pumpops.sim._blocks import _SITE
from pumpops.sim._scenario import Scenario, rng_for

__all__ = ["SiteClimate", "site_climate"]

_DAY_MS = 86_400_000
_YEAR_DAYS = 365.2422
# Day of the year (from 1 January) of the seasonal peak: late July.
_SEASON_PEAK_DAY = 206.0


@dataclass(frozen=True, slots=True)
class SiteClimate:
    """The ambient temperature of one site: mean plus daily and seasonal sinusoids.

    Attributes:
        site: site name.
        mean_c: yearly mean, °C.
        daily_amplitude_k: half the daily swing, K.
        seasonal_amplitude_k: half the seasonal swing, K.
        utc_offset_h: local time offset, hours (the daily peak is at 15:00 local).
    """

    site: str
    mean_c: float
    daily_amplitude_k: float
    seasonal_amplitude_k: float
    utc_offset_h: int

    def ambient_c(self, ts_ms: np.ndarray) -> np.ndarray:
        """Return the ambient temperature (°C) at the given times.

        >>> c = SiteClimate("x", 10.0, 5.0, 0.0, 0)
        >>> c.ambient_c(np.array([15 * 3_600_000, 3 * 3_600_000])).round(6).tolist()
        [15.0, 5.0]
        """
        days = ts_ms / _DAY_MS
        local_hour = (days * 24.0 + self.utc_offset_h) % 24.0
        # The Unix epoch is 1 January, so days modulo the year is close enough
        # to the day of the year for a weather model.
        season = np.cos(2.0 * math.pi * (days % _YEAR_DAYS - _SEASON_PEAK_DAY) / _YEAR_DAYS)
        daily = np.cos(2.0 * math.pi * (local_hour - 15.0) / 24.0)
        return self.mean_c + self.seasonal_amplitude_k * season + self.daily_amplitude_k * daily


def site_climate(scenario: Scenario, site: str) -> SiteClimate:
    """Return the climate of ``site`` in ``scenario`` (constant when ambient drift is off)."""
    rng = rng_for(scenario.seed, f"site:{site}", _SITE)
    draws = rng.random(4)
    if scenario.ambient is None:
        return SiteClimate(site, 15.0, 0.0, 0.0, 0)
    amb = scenario.ambient

    def pick(bounds: tuple[float, float], u: float) -> float:
        return round(bounds[0] + (bounds[1] - bounds[0]) * float(u), 3)

    return SiteClimate(
        site=site,
        mean_c=pick(amb.mean_c, draws[0]),
        daily_amplitude_k=pick(amb.daily_amplitude_k, draws[1]),
        seasonal_amplitude_k=pick(amb.seasonal_amplitude_k, draws[2]),
        utc_offset_h=int(draws[3] * 24) - 11,
    )
