"""The OAuth2 authority: client credentials, authorization codes and token lifetimes.

Access tokens expire after a lifetime in REAL (monotonic) time, so a client's own
refresh logic, which reads the wall clock, is what gets exercised.  Refresh tokens
rotate: each refresh kills the token it used.  Refresh tokens never expire here.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from typing import Any

__all__ = ["OAuthAuthority", "OAuthError"]


class OAuthError(Exception):
    """A refused OAuth request: HTTP status plus the RFC 6749 error body."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.body = {"error": error, "error_description": description}


class OAuthAuthority:
    """Issues, rotates, validates and revokes the simulator's tokens."""

    def __init__(
        self, *, client_id: str, client_secret: str, access_lifetime_s: float, enl_uid: int
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_lifetime_s = access_lifetime_s
        self.enl_uid = enl_uid
        self._access: dict[str, float] = {}  # token -> monotonic expiry
        self._refresh: set[str] = set()
        self._codes: dict[str, str] = {}  # code -> redirect_uri

    # -- credentials ------------------------------------------------------------------

    def check_basic(self, header: str | None) -> None:
        """Raise 401 ``invalid_client`` unless ``header`` is this client's Basic auth."""
        if not header or not header.startswith("Basic "):
            raise OAuthError(401, "invalid_client", "Client authentication is required")
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError(401, "invalid_client", "Bad client credentials") from None
        client_id, _, secret = decoded.partition(":")
        if not (
            secrets.compare_digest(client_id, self.client_id)
            and secrets.compare_digest(secret, self.client_secret)
        ):
            raise OAuthError(401, "invalid_client", "Bad client credentials")

    # -- grants -----------------------------------------------------------------------

    def authorize(self, client_id: str, redirect_uri: str) -> str:
        """Auto-approve the homeowner's consent; returns a single-use code."""
        if client_id != self.client_id:
            raise OAuthError(400, "invalid_client", "Unknown client_id")
        code = secrets.token_urlsafe(8)
        self._codes[code] = redirect_uri
        return code

    def exchange_code(self, code: str, redirect_uri: str) -> dict[str, Any]:
        """``grant_type=authorization_code``: the code is consumed whatever the outcome."""
        expected = self._codes.pop(code, None)
        if expected is None:
            raise OAuthError(400, "invalid_grant", "Invalid authorization code")
        if redirect_uri != expected:
            raise OAuthError(400, "invalid_grant", "Redirect URI mismatch")
        return self.issue()

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        """``grant_type=refresh_token`` with rotation: the old refresh token dies."""
        if refresh_token not in self._refresh:
            raise OAuthError(400, "invalid_grant", "Invalid refresh token")
        self._refresh.discard(refresh_token)
        return self.issue()

    def issue(self) -> dict[str, Any]:
        """A new token pair, as the token endpoint's JSON body."""
        access = secrets.token_urlsafe(32)
        refresh = secrets.token_urlsafe(32)
        self._access[access] = time.monotonic() + self.access_lifetime_s
        self._refresh.add(refresh)
        lifetime = self.access_lifetime_s
        return {
            "access_token": access,
            "token_type": "bearer",
            "refresh_token": refresh,
            "expires_in": int(lifetime) if float(lifetime).is_integer() else lifetime,
            "scope": "read write",
            "enl_uid": str(self.enl_uid),
            "enl_cid": "1",
            "enl_password_last_changed": "1700000000",
            "is_internal_app": False,
            "app_type": "system",
            "jti": secrets.token_hex(16),
        }

    # -- validation -------------------------------------------------------------------

    def access_token_valid(self, token: str) -> bool:
        """Whether ``token`` was issued, is not revoked and has not expired."""
        expiry = self._access.get(token)
        if expiry is None:
            return False
        if time.monotonic() >= expiry:
            del self._access[token]
            return False
        return True

    def expire_access_tokens(self) -> None:
        """Expire every access token now (refresh tokens stay valid)."""
        now = time.monotonic()
        for token in self._access:
            self._access[token] = now

    def revoke_all(self) -> None:
        """Kill every access and refresh token and pending code."""
        self._access.clear()
        self._refresh.clear()
        self._codes.clear()
