"""OAuth2 for the API: tokens and their storage (:mod:`.tokens`), one call to the token
endpoint with its retries (:mod:`.endpoint`), the refresh ahead of expiry
(:mod:`.refresher`) and the :class:`TokenManager` that owns them (:mod:`.manager`).

May import ``util``, ``exceptions``, ``models`` (argument checks) and ``http`` (the retry
engine).
"""

from __future__ import annotations

from enphase_battery.auth.manager import (
    DEFAULT_AUTHORIZE_URL,
    DEFAULT_REDIRECT_URI,
    DEFAULT_TOKEN_URL,
    TokenManager,
)
from enphase_battery.auth.tokens import FileTokenStore, OAuth2Token, TokenStore
from enphase_battery.http.calls import AccessTokenProvider

__all__ = [
    "DEFAULT_AUTHORIZE_URL",
    "DEFAULT_REDIRECT_URI",
    "DEFAULT_TOKEN_URL",
    "AccessTokenProvider",
    "FileTokenStore",
    "OAuth2Token",
    "TokenManager",
    "TokenStore",
]
