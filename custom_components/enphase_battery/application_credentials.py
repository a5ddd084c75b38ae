"""Application credentials: the Enphase app's client id and secret, entered once."""

from __future__ import annotations

from homeassistant.components.application_credentials import (
    AuthorizationServer,
    ClientCredential,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_entry_oauth2_flow

from .oauth import EnphaseOAuth2Implementation, authorization_server


async def async_get_authorization_server(hass: HomeAssistant) -> AuthorizationServer:
    """Enphase's authorize and token URLs (or the configured ones)."""
    return authorization_server(hass)


async def async_get_auth_implementation(
    hass: HomeAssistant, auth_domain: str, credential: ClientCredential
) -> config_entry_oauth2_flow.AbstractOAuth2Implementation:
    """Enphase's token endpoint takes query parameters and Basic auth."""
    return EnphaseOAuth2Implementation(hass, auth_domain, credential)


async def async_get_description_placeholders(hass: HomeAssistant) -> dict[str, str]:
    """Where to create the app, for the credentials dialog."""
    return {
        "developer_url": "https://developer-v4.enphase.com",
        "redirect_url": config_entry_oauth2_flow.async_get_redirect_uri(hass),
    }
