"""Household solar production and load, by local time of day.

Smooth daily shapes with a per-day cloudiness and a little per-interval noise: enough
for batteries to charge at noon, cover the evening peak and sit idle overnight, the
pattern real telemetry shows.  All randomness comes from seeded generators.
"""

from __future__ import annotations

import math
import random
from datetime import date

from enphase_battery.simulator.catalog import SiteTemplate

__all__ = ["SiteProfile"]

_SUNRISE_H = 6.0
_DAYLIGHT_H = 14.0


class SiteProfile:
    """Solar and load power (W) for one site, deterministic for its seed."""

    def __init__(self, template: SiteTemplate, *, seed: int, system_id: int, latitude_sign: int):
        self.template = template
        self._seed = seed
        self._system_id = system_id
        self._latitude_sign = latitude_sign
        self._cloud_by_day: dict[date, float] = {}

    def cloudiness(self, day: date) -> float:
        """Fraction of clear-sky production reaching the panels that local day (0.25..1)."""
        factor = self._cloud_by_day.get(day)
        if factor is None:
            rng = random.Random(f"cloud:{self._seed}:{self._system_id}:{day.isoformat()}")
            # Mostly sunny days with the odd overcast one.
            factor = 1.0 - 0.75 * rng.random() ** 2.5
            self._cloud_by_day[day] = factor
        return factor

    def solar_w(self, day: date, hour: float, noise: float) -> float:
        """PV power at local ``hour`` (fractional) of ``day``; ``noise`` in [-1, 1]."""
        phase = (hour - _SUNRISE_H) / _DAYLIGHT_H
        if not 0.0 < phase < 1.0:
            return 0.0
        # Seasons: longer, stronger sun around the local summer solstice.
        season = math.cos(2 * math.pi * (day.timetuple().tm_yday - 172) / 365.25)
        seasonal = 1.0 + 0.2 * season * self._latitude_sign
        shape: float = math.sin(math.pi * phase) ** 1.5
        cloud = self.cloudiness(day)
        return max(
            0.0, self.template.pv_peak_w * 0.8 * shape * seasonal * cloud * (1.0 + 0.08 * noise)
        )

    def load_w(self, hour: float, noise: float) -> float:
        """Household consumption at local ``hour``; ``noise`` in [-1, 1]."""
        base = 350.0
        morning = 1100.0 * math.exp(-(((hour - 7.5) / 1.0) ** 2))
        midday = 300.0 * math.exp(-(((hour - 13.0) / 2.5) ** 2))
        evening = 1900.0 * math.exp(-(((hour - 19.0) / 1.8) ** 2))
        return (base + morning + midday + evening) * self.template.load_scale * (1.0 + 0.15 * noise)
