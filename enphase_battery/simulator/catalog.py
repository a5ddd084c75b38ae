"""The simulated fleet's fixed facts: battery hardware and the sites they sit in.

Capacities and power limits are Enphase datasheet values, so telemetry magnitudes look
like the real thing.  Everything here is static data; state lives in :mod:`.battery`.
"""

from __future__ import annotations

import attrs

__all__ = [
    "BATTERY_MODELS",
    "ENCHARGE_3",
    "ENCHARGE_10",
    "IQ_BATTERY_5P",
    "SITE_TEMPLATES",
    "BatteryModel",
    "SiteTemplate",
    "model_for_capacity",
]


@attrs.frozen
class BatteryModel:
    """One Encharge / IQ Battery product: what ``/devices`` lists and the physics uses."""

    product_name: str
    sku: str
    part_number: str
    capacity_wh: int
    #: Continuous charge and discharge power limit.
    max_power_w: int


ENCHARGE_3 = BatteryModel("Encharge 3", "ENCHARGE-3-1P-NA", "830-01760-r37", 3360, 1280)
ENCHARGE_10 = BatteryModel("Encharge 10", "ENCHARGE-10-1P-NA", "830-01761-r37", 10080, 3840)
IQ_BATTERY_5P = BatteryModel("IQ Battery 5P", "IQBATTERY-5P-1P-NA", "830-02101-r03", 5000, 3840)

BATTERY_MODELS: tuple[BatteryModel, ...] = (ENCHARGE_3, ENCHARGE_10, IQ_BATTERY_5P)


def model_for_capacity(capacity_wh: int) -> BatteryModel:
    """The catalogue model of that capacity, or a generic one scaled like an IQ Battery."""
    for model in BATTERY_MODELS:
        if model.capacity_wh == capacity_wh:
            return model
    if capacity_wh <= 0:
        raise ValueError("capacity_wh must be positive")
    # Roughly 0.77 C, the IQ Battery 5P's ratio.
    return BatteryModel(
        "IQ Battery",
        "IQBATTERY-GEN",
        "830-00000-r00",
        capacity_wh,
        max(500, int(capacity_wh * 0.768)),
    )


@attrs.frozen
class SiteTemplate:
    """A household: where it is, its PV size and consumption, and its battery model."""

    name: str
    timezone: str
    city: str
    state: str
    country: str
    postal_code: str
    connection_type: str
    pv_peak_w: int
    #: Scales the household load profile (1.0 is a ~12 kWh/day home).
    load_scale: float
    battery_model: BatteryModel
    battery_mode: str
    reserve_soc: int
    charge_from_grid: str


# Cycled when more systems are requested than there are templates.  Timezones span
# both hemispheres and both sides of UTC, so day boundaries are exercised properly.
SITE_TEMPLATES: tuple[SiteTemplate, ...] = (
    SiteTemplate(
        "Garcia Residence",
        "America/Los_Angeles",
        "Fresno",
        "CA",
        "US",
        "93650",
        "ethernet",
        7600,
        1.0,
        IQ_BATTERY_5P,
        "Self-consumption",
        20,
        "disabled",
    ),
    SiteTemplate(
        "Nguyen Home",
        "Australia/Sydney",
        "Sydney",
        "NSW",
        "AU",
        "2000",
        "wifi",
        6600,
        0.9,
        ENCHARGE_10,
        "Savings Mode",
        30,
        "enabled",
    ),
    SiteTemplate(
        "De Vries",
        "Europe/Amsterdam",
        "Utrecht",
        "UT",
        "NL",
        "3511",
        "cellular",
        5200,
        0.8,
        ENCHARGE_3,
        "Self-consumption",
        10,
        "disabled",
    ),
    SiteTemplate(
        "Okafor Farm",
        "America/New_York",
        "Albany",
        "NY",
        "US",
        "12207",
        "ethernet",
        11400,
        1.6,
        ENCHARGE_10,
        "Full Backup",
        100,
        "enabled",
    ),
    SiteTemplate(
        "Kealoha",
        "Pacific/Honolulu",
        "Hilo",
        "HI",
        "US",
        "96720",
        "wifi",
        8200,
        1.1,
        IQ_BATTERY_5P,
        "Self-consumption",
        25,
        "disabled",
    ),
)
