"""One call to the OAuth2 token endpoint, with retries of its transient failures.

Token requests carry their parameters in the query string and the client credentials in
a Basic ``Authorization`` header, with an empty body (fact sheet §1).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Generator
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from enphase_battery.auth.tokens import OAuth2Token
from enphase_battery.exceptions import (
    ApiError,
    AuthenticationError,
    EnphaseConnectionError,
    EnphaseError,
    InvalidRequestError,
    ResponseFormatError,
)
from enphase_battery.http.retry import jittered_waits
from enphase_battery.util.redaction import printable, scrub

__all__ = ["TokenEndpoint", "basic_authorization"]

# The token manager's logger: users configure "enphase_battery.auth".
_LOGGER = logging.getLogger("enphase_battery.auth")

#: The shortest try worth starting: with less of the budget left, the last error stands.
_MIN_TRY_S = 0.05
#: A token answer is a few hundred bytes; anything past this is not a token.
_MAX_TOKEN_RESPONSE_BYTES = 64 * 1024


class _TransientTokenError(EnphaseError):
    """A token-endpoint failure worth retrying (5xx, 429, network); internal only."""

    def __init__(self, cause: EnphaseError) -> None:
        super().__init__(str(cause))
        self.cause = cause


def basic_authorization(login: str, password: str) -> str:
    """The ``Authorization`` value of HTTP Basic auth (RFC 7617), credentials in UTF-8.

    What ``aiohttp.encode_basic_auth`` returns, on every aiohttp the SDK supports: that
    function came in aiohttp 3.14, and ``aiohttp.BasicAuth(...).encode()``, the older way,
    encodes Latin-1 and warns of its removal from 3.14.
    """
    if ":" in login:
        raise ValueError('A ":" is not allowed in login (RFC 7617#section-2)')
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


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
        self._timeout_s = timeout
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
        """A new token for ``params`` (a grant); ``secrets`` are scrubbed from errors.

        All tries together end within ``max_retry_time``: each try's timeout is cut to
        what is left.  An endpoint that cannot be connected to is tried twice at most.
        """
        # Loaded with the first token request: a client whose token stays fresh never
        # pays for the import.
        import backoff

        deadline = time.monotonic() + self._max_retry_time
        last: list[_TransientTokenError] = []
        connect_failures = 0

        def waits() -> Generator[float, None, None]:
            # The retry engine's waits (1 s doubling, full jitter), each cut to half of
            # what is left of the budget, so that a retry still has time to get its answer.
            yield 0.0  # primed by backoff, never used as a wait
            for wait in jittered_waits(1.0):
                left = deadline - time.monotonic()
                yield min(wait, max(0.0, left / 2))

        @backoff.on_exception(
            waits,
            _TransientTokenError,
            max_tries=self._max_tries,
            max_time=self._max_retry_time,
            jitter=None,
            on_backoff=_log_token_retry,
            logger=None,
        )
        async def attempt() -> OAuth2Token:
            nonlocal connect_failures
            left = deadline - time.monotonic()
            if last and left < _MIN_TRY_S:
                raise last[-1].cause
            try:
                return await self._request_once(
                    session, params, secrets, min(self._timeout_s, max(left, _MIN_TRY_S))
                )
            except _TransientTokenError as err:
                if isinstance(err.cause, EnphaseConnectionError) and not (err.cause.reached_server):
                    connect_failures += 1
                    if connect_failures > 1:
                        raise err.cause from None
                last.append(err)
                raise

        try:
            return await attempt()
        except _TransientTokenError as err:
            raise err.cause from None

    async def _request_once(
        self,
        session: aiohttp.ClientSession,
        params: dict[str, str],
        secrets: tuple[str, ...],
        timeout_s: float,
    ) -> OAuth2Token:
        headers = {
            "Authorization": basic_authorization(self.client_id, self._client_secret),
            "Accept": "application/json",
        }
        grant = params.get("grant_type", "")
        path = f"token ({grant})"
        try:
            async with session.post(
                self.token_url,
                params=params,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                status = response.status
                raw = bytearray()
                async for chunk in response.content.iter_chunked(8192):
                    raw += chunk
                    if len(raw) > _MAX_TOKEN_RESPONSE_BYTES:
                        raise _TransientTokenError(
                            ResponseFormatError(
                                "token response is implausibly large; the rest was not read",
                                status=status,
                                method="POST",
                                path=path,
                            )
                        )
        except aiohttp.InvalidURL:
            raise InvalidRequestError(f"invalid token URL {self.token_url!r}") from None
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as err:
            raise _TransientTokenError(
                EnphaseConnectionError(
                    f"token endpoint unreachable: cannot connect to {_origin(self.token_url)}"
                    f" ({type(err).__name__})",
                    reached_server=False,
                )
            ) from None
        except TimeoutError:
            raise _TransientTokenError(
                EnphaseConnectionError(f"token endpoint: no answer within {timeout_s:g} s")
            ) from None
        except aiohttp.ClientError as err:
            # Never chain: aiohttp's messages can include the URL and its query string.
            raise _TransientTokenError(
                EnphaseConnectionError(f"token endpoint unreachable: {type(err).__name__}")
            ) from None
        body: Any
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = bytes(raw[:500]).decode("utf-8", "replace")
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
        where: dict[str, Any] = {"status": status, "body": body, "method": "POST", "path": path}
        if status == 429 or status >= 500:
            raise _TransientTokenError(ApiError("token endpoint failed", **where))
        error = body.get("error") if isinstance(body, dict) else None
        error = printable(error, 80) if isinstance(error, str) else None
        if error == "invalid_client" or status == 401:
            raise AuthenticationError(
                "the client id or client secret was refused by the token endpoint"
                + (f" ({error})" if error else "")
                + ": check the app's client id and client secret; signing in again cannot"
                " help",
                credential="client_secret",
                **where,
            )
        if grant == "refresh_token":
            raise AuthenticationError(
                "the refresh token was refused"
                + (f" ({error})" if error else "")
                + ": it lapses after 30 days unused or once rotated; sign in again with"
                " `enphase-battery auth login`",
                credential="refresh_token",
                **where,
            )
        raise AuthenticationError(
            "the token request was refused" + (f" ({error})" if error else ""),
            credential="authorization_code" if grant == "authorization_code" else None,
            **where,
        )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else "(no host)"


def _log_token_retry(details: Any) -> None:
    exc = details.get("exception")
    _LOGGER.debug(
        "retrying token request (try %s, waiting %.2f s): %s",
        details.get("tries"),
        details.get("wait", 0.0),
        exc,
    )
