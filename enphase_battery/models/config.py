"""Models of the four system-configuration operations (``/systems/config/{id}/...``)."""

from __future__ import annotations

from datetime import datetime

import attrs

from enphase_battery.models.vocabulary import BatteryMode, Flag, GridState, LoadControlMode

__all__ = ["BatterySettings", "GridStatus", "LoadCircuit", "LoadControl", "StormGuard"]


@attrs.frozen
class BatterySettings:
    """``GET /systems/config/{id}/battery_settings``."""

    system_id: int
    battery_mode: BatteryMode | None = None
    reserve_soc: int | None = None
    energy_independence: Flag | None = None
    charge_from_grid: Flag | None = None
    battery_shutdown_level: int | None = None


@attrs.frozen
class StormGuard:
    """``GET /systems/config/{id}/storm_guard``: whether Storm Guard is on, and any alert."""

    system_id: int | None = None
    storm_guard_status: Flag | None = None
    storm_alert: Flag | None = None


@attrs.frozen
class GridStatus:
    """``GET /systems/config/{id}/grid_status``."""

    system_id: int
    grid_state: GridState = GridState.UNKNOWN
    last_report_date: datetime | None = None


@attrs.frozen
class LoadCircuit:
    """One load-control circuit (``NC1``...); essential times are seconds after midnight."""

    name: str
    load_name: str | None = None
    owner_can_override: Flag | None = None
    mode: LoadControlMode | None = None
    soc_low: int | None = None
    soc_high: int | None = None
    status: str | None = None
    essential_start_time: int | None = None
    essential_end_time: int | None = None


@attrs.frozen
class LoadControl:
    """``GET /systems/config/{id}/load_control``."""

    system_id: int | None = None
    load_control_data: tuple[LoadCircuit, ...] = ()
