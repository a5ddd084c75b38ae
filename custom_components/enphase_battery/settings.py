"""The integration's YAML settings: where Enphase's API and OAuth2 endpoints are.

Nothing to set for Enphase itself.  A test (or a proxy) points the integration elsewhere::

    enphase_battery:
      base_url: http://127.0.0.1:8787
      authorize_url: http://127.0.0.1:8787/oauth/authorize
      token_url: http://127.0.0.1:8787/oauth/token
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv

from .const import CONF_AUTHORIZE_URL, CONF_BASE_URL, CONF_TOKEN_URL, DEFAULT_BASE_URL, DOMAIN

CONFIG_SCHEMA = vol.Schema(
    {
        DOMAIN: vol.Schema(
            {
                vol.Optional(CONF_BASE_URL): cv.url,
                vol.Optional(CONF_AUTHORIZE_URL): cv.url,
                vol.Optional(CONF_TOKEN_URL): cv.url,
            }
        )
    },
    extra=vol.ALLOW_EXTRA,
)

_SETTINGS_KEY = f"{DOMAIN}_settings"


def store_settings(hass: HomeAssistant, config: dict[str, Any]) -> None:
    """Keep the ``enphase_battery:`` YAML block for the flows and entries."""
    hass.data[_SETTINGS_KEY] = dict(config.get(DOMAIN, {}))


def integration_settings(hass: HomeAssistant) -> dict[str, Any]:
    """The YAML settings (empty: Enphase's own endpoints)."""
    settings: dict[str, Any] = hass.data.get(_SETTINGS_KEY, {})
    return settings


def api_base_url(hass: HomeAssistant) -> str:
    """The API's base URL (``/api/v4/...`` is appended by the SDK)."""
    return str(integration_settings(hass).get(CONF_BASE_URL, DEFAULT_BASE_URL))
