"""Models of the Commissioning API's battery operations (Partner plan, fact sheet §8).

* ``GET /api/v4/systems/config/{id}/tariff``: the time-of-use tariff, read-only: seasons,
  each with day groups (``weekdays``...), each with its periods, whether the battery may
  charge from the grid / discharge to the grid, and a forced ("must") charge window.
* ``GET/PUT /api/v4/activations/{activation_id}/battery_mode``: ``CFG_allowed`` (charge
  from grid) and ``DTG_allowed`` (discharge to grid).

Every field the official example may leave out is optional: a tariff with no sell
seasons, a day group without a must-charge window, a period without a rate all read.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal

import attrs

__all__ = [
    "BatteryModeSettings",
    "BatteryModeUpdate",
    "SystemTariff",
    "Tariff",
    "TariffDayGroup",
    "TariffPeriod",
    "TariffRate",
    "TariffSeason",
    "TariffStorageSettings",
    "TariffTask",
]


@attrs.frozen
class TariffPeriod:
    """One period of a day group: from ``start`` until the next period's start.

    ``start`` is a time of day; the API sends it as minutes after midnight (``240`` is
    04:00).  ``rate`` is the price per kWh in the tariff's currency, as a ``Decimal``
    (the API sends it as a string).
    """

    id: str | None = None
    start: time | None = None
    rate: Decimal | None = None


@attrs.frozen
class TariffDayGroup:
    """The days of a season that share one schedule (``weekdays``, ``weekend``...).

    ``must_charge_start`` and ``must_charge_duration`` are the forced-charge window as
    the API sends them, integers [inferred: minutes after midnight and minutes; the spec
    gives no unit]; ``0`` and ``0`` mean none.  :attr:`must_charge_window` reads them.
    """

    id: str | None = None
    #: Day names as the API spells them (``("Mon", "Tue", ...)``), from ``"Mon,Tue,..."``.
    days: tuple[str, ...] = ()
    must_charge_start: int | None = None
    must_charge_duration: int | None = None
    periods: tuple[TariffPeriod, ...] = ()
    enable_charge_from_grid: bool | None = None
    enable_discharge_to_grid: bool | None = None

    @property
    def must_charge_window(self) -> tuple[time, timedelta] | None:
        """The forced charge's start (time of day) and length; ``None`` when there is none."""
        start, duration = self.must_charge_start, self.must_charge_duration
        if start is None or not duration or not 0 <= start < 1440 or duration < 0:
            return None
        return time(start // 60, start % 60), timedelta(minutes=duration)


@attrs.frozen
class TariffSeason:
    """A season: from ``start`` (``"month/day"``, e.g. ``"3/1"``) until the next one."""

    id: str | None = None
    start: str | None = None
    days: tuple[TariffDayGroup, ...] = ()
    #: The schema also puts the grid flags on a season; the example on its day groups.
    enable_charge_from_grid: bool | None = None
    enable_discharge_to_grid: bool | None = None

    @property
    def start_month_day(self) -> tuple[int, int] | None:
        """``(month, day)`` of :attr:`start`; ``None`` when absent or unreadable."""
        if self.start is None:
            return None
        month, _, day = self.start.partition("/")
        try:
            return int(month), int(day)
        except ValueError:
            return None


@attrs.frozen
class TariffRate:
    """A flat rate: ``rate`` to buy, ``sell`` (the feed-in tariff) per kWh."""

    rate: Decimal | None = None
    sell: Decimal | None = None


@attrs.frozen
class TariffStorageSettings:
    """The battery settings the tariff was set up with (``mode``, ``reserved_soc`` %)."""

    mode: str | None = None
    reserved_soc: int | None = None


@attrs.frozen
class Tariff:
    """The time-of-use tariff: buy seasons and sell seasons.

    ``currency`` is the ISO code from ``currency.code`` (the example) or
    ``currency_type.code`` (the schema).
    """

    currency: str | None = None
    single_rate: TariffRate | None = None
    seasons: tuple[TariffSeason, ...] = ()
    seasons_sell: tuple[TariffSeason, ...] = ()
    storage_settings: TariffStorageSettings | None = None


@attrs.frozen
class TariffTask:
    """The latest tariff update task (``status``: ``pending``...)."""

    status: str | None = None
    created_at: datetime | None = None


@attrs.frozen
class SystemTariff:
    """``GET /systems/config/{id}/tariff``: ``{"tariff": {...}, "task": {...}}``."""

    tariff: Tariff = Tariff()
    task: TariffTask | None = None


@attrs.frozen
class BatteryModeSettings:
    """``GET /activations/{activation_id}/battery_mode``.

    ``cfg_allowed`` is the API's ``CFG_allowed`` (the battery may charge from the grid),
    ``dtg_allowed`` its ``DTG_allowed`` (the battery may discharge to the grid).
    """

    cfg_allowed: bool | None = None
    dtg_allowed: bool | None = None


@attrs.frozen
class BatteryModeUpdate:
    """What ``PUT .../battery_mode`` answers: ``{"message": "Battery mode updated
    successfully"}``, before the gateway has applied it.

    ``message`` is ``None`` when the answer was unreadable and the state was read back
    instead (the write is never sent twice).
    """

    message: str | None = None
