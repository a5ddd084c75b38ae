"""The battery physics: each system's Encharges, its settings, and their history.

State is stepped forward lazily, one 15-minute interval at a time, whenever something
needs the present (:meth:`BatterySystem.step_until`).  Settings changes step first, so
every interval is computed with the settings that were in force while it elapsed.

Energy accounting (per Encharge, per interval; documented because tests rely on it):

* ``charge_wh`` and ``discharge_wh`` are whole watt-hours measured at the AC terminals,
  as telemetry reports them; an interval either charges or discharges, never both.
* the stored energy changes by ``charge_wh * CHARGE_EFFICIENCY - discharge_wh /
  DISCHARGE_EFFICIENCY`` (0.95 each way, about 90 % round trip);
* SoC = stored / capacity, always within 0..100 %, and on grid never below
  ``max(reserve_soc, battery_shutdown_level)``; off grid the floor is the shutdown level.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import attrs

from enphase_battery.simulator.catalog import BatteryModel, SiteTemplate
from enphase_battery.simulator.profiles import SiteProfile

__all__ = [
    "BATTERY_MODES",
    "CHARGE_EFFICIENCY",
    "DISCHARGE_EFFICIENCY",
    "INTERVAL_S",
    "LOAD_CONTROL_MODES",
    "BatteryInterval",
    "BatterySettings",
    "BatterySystem",
    "Encharge",
    "EnchargeInterval",
    "LoadCircuit",
]

INTERVAL_S = 900
_INTERVAL_H = INTERVAL_S / 3600.0
CHARGE_EFFICIENCY = 0.95
DISCHARGE_EFFICIENCY = 0.95

BATTERY_MODES = ("Savings Mode", "Self-consumption", "Full Backup")
LOAD_CONTROL_MODES = (
    "Scheduled",
    "Basic",
    "Advanced_BatteryPowered",
    "Manual_always_not_powered",
    "Manual_always_powered",
    "Advanced_GeneratorPowered",
)
#: Savings Mode discharges in this local evening window (hours, [start, end)).
PEAK_START_H = 17.0
PEAK_END_H = 21.0
#: A fresh Encharge (and the fleet at the start of history) holds this much charge.
INITIAL_SOC = 0.5


@attrs.frozen
class BatterySettings:
    """What ``battery_settings`` shows; replaced whole on every PUT."""

    battery_mode: str = "Self-consumption"
    reserve_soc: int = 20
    energy_independence: str = "enabled"
    charge_from_grid: str = "disabled"
    battery_shutdown_level: int = 5


@attrs.frozen
class LoadCircuit:
    """One dry-contact load-control circuit (NC1, NC2...)."""

    name: str
    load_name: str
    mode: str = "Basic"
    soc_low: int = 30
    soc_high: int = 50
    status: str = "enabled"
    essential_start_time: int = 32400
    essential_end_time: int = 57600
    owner_can_override: bool = True


@attrs.frozen
class BatteryInterval:
    """Ground truth for one system interval (all Encharges, visible or not)."""

    end_at: int
    charge_wh: int
    discharge_wh: int
    soc_percent: int
    devices: int


@attrs.frozen
class EnchargeInterval:
    """Ground truth for one Encharge interval."""

    end_at: int
    charge_wh: int
    discharge_wh: int
    soc_percent: int


class Encharge:
    """One battery and its whole history, stored compactly (a year is ~600 kB)."""

    def __init__(
        self,
        *,
        serial: str,
        device_id: int,
        model: BatteryModel,
        first_end_at: int,
        seed: int,
        initial_soc: float = INITIAL_SOC,
    ) -> None:
        self.serial = serial
        self.device_id = device_id
        self.model = model
        self.capacity_wh = model.capacity_wh
        self.max_interval_wh = model.max_power_w * _INTERVAL_H
        self.first_end_at = first_end_at
        self.stored_wh = self.capacity_wh * initial_soc
        self.charge_wh = array("l")
        self.discharge_wh = array("l")
        self.stored_end_wh = array("d")
        #: 1 where that interval reaches the cloud late (see :mod:`.arrival`).
        self.late = bytearray()
        # Its own stream, so adding a device never shifts another device's draws.
        self.late_rng = random.Random(f"late:{seed}:{serial}")

    def __len__(self) -> int:
        return len(self.charge_wh)

    @property
    def last_end_at(self) -> int:
        """end_at of the newest computed interval (``first_end_at - 900`` when none)."""
        return self.first_end_at + (len(self.charge_wh) - 1) * INTERVAL_S

    def index(self, end_at: int) -> int:
        """History index of the interval ending at ``end_at`` (may be out of range)."""
        return (end_at - self.first_end_at) // INTERVAL_S

    def soc_percent(self, i: int) -> int:
        """Reported SoC (int %) at the end of interval ``i``."""
        return _percent(self.stored_end_wh[i], self.capacity_wh)

    def interval(self, i: int) -> EnchargeInterval:
        """Ground truth of interval ``i``."""
        return EnchargeInterval(
            end_at=self.first_end_at + i * INTERVAL_S,
            charge_wh=self.charge_wh[i],
            discharge_wh=self.discharge_wh[i],
            soc_percent=self.soc_percent(i),
        )


def _percent(stored_wh: float, capacity_wh: float) -> int:
    return min(100, max(0, round(stored_wh * 100.0 / capacity_wh)))


class BatterySystem:
    """One site: its Encharges, settings, grid state, and the stepping physics."""

    def __init__(
        self,
        *,
        system_id: int,
        template: SiteTemplate,
        first_end_at: int,
        seed: int,
        late_probability: float = 0.0,
        name: str | None = None,
    ) -> None:
        self.system_id = system_id
        self.late_probability = late_probability
        self.template = template
        self.name = name or template.name
        self.tz = ZoneInfo(template.timezone)
        self.seed = seed
        self.first_end_at = first_end_at
        #: end_at of the next interval to compute.
        self.next_end_at = first_end_at
        self.encharges: list[Encharge] = []
        self.settings = BatterySettings(
            battery_mode=template.battery_mode,
            reserve_soc=template.reserve_soc,
            charge_from_grid=template.charge_from_grid,
        )
        self.storm_guard_enabled = False
        self.storm_alert = False
        self.off_grid = False
        #: The Commissioning API's ``battery_mode`` (``CFG_allowed``, ``DTG_allowed``);
        #: charging from the grid is also ``battery_settings``' read-only
        #: ``charge_from_grid``, which the physics follows.  Discharging to the grid is
        #: shown, not simulated.
        self.dtg_allowed = False
        self.load_control: dict[str, LoadCircuit] = {
            "NC1": LoadCircuit("NC1", "Pool pump", mode="Advanced_BatteryPowered"),
            "NC2": LoadCircuit("NC2", "EV charger", mode="Scheduled"),
        }
        south = template.timezone.startswith(("Australia/", "Pacific/Auckland"))
        self.profile = SiteProfile(
            template, seed=seed, system_id=system_id, latitude_sign=-1 if south else 1
        )
        self._noise_rng = random.Random(f"noise:{seed}:{system_id}")
        self.last_load_w = 0.0
        self.last_solar_w = 0.0

    # -- queries ----------------------------------------------------------------------

    @property
    def cfg_allowed(self) -> bool:
        """Whether the battery may charge from the grid (``CFG_allowed``)."""
        return self.settings.charge_from_grid == "enabled"

    @property
    def operational_at(self) -> int:
        """Epoch the system started operating (start of its first interval)."""
        return self.first_end_at - INTERVAL_S

    @property
    def last_end_at(self) -> int:
        """end_at of the newest computed interval."""
        return self.next_end_at - INTERVAL_S

    def encharge(self, serial: str) -> Encharge | None:
        """The Encharge with that serial, if this system has it."""
        for device in self.encharges:
            if device.serial == serial:
                return device
        return None

    def ground_truth(self, start: int, end: int) -> Iterator[BatteryInterval]:
        """System intervals with end_at in (start, end] that are already computed."""
        first = max(self.first_end_at, (start // INTERVAL_S + 1) * INTERVAL_S)
        last = min(end - end % INTERVAL_S, self.last_end_at)
        for end_at in range(first, last + 1, INTERVAL_S):
            charge = discharge = devices = 0
            stored = capacity = 0.0
            for device in self.encharges:
                i = device.index(end_at)
                if 0 <= i < len(device):
                    charge += device.charge_wh[i]
                    discharge += device.discharge_wh[i]
                    stored += device.stored_end_wh[i]
                    capacity += device.capacity_wh
                    devices += 1
            soc = _percent(stored, capacity) if capacity else 0
            yield BatteryInterval(end_at, charge, discharge, soc, devices)

    # -- physics ----------------------------------------------------------------------

    def step_until(self, now: float) -> None:
        """Compute every interval that has ended by ``now`` (epoch seconds)."""
        while self.next_end_at <= now:
            self._step(self.next_end_at)
            self.next_end_at += INTERVAL_S

    def _local(self, epoch: float) -> tuple[datetime, float]:
        local = datetime.fromtimestamp(epoch, UTC).astimezone(self.tz)
        return local, local.hour + local.minute / 60.0 + local.second / 3600.0

    def _step(self, end_at: int) -> None:
        # Sample the profile mid-interval: it stands for the interval's average power.
        local, hour = self._local(end_at - INTERVAL_S / 2)
        rng = self._noise_rng
        solar_w = self.profile.solar_w(local.date(), hour, rng.uniform(-1.0, 1.0))
        load_w = self.profile.load_w(hour, rng.uniform(-1.0, 1.0))
        self.last_solar_w, self.last_load_w = solar_w, load_w
        surplus_wh = (solar_w - load_w) * _INTERVAL_H
        settings = self.settings
        floor_soc = settings.battery_shutdown_level / 100.0
        # Positive: charge this much (Wh, system-wide); negative: discharge; inf: as fast
        # as the hardware allows (grid charging).
        request_wh: float
        if self.off_grid:
            # Islanded: the battery must carry whatever the sun does not.
            request_wh = surplus_wh
        else:
            floor_soc = max(floor_soc, settings.reserve_soc / 100.0)
            request_wh = self._on_grid_request(settings, surplus_wh, hour, floor_soc)
        active = [d for d in self.encharges if d.first_end_at <= end_at]
        total_capacity = sum(d.capacity_wh for d in active)
        for device in active:
            share = device.capacity_wh / total_capacity
            charge = discharge = 0
            stored = device.stored_wh
            if request_wh > 0:
                headroom_wh = (device.capacity_wh - stored) / CHARGE_EFFICIENCY
                charge = int(min(request_wh * share, device.max_interval_wh, headroom_wh))
                charge = max(0, charge)
                stored += charge * CHARGE_EFFICIENCY
            elif request_wh < 0:
                available_wh = (stored - floor_soc * device.capacity_wh) * DISCHARGE_EFFICIENCY
                discharge = int(min(-request_wh * share, device.max_interval_wh, available_wh))
                discharge = max(0, discharge)
                stored -= discharge / DISCHARGE_EFFICIENCY
            stored = min(float(device.capacity_wh), max(0.0, stored))
            device.stored_wh = stored
            device.charge_wh.append(charge)
            device.discharge_wh.append(discharge)
            device.stored_end_wh.append(stored)
            # Drawn as the interval happens, from the device's own stream: deterministic
            # whatever order requests arrive in.
            late = self.late_probability > 0 and device.late_rng.random() < self.late_probability
            device.late.append(1 if late else 0)

    def _on_grid_request(
        self, settings: BatterySettings, surplus_wh: float, hour: float, floor_soc: float
    ) -> float:
        grid_charge = settings.charge_from_grid == "enabled"
        if self.storm_guard_enabled and self.storm_alert:
            # Storm Guard overrides the profile: fill up from solar and grid, hold.
            return math.inf
        mode = settings.battery_mode
        if mode == "Full Backup":
            if grid_charge:
                return math.inf
            return max(0.0, surplus_wh)
        if grid_charge and self._soc_fraction() < floor_soc:
            return math.inf
        if surplus_wh >= 0:
            return surplus_wh
        if mode == "Self-consumption":
            return surplus_wh
        # Savings Mode: keep the energy for the evening peak, then (with energy
        # independence) keep covering the house overnight until the reserve.
        in_peak = PEAK_START_H <= hour < PEAK_END_H
        after_peak = hour >= PEAK_END_H or hour < 6.0
        if in_peak or (after_peak and settings.energy_independence == "enabled"):
            return surplus_wh
        return 0.0

    def _soc_fraction(self) -> float:
        capacity = sum(d.capacity_wh for d in self.encharges)
        return sum(d.stored_wh for d in self.encharges) / capacity if capacity else 0.0

    def current_soc_percent(self) -> int:
        """Aggregate SoC of the newest computed state (capacity-weighted)."""
        return round(self._soc_fraction() * 100)
