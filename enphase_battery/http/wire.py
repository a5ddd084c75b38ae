"""One HTTP request to the API and a first look at its answer.

The :class:`Sender` owns the session, builds what every request carries (the ``key=``
query, the bearer header, the timeout cut to the call's budget), sends, reads the body
(never more than :data:`MAX_RESPONSE_BYTES`), maps transport failures to typed errors and
tells the quota governor what became of the request.  Which failures are tried again,
the access token and the structuring of the answer are the
:class:`~enphase_battery.http.calls.ApiCalls`'s.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

import aiohttp
from aiohttp.abc import AbstractStreamWriter
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from enphase_battery.exceptions import EnphaseConnectionError, EnphaseError, InvalidRequestError
from enphase_battery.http.errors import error_for, rate_limit_info
from enphase_battery.http.retry import CallState
from enphase_battery.http.routes import Route
from enphase_battery.quota.governor import QuotaGovernor
from enphase_battery.quota.state import Admission, Outcome

__all__ = ["MAX_RESPONSE_BYTES", "Answer", "FinalError", "Sender"]

# The client's logger: the choke point logs as the client users configure.
_LOGGER = logging.getLogger("enphase_battery.client")

#: The largest answer read; a longer one is a ResponseFormatError, never held in memory.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_CHUNK = 256 * 1024
#: Request URLs kept built (per path: a client of a fleet sees a few per system).
_URLS_MAX = 4096


class FinalError(Exception):
    """Carries an error out of a try so that it is raised without a retry."""

    def __init__(self, error: EnphaseError) -> None:
        super().__init__(type(error).__name__)
        self.error = error


class Answer(NamedTuple):
    """What came back for one request (a tuple: one is built per request, at a fifth of a
    frozen attrs class's cost)."""

    status: int
    #: ``None`` when the body was longer than :data:`MAX_RESPONSE_BYTES` (not read).
    raw: bytes | None
    #: The server's ``Date`` header, when it sent one.
    date: str | None
    #: The access token the request was sent with.
    token: str

    @property
    def server_time(self) -> float | None:
        """The server's clock (epoch seconds) from ``date``; parsed only when asked for
        (429 handling), as parsing costs more than the rest of a small call's bookkeeping."""
        return _server_time(self.date)


#: An answer without the Python frame of the named tuple's ``__new__`` (one per request).
_new_answer = tuple.__new__


class WriteNotResent(aiohttp.ClientConnectionError):
    """The connection broke after a write's body was sent; aiohttp was about to send it again."""


class SendOnce(aiohttp.BytesPayload):
    """A write's JSON body that aiohttp does not replay on its own.

    aiohttp resends a PUT once by itself when the connection drops after sending
    (RFC 9112 allows it for idempotent methods), but the server may have applied it: only
    :mod:`.retry`'s rules decide a resend.  A body that reports itself consumed once
    written makes aiohttp raise the connection's error instead, in the releases that ask
    (3.14.5 does); the releases before rebuild the request from the same body (3.10, 3.11),
    whose size a written body then refuses to give (:class:`WriteNotResent`), before any
    connection.
    """

    def __init__(self, value: Any) -> None:
        super().__init__(json.dumps(value).encode("utf-8"), content_type="application/json")
        self._written = False

    @property
    def consumed(self) -> bool:
        return self._written

    @property
    def size(self) -> int | None:
        # Read where aiohttp makes a request of this body, and only there (every release
        # from 3.10 on): a second request of a body already sent is aiohttp's own resend.
        if self._written:
            raise WriteNotResent("the connection broke after the body was sent")
        return super().size

    async def write(self, writer: AbstractStreamWriter) -> None:
        # aiohttp before 3.12 writes a payload with write() alone.
        self._written = True
        await super().write(writer)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        self._written = True
        await super().write_with_length(writer, content_length)


class Sender:
    """Sends one request and reads its answer; owns the session unless one was given."""

    def __init__(
        self,
        *,
        api_key: str,
        session: aiohttp.ClientSession | None,
        base_url: str,
        governor: QuotaGovernor,
        timeout: float,
        max_retry_time: float,
        redact: Callable[[Any], Any],
    ) -> None:
        self._api_key = api_key
        self._session = session
        self._owns_session = session is None
        self.base_url = base_url
        self.governor = governor
        self._timeout_s = timeout
        self._max_retry_time = max_retry_time
        self._redact = redact
        # What every request sends, built once: the common case (no query of its own, the
        # whole timeout left, the same token as the last request) allocates nothing and
        # spares aiohttp parsing the URL, adding the query and converting the headers.
        # aiohttp copies all of them into its own structures and never changes them.
        self._key_query: Mapping[str, str] = {"key": api_key}
        self._full_timeout = aiohttp.ClientTimeout(total=timeout)
        self._token = ""
        self._headers: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
        #: path -> (its URL, its URL with the key= query)
        self._urls: dict[str, tuple[URL, URL]] = {}
        self.requests_sent = 0

    def get_session(self) -> aiohttp.ClientSession:
        """The session requests go through (created on first use when none was given)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The current session, ``None`` before the first request or after closing."""
        return self._session

    async def close(self) -> None:
        """Close the session if this sender created it; a caller's session stays open."""
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def send(
        self,
        route: Route,
        path: str,
        params: Mapping[str, Any],
        body: Any,
        token: str,
        call: CallState,
        admission: Admission,
    ) -> Answer:
        """Send the admitted request with ``token``; any status comes back as an answer.

        Raises :class:`EnphaseConnectionError` for a transport failure (the governor is
        told when the request cannot have reached the server), :class:`FinalError` when
        the budget is spent or the URL is invalid.
        """
        deadline = call.deadline  # set at admission; CallState.remaining() inline
        left = call.budget_s if deadline is None else deadline - time.monotonic()
        if left <= 0:
            await self.governor.settle(admission, Outcome.NOT_SENT)
            raise FinalError(
                EnphaseConnectionError(
                    f"{route.method} {path}: the retry budget of"
                    f" {self._max_retry_time:g} s is spent",
                    reached_server=False,
                )
            )
        if left >= self._timeout_s:
            timeout_s, timeout = self._timeout_s, self._full_timeout
        else:
            timeout_s = left
            timeout = aiohttp.ClientTimeout(total=left)
        session = self._session or self.get_session()
        headers = self._headers if token is self._token else self._headers_for(token)
        data = SendOnce(body) if body is not None else None
        self.requests_sent += 1
        try:
            urls = self._urls.get(path) or self._urls_for(path)
        except ValueError:
            await self.governor.settle(admission, Outcome.NOT_SENT)
            raise FinalError(InvalidRequestError(f"invalid API URL {self.base_url!r}")) from None
        if params:
            url, query = urls[0], {"key": self._api_key, **params}
        else:
            url, query = urls[1], None
        started = time.perf_counter()
        try:
            async with session.request(
                route.method, url, params=query, data=data, headers=headers, timeout=timeout
            ) as response:
                status = response.status
                # Only an error needs the server's clock.
                date = None if 200 <= status < 300 else response.headers.get("Date")
                length = response.content_length
                raw: bytes | None
                if length is not None and length <= MAX_RESPONSE_BYTES:
                    raw = await response.read()  # the common case, inline: one frame fewer
                else:
                    raw = await _read_capped(response)
        except aiohttp.InvalidURL:
            await self.governor.settle(admission, Outcome.NOT_SENT)
            raise FinalError(InvalidRequestError(f"invalid API URL {self.base_url!r}")) from None
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as err:
            # Never connected: the server cannot have seen the request; it costs no quota
            # and holds no slot.
            await self.governor.settle(admission, Outcome.NOT_SENT)
            raise EnphaseConnectionError(
                f"{route.method} {path}: cannot connect to {self.base_url}: {_reason(err)}",
                reached_server=False,
            ) from None
        except TimeoutError:
            raise EnphaseConnectionError(
                f"{route.method} {path}: no answer within {timeout_s:g} s"
            ) from None
        except aiohttp.ClientError as err:
            # Not chained: aiohttp's own messages may carry the URL with its key= query.
            raise EnphaseConnectionError(
                f"{route.method} {path}: {type(err).__name__}: {self._redact(str(err))}"
            ) from None
        if _LOGGER.isEnabledFor(logging.DEBUG):
            elapsed_ms = (time.perf_counter() - started) * 1000
            _LOGGER.debug("%s %s -> %s in %.1f ms", route.method, path, status, elapsed_ms)
        if status == 429:
            await self.rate_limited(admission, raw)
        return _new_answer(Answer, (status, raw, date, token))

    def _headers_for(self, token: str) -> CIMultiDictProxy[str]:
        if token != self._token:
            self._headers = CIMultiDictProxy(
                CIMultiDict({"Authorization": f"Bearer {token}", "Accept": "application/json"})
            )
        self._token = token
        return self._headers

    def _urls_for(self, path: str) -> tuple[URL, URL]:
        if len(self._urls) >= _URLS_MAX:
            self._urls.clear()
        url = URL(self.base_url + path)
        urls = self._urls[path] = (url, url.extend_query(self._key_query))
        return urls

    async def open_stream(
        self,
        route: Route,
        path: str,
        params: Mapping[str, Any],
        headers: Mapping[str, str],
        token: str,
        client_timeout: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        """Admit and send a long-lived GET; the response comes back unread (the caller
        releases it).  A 429 is read, told to the governor and raised as its error."""
        admission = await self.governor.admit()
        self.requests_sent += 1
        query = {"key": self._api_key, **params}
        sent = {"Authorization": f"Bearer {token}", **headers}
        try:
            response = await self.get_session().request(
                route.method,
                self.base_url + path,
                params=query,
                headers=sent,
                timeout=client_timeout,
            )
        except TimeoutError:
            raise EnphaseConnectionError(f"{route.method} {path}: no answer in time") from None
        except (aiohttp.ClientConnectorError, aiohttp.InvalidURL) as err:
            await self.governor.settle(admission, Outcome.NOT_SENT)
            raise EnphaseConnectionError(
                f"{route.method} {path}: {type(err).__name__}: {self._redact(str(err))}"
            ) from None
        except aiohttp.ClientError as err:
            raise EnphaseConnectionError(
                f"{route.method} {path}: {type(err).__name__}: {self._redact(str(err))}"
            ) from None
        if response.status == 429:
            # The governor hears what the 429 said; the caller gets the usual error.
            try:
                raw = await response.read()
            finally:
                response.release()
            await self.rate_limited(admission, raw)
            raise error_for(route, path, 429, raw, redact=self._redact)
        return response

    async def rate_limited(self, admission: Admission, raw: bytes | None) -> None:
        """Tell the governor what a 429 said: a minute window, or the month spent.

        Any of the API's three 429 shapes (:func:`~.http_errors.rate_limit_info`); a
        month 429 in any of them ends the month's sending.
        """
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        info = rate_limit_info(body)
        start, end = info.period_start, info.period_end
        if info.month:
            await self.governor.month_spent(period_start=start, period_end=end, limit=info.limit)
            return
        # A minute window (or an unnamed period): the server didn't count it.
        wait = None
        if start is not None and end is not None and end > start:
            # Judged from the window's own length, not our clock against the server's.
            wait = min(end - start, max(0.0, end - self.governor.clock.time()))
        await self.governor.settle(admission, Outcome.MINUTE_LIMIT, retry_after_s=wait)


async def _read_capped(response: aiohttp.ClientResponse) -> bytes | None:
    """The body, or ``None`` when it is longer than :data:`MAX_RESPONSE_BYTES`."""
    length = response.content_length
    if length is not None:
        if length > MAX_RESPONSE_BYTES:
            return None
        return await response.read()
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            return None
    return bytes(body)


def _server_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _reason(err: aiohttp.ClientError) -> str:
    os_error = getattr(err, "os_error", None)
    if isinstance(os_error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror
    return type(err).__name__
