"""Sensors: state of charge, power and its direction, charged/discharged energy, grid.

Per system always (Watt and up); per Encharge with device-level access (Kilowatt and
up); the grid state with configuration access (Megawatt and up).  SoC and energy come
from the telemetry poller (each 15-minute interval once; the energy is the running sum
the statistics hold), power and direction from ``latest_telemetry``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorStateClass,
)
from homeassistant.const import PERCENTAGE, UnitOfEnergy, UnitOfPower
from homeassistant.core import HomeAssistant
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity, DataUpdateCoordinator

from enphase_battery import LatestTelemetry
from enphase_battery.models import BATTERY, BatteryState, GridState

from .const import Access
from .entity import encharge_device, encharge_unique_id, system_device, system_unique_id
from .history import StreamReading, stream_key

if TYPE_CHECKING:
    from . import EnphaseConfigEntry

BATTERY_STATES = ["charging", "discharging", "idle", "unknown"]
GRID_STATES = ["on_grid", "off_grid", "unknown"]


class StreamSensor(
    CoordinatorEntity[DataUpdateCoordinator[dict[str, StreamReading]]], SensorEntity
):
    """A value of one stream's newest reading (SoC, charged, discharged)."""

    _attr_has_entity_name = True

    def __init__(
        self,
        coordinator: DataUpdateCoordinator[dict[str, StreamReading]],
        key: str,
        stream: str,
        device: DeviceInfo,
        unique_id: str,
        value: Callable[[StreamReading], int | None],
    ) -> None:
        super().__init__(coordinator)
        self._stream = stream
        self._value = value
        self._attr_translation_key = key
        self._attr_unique_id = unique_id
        self._attr_device_info = device
        if key == "soc":
            self._attr_device_class = SensorDeviceClass.BATTERY
            self._attr_native_unit_of_measurement = PERCENTAGE
            self._attr_state_class = SensorStateClass.MEASUREMENT
        else:
            self._attr_device_class = SensorDeviceClass.ENERGY
            self._attr_native_unit_of_measurement = UnitOfEnergy.WATT_HOUR
            self._attr_state_class = SensorStateClass.TOTAL_INCREASING

    @property
    def _reading(self) -> StreamReading | None:
        return (self.coordinator.data or {}).get(self._stream)

    @property
    def available(self) -> bool:
        return super().available and self._reading is not None

    @property
    def native_value(self) -> int | None:
        reading = self._reading
        return None if reading is None else self._value(reading)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        reading = self._reading
        return None if reading is None else {"interval_end": reading.end_at.isoformat()}


class NowSensor(CoordinatorEntity[DataUpdateCoordinator[dict[int, LatestTelemetry]]], SensorEntity):
    """Power (W, positive while discharging) or direction, of a system or an Encharge."""

    _attr_has_entity_name = True

    def __init__(
        self,
        coordinator: DataUpdateCoordinator[dict[int, LatestTelemetry]],
        key: str,
        system_id: int,
        device_id: int | None,
        device: DeviceInfo,
        unique_id: str,
    ) -> None:
        super().__init__(coordinator)
        self._key = key
        self._system_id = system_id
        self._device_id = device_id
        self._attr_translation_key = key
        self._attr_unique_id = unique_id
        self._attr_device_info = device
        if key == "battery_power":
            self._attr_device_class = SensorDeviceClass.POWER
            self._attr_native_unit_of_measurement = UnitOfPower.WATT
            self._attr_state_class = SensorStateClass.MEASUREMENT
        else:
            self._attr_device_class = SensorDeviceClass.ENUM
            self._attr_options = BATTERY_STATES

    def _values(self) -> tuple[int | None, BatteryState | None]:
        latest = (self.coordinator.data or {}).get(self._system_id)
        if latest is None:
            return None, None
        if self._device_id is None:
            return latest.battery_discharge_w, latest.battery_state
        for device in latest.devices.encharges:
            if device.id == self._device_id:
                return device.discharge_w, device.operational_mode
        return None, None

    @property
    def native_value(self) -> int | str | None:
        power, state = self._values()
        if self._key == "battery_power":
            return power
        return None if state is None else state.name.lower()


class GridSensor(CoordinatorEntity[Any], SensorEntity):
    """The grid state (configuration access)."""

    _attr_has_entity_name = True
    _attr_translation_key = "grid_state"
    _attr_device_class = SensorDeviceClass.ENUM
    _attr_options = GRID_STATES

    def __init__(
        self, coordinator: Any, system_id: int, device: DeviceInfo, unique_id: str
    ) -> None:
        super().__init__(coordinator)
        self._system_id = system_id
        self._attr_unique_id = unique_id
        self._attr_device_info = device

    @property
    def native_value(self) -> str | None:
        settings = (self.coordinator.data or {}).get(self._system_id)
        if settings is None:
            return None
        return {GridState.ON_GRID: "on_grid", GridState.OFF_GRID: "off_grid"}.get(
            settings.grid.grid_state, "unknown"
        )


async def async_setup_entry(
    hass: HomeAssistant, entry: EnphaseConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    """The sensors the entry's access allows."""
    runtime = entry.runtime_data
    allowed = runtime.access.allowed
    entities: list[SensorEntity] = []
    for system in runtime.systems.values():
        sid = system.system_id
        device = system_device(system)
        streams: list[tuple[str, DeviceInfo, Callable[[str], str], int | None]] = [
            (stream_key(sid, BATTERY), device, partial(system_unique_id, system), None)
        ]
        if Access.DEVICE in allowed:
            streams.extend(
                (
                    stream_key(sid, encharge.serial),
                    encharge_device(system, encharge),
                    partial(encharge_unique_id, encharge),
                    encharge.device_id,
                )
                for encharge in system.encharges
            )
        for stream, stream_device, unique, device_id in streams:
            for key, value in (
                ("soc", _soc),
                ("charged_energy", _charged),
                ("discharged_energy", _discharged),
            ):
                entities.append(
                    StreamSensor(runtime.history, key, stream, stream_device, unique(key), value)
                )
            if device_id is not None or stream.endswith(f"/{BATTERY}"):
                for key in ("battery_power", "battery_state"):
                    entities.append(
                        NowSensor(runtime.now, key, sid, device_id, stream_device, unique(key))
                    )
        if runtime.settings is not None and Access.CONFIG in allowed:
            entities.append(
                GridSensor(runtime.settings, sid, device, system_unique_id(system, "grid_state"))
            )
    async_add_entities(entities)


def _soc(reading: StreamReading) -> int | None:
    return reading.soc_percent


def _charged(reading: StreamReading) -> int:
    return reading.charged_wh


def _discharged(reading: StreamReading) -> int:
    return reading.discharged_wh
