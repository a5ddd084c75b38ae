"""Constants of the Enphase Battery integration: names, defaults and the plan table."""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import Final

DOMAIN: Final = "enphase_battery"

# Entry data keys (the OAuth2 token is HA's own "token" key).
CONF_API_KEY: Final = "api_key"
CONF_PLAN: Final = "plan"
CONF_HISTORY_DAYS: Final = "history_days"
#: Where the history starts when the checkpoint is empty (ISO 8601, set by the flow).
CONF_HISTORY_START: Final = "history_start"
CONF_BASE_URL: Final = "base_url"
CONF_AUTHORIZE_URL: Final = "authorize_url"
CONF_TOKEN_URL: Final = "token_url"
CONF_SYSTEMS: Final = "systems"

#: Enphase's own endpoints; ``configuration.yaml`` may point them elsewhere (a simulator).
DEFAULT_BASE_URL: Final = "https://api.enphaseenergy.com"
DEFAULT_AUTHORIZE_URL: Final = "https://api.enphaseenergy.com/oauth/authorize"
DEFAULT_TOKEN_URL: Final = "https://api.enphaseenergy.com/oauth/token"

PLANS: Final = ("watt", "kilowatt", "megawatt", "partner")
DEFAULT_HISTORY_DAYS: Final = 7
#: The API serves at most two years back.
MAX_HISTORY_DAYS: Final = 730

# How the month's quota of one API key is shared (see quota.py).
#: Background work: the telemetry pollers (history and the energy/SoC sensors).
POLLER_SHARE: Final = 0.6
#: The coordinators' reads (power now, settings, grid state).
COORDINATOR_SHARE: Final = 0.3
#: Left for writes (Storm Guard, profile, reserve), retries and discovery.

#: Coordinators never poll faster than this, whatever the plan allows.
MIN_NOW_INTERVAL: Final = timedelta(minutes=1)
MIN_SETTINGS_INTERVAL: Final = timedelta(minutes=5)

#: Storage version of an entry's store (checkpoint and hourly state).
STORE_VERSION: Final = 1


class Access(enum.StrEnum):
    """The API's access controls, as the plans grant them (fact sheet §2)."""

    #: Site-level monitoring: battery telemetry, latest_telemetry (Watt and up).
    SITE = "site"
    #: Device-level monitoring: per-Encharge telemetry (Kilowatt and up).
    DEVICE = "device"
    #: System configuration: battery settings, Storm Guard, grid status (Megawatt and up).
    CONFIG = "config"


#: What each plan may call.  The homeowner's grant can still refuse any of it (a 403).
PLAN_ACCESS: Final[dict[str, frozenset[Access]]] = {
    "watt": frozenset({Access.SITE}),
    "kilowatt": frozenset({Access.SITE, Access.DEVICE}),
    "megawatt": frozenset({Access.SITE, Access.DEVICE, Access.CONFIG}),
    "partner": frozenset({Access.SITE, Access.DEVICE, Access.CONFIG}),
}

#: The cheapest plan that has each access (for the repair issue's text).
PLAN_FOR_ACCESS: Final[dict[Access, str]] = {
    Access.SITE: "watt",
    Access.DEVICE: "kilowatt",
    Access.CONFIG: "megawatt",
}
