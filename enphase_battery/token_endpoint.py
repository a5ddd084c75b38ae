"""One call to the OAuth2 token endpoint, with retries of its transient failures.

Token requests carry their parameters in the query string and the client credentials in
a Basic ``Authorization`` header, with an empty body (fact sheet §1).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
import backoff

from .exceptions import (
    ApiError,
    AuthenticationError,
    EnphaseConnectionError,
    EnphaseError,
    ResponseFormatError,
)
from .redaction import scrub
from .tokens import OAuth2Token

__all__ = ["TokenEndpoint"]

# The token manager's logger: users configure "enphase_battery.auth".
_LOGGER = logging.getLogger("enphase_battery.auth")


class _TransientTokenError(EnphaseError):
    """A token-endpoint failure worth retrying (5xx, 429, network); internal only."""

    def __init__(self, cause: EnphaseError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class TokenEndpoint:
    """Where and how tokens are requested: URL, client credentials, timeout, retry bounds."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        timeout: float,
        max_tries: int,
        max_retry_time: float,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_tries = max(1, max_tries)
        self._max_retry_time = max_retry_time

    def __repr__(self) -> str:
        return f"TokenEndpoint({self.token_url!r}, client_id={self.client_id!r})"

    async def request(
        self,
        session: aiohttp.ClientSession,
        params: dict[str, str],
        secrets: tuple[str, ...],
    ) -> OAuth2Token:
        """A new token for ``params`` (a grant); ``secrets`` are scrubbed from errors."""

        @backoff.on_exception(
            backoff.expo,
            _TransientTokenError,
            max_tries=self._max_tries,
            max_time=self._max_retry_time,
            jitter=backoff.full_jitter,
            on_backoff=_log_token_retry,
            logger=None,
        )
        async def attempt() -> OAuth2Token:
            return await self._request_once(session, params, secrets)

        try:
            return await attempt()
        except _TransientTokenError as err:
            raise err.cause from None

    async def _request_once(
        self,
        session: aiohttp.ClientSession,
        params: dict[str, str],
        secrets: tuple[str, ...],
    ) -> OAuth2Token:
        headers = {
            "Authorization": aiohttp.encode_basic_auth(self.client_id, self._client_secret),
            "Accept": "application/json",
        }
        grant = params.get("grant_type", "")
        path = f"token ({grant})"
        try:
            async with session.post(
                self.token_url, params=params, headers=headers, timeout=self._timeout
            ) as response:
                status = response.status
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError) as err:
            # Never chain: aiohttp's messages can include the URL and its query string.
            raise _TransientTokenError(
                EnphaseConnectionError(f"token endpoint unreachable: {type(err).__name__}")
            ) from None
        body: Any
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw[:500].decode("utf-8", "replace")
        if 200 <= status < 300:
            if not isinstance(body, dict):
                raise _TransientTokenError(
                    ResponseFormatError(
                        "token response is not a JSON object",
                        status=status,
                        method="POST",
                        path=path,
                    )
                )
            return OAuth2Token.from_response(body)
        body = scrub(body, (self._client_secret, *secrets, *params.values()))
        if status == 429 or status >= 500:
            raise _TransientTokenError(
                ApiError(
                    "token endpoint failed", status=status, body=body, method="POST", path=path
                )
            )
        error = body.get("error") if isinstance(body, dict) else None
        if grant == "refresh_token":
            raise AuthenticationError(
                "the refresh token was refused"
                + (f" ({error})" if error else "")
                + ": it lapses after 30 days unused or once rotated; sign in again with"
                " `enphase-battery auth login`",
                status=status,
                body=body,
                method="POST",
                path=path,
            )
        raise AuthenticationError(
            "the token request was refused" + (f" ({error})" if error else ""),
            status=status,
            body=body,
            method="POST",
            path=path,
        )


def _log_token_retry(details: Any) -> None:
    exc = details.get("exception")
    _LOGGER.debug(
        "retrying token request (try %s, waiting %.2f s): %s",
        details.get("tries"),
        details.get("wait", 0.0),
        exc,
    )
