"""The async client: one awaitable method per battery operation of the v4 API.

Every request goes through :meth:`EnphaseClient._request`, the single choke point:
monthly quota -> rate limiter -> access token -> send -> (one refresh-and-retry on 401)
-> map errors -> structure into a model, with ``backoff`` retrying the transient failures
(429, 5xx, timeouts, connection errors, a 2xx with a broken body).
"""

from __future__ import annotations

import contextvars
import json
import logging
import random
import time
from collections.abc import Generator, Mapping
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
import attrs
import backoff

from . import validation
from .auth import AccessTokenProvider, TokenManager
from .exceptions import (
    ApiError,
    AuthenticationError,
    EnphaseConnectionError,
    EnphaseError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ResponseFormatError,
)
from .limits import MonthlyQuota, RateLimits
from .models import (
    BatteryLifetime,
    BatteryMode,
    BatterySettings,
    BatteryTelemetry,
    EnchargeTelemetry,
    Granularity,
    GridStatus,
    LoadControl,
    LoadControlMode,
    StormGuard,
    System,
    SystemDevices,
    converter,
)
from .redaction import scrub
from .routes import ROUTES, Route

__all__ = ["DEFAULT_BASE_URL", "EnphaseClient"]

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")

DEFAULT_BASE_URL = "https://api.enphaseenergy.com"
_PAGE_SIZE = 100
_MAX_BODY_IN_ERROR = 2000


#: When the current public call started (monotonic), for the retry budget.
_CALL_STARTED: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "enphase_battery_call_started", default=None
)


class _Final(Exception):
    """Carries an error past ``backoff`` so that it is raised without a retry."""

    def __init__(self, error: EnphaseError) -> None:
        super().__init__(type(error).__name__)
        self.error = error


@attrs.frozen
class _SystemsPage:
    total: int = 0
    current_page: int | None = None
    systems: tuple[System, ...] = ()


class EnphaseClient:
    """Async client for the battery operations of the Enphase v4 Monitoring API.

    Args:
        api_key: the app's API key, sent as ``key=`` on every call.
        auth: a :class:`TokenManager`, or any coroutine function returning a valid access
            token (for hosts that own the OAuth2 session, such as Home Assistant).
        session: an ``aiohttp.ClientSession`` to use; the client closes only a session it
            created itself.
        base_url: the API host (the simulator's ``base_url`` in tests and demos).
        rate_limits: the plan's limits (default :attr:`RateLimits.WATT`); every request
            passes its limiter and counts against its monthly quota.
        timeout: seconds for one HTTP request.
        max_retries: retries after the first try for transient failures.
        max_retry_time: seconds all tries of one call may take; a 429 whose reset lies
            further away raises :class:`RateLimitError` at once instead of hanging.
        quota_used: requests already spent this month (by earlier runs, other programs).

    Use as ``async with EnphaseClient(...) as client:`` or call :meth:`close`.
    """

    def __init__(
        self,
        *,
        api_key: str,
        auth: TokenManager | AccessTokenProvider,
        session: aiohttp.ClientSession | None = None,
        base_url: str = DEFAULT_BASE_URL,
        rate_limits: RateLimits = RateLimits.WATT,
        timeout: float = 30.0,
        max_retries: int = 4,
        max_retry_time: float = 120.0,
        quota_used: int = 0,
    ) -> None:
        if not api_key or not isinstance(api_key, str):
            raise InvalidRequestError("api_key is required")
        if isinstance(auth, TokenManager):
            self._token_manager: TokenManager | None = auth
            self._token_provider: AccessTokenProvider = auth.access_token
        elif callable(auth):
            self._token_manager = None
            self._token_provider = auth
        else:
            raise InvalidRequestError("auth must be a TokenManager or a coroutine function")
        if not isinstance(rate_limits, RateLimits):
            raise InvalidRequestError("rate_limits must be a RateLimits")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise InvalidRequestError("max_retries must be an int >= 0")
        if not timeout > 0 or not max_retry_time > 0:
            raise InvalidRequestError("timeout and max_retry_time must be positive")
        self._api_key = api_key
        self._session = session
        self._owns_session = session is None
        self.base_url = base_url.rstrip("/")
        self.rate_limits = rate_limits
        self._limiter = rate_limits.make_limiter()
        self._quota = MonthlyQuota(rate_limits.monthly_quota, used=quota_used)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._timeout_s = timeout
        self.max_retries = max_retries
        self.max_retry_time = max_retry_time
        self._closed = False
        self.requests_sent = 0
        self._with_retries = backoff.on_exception(
            # backoff sends each failure into the generator (typeshed says it sends None).
            self._retry_waits,  # type: ignore[arg-type]
            EnphaseError,
            max_tries=max_retries + 1,
            max_time=max_retry_time,
            giveup=self._giveup,
            jitter=None,
            on_backoff=self._log_retry,
            logger=None,
        )(self._attempt)

    def __repr__(self) -> str:
        return f"EnphaseClient(base_url={self.base_url!r}, rate_limits={self.rate_limits!r})"

    # -- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session if the client created it; a caller's session stays open."""
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    @property
    def token_manager(self) -> TokenManager | None:
        """The :class:`TokenManager` given as ``auth`` (``None`` for a token provider)."""
        return self._token_manager

    @property
    def quota_remaining(self) -> int | None:
        """Requests left in this month's quota (``None`` when the plan has no monthly cap)."""
        return self._quota.remaining

    @property
    def quota_used(self) -> int:
        """Requests counted against this month's quota."""
        return self._quota.used

    # -- discovery --------------------------------------------------------------------

    async def list_systems(self) -> tuple[System, ...]:
        """Every system the token can see, all pages fetched."""
        route = ROUTES["list_systems"]
        systems: list[System] = []
        page = 1
        while True:
            result = await self._request(
                route,
                route.path(),
                params={"page": page, "size": _PAGE_SIZE},
                parse=_SystemsPage,
            )
            systems.extend(result.systems)
            if not result.systems or len(systems) >= result.total:
                return tuple(systems)
            page += 1

    async def get_system_devices(self, system_id: int) -> SystemDevices:
        """A system's active devices; ``.encharge_serials`` lists its Encharges."""
        return await self._call("get_system_devices", SystemDevices, system_id)

    # -- configuration ------------------------------------------------------------------

    async def get_system_battery_settings(self, system_id: int) -> BatterySettings:
        """Battery profile, reserve and energy independence (Megawatt/Partner plans)."""
        return await self._call("get_system_battery_settings", BatterySettings, system_id)

    async def update_system_battery_settings(
        self,
        system_id: int,
        *,
        battery_mode: BatteryMode | str | None = None,
        reserve_soc: int | None = None,
        energy_independence: bool | None = None,
    ) -> BatterySettings:
        """Change any of the profile, the backup reserve (0-100 %) and energy independence.

        Only the arguments given are sent (a partial update); at least one is required.
        """
        body: dict[str, Any] = {}
        if battery_mode is not None:
            body["battery_mode"] = validation.battery_mode(battery_mode).value
        if reserve_soc is not None:
            body["reserve_soc"] = validation.percent("reserve_soc", reserve_soc)
        if energy_independence is not None:
            if not isinstance(energy_independence, bool):
                raise InvalidRequestError("energy_independence must be a bool")
            body["energy_independence"] = "enabled" if energy_independence else "disabled"
        if not body:
            raise InvalidRequestError(
                "nothing to update: give battery_mode, reserve_soc or energy_independence"
            )
        return await self._call(
            "update_system_battery_settings", BatterySettings, system_id, body=body
        )

    async def get_system_storm_guard(self, system_id: int) -> StormGuard:
        """Whether Storm Guard is enabled and whether a storm alert is active."""
        return await self._call("get_system_storm_guard", StormGuard, system_id)

    async def update_system_storm_guard(self, system_id: int, enabled: bool) -> StormGuard:
        """Turn Storm Guard on or off."""
        if not isinstance(enabled, bool):
            raise InvalidRequestError(f"enabled must be a bool, got {enabled!r}")
        body = {"storm_guard_status": "enabled" if enabled else "disabled"}
        return await self._call("update_system_storm_guard", StormGuard, system_id, body=body)

    async def get_system_grid_status(self, system_id: int) -> GridStatus:
        """Whether the site is on or off grid."""
        return await self._call("get_system_grid_status", GridStatus, system_id)

    async def get_system_load_control(self, system_id: int) -> LoadControl:
        """The load-control circuits and their settings."""
        return await self._call("get_system_load_control", LoadControl, system_id)

    async def update_system_load_control(
        self,
        system_id: int,
        *,
        name: str,
        load_name: str | None = None,
        mode: LoadControlMode | str | None = None,
        soc_low: int | None = None,
        essential_start_time: int | Any | None = None,
        essential_end_time: int | Any | None = None,
    ) -> LoadControl:
        """Change one load-control circuit, named by ``name`` (e.g. ``"NC1"``).

        ``soc_low`` is 10-90 %; essential times are ``datetime.time`` values or seconds
        after midnight.
        """
        body: dict[str, Any] = {"name": validation.circuit_name(name)}
        if load_name is not None:
            if not isinstance(load_name, str):
                raise InvalidRequestError("load_name must be a str")
            body["load_name"] = load_name
        if mode is not None:
            body["mode"] = validation.load_control_mode(mode).value
        if soc_low is not None:
            body["soc_low"] = validation.percent("soc_low", soc_low, 10, 90)
        if essential_start_time is not None:
            body["essential_start_time"] = validation.seconds_after_midnight(
                "essential_start_time", essential_start_time
            )
        if essential_end_time is not None:
            body["essential_end_time"] = validation.seconds_after_midnight(
                "essential_end_time", essential_end_time
            )
        return await self._call("update_system_load_control", LoadControl, system_id, body=body)

    # -- battery data -------------------------------------------------------------------

    async def get_battery_lifetime(
        self,
        system_id: int,
        start_date: date | None = None,
        end_date: date | None = None,
    ) -> BatteryLifetime:
        """Daily charge and discharge (Wh) from ``start_date`` to ``end_date`` (yesterday)."""
        params: dict[str, Any] = {}
        if start_date is not None:
            params["start_date"] = validation.plain_date("start_date", start_date)
        if end_date is not None:
            params["end_date"] = validation.plain_date("end_date", end_date)
        if start_date is not None and end_date is not None and end_date < start_date:
            raise InvalidRequestError("end_date is before start_date")
        return await self._call("get_battery_lifetime", BatteryLifetime, system_id, params=params)

    async def get_battery_telemetry(
        self,
        system_id: int,
        start_at: datetime | None = None,
        granularity: Granularity | str = Granularity.DAY,
        *,
        start_date: date | None = None,
    ) -> BatteryTelemetry:
        """System battery intervals of 15 minutes in the window after ``start_at``.

        The window is ``granularity`` long (``15mins``: 1 interval, ``day``: 96, ``week``:
        672) and ends no later than now; it defaults to today from local midnight.
        """
        params = _telemetry_params(start_at, start_date, granularity)
        return await self._call("get_battery_telemetry", BatteryTelemetry, system_id, params=params)

    async def get_encharge_telemetry(
        self,
        system_id: int,
        serial_no: str,
        start_at: datetime | None = None,
        granularity: Granularity | str = Granularity.DAY,
        *,
        start_date: date | None = None,
    ) -> EnchargeTelemetry:
        """One Encharge's 15-minute intervals; same window rules as battery telemetry."""
        serial = validation.serial_number(serial_no)
        params = _telemetry_params(start_at, start_date, granularity)
        return await self._call(
            "get_encharge_telemetry",
            EnchargeTelemetry,
            system_id,
            params=params,
            serial_no=serial,
        )

    # -- the choke point ---------------------------------------------------------------

    async def _call(
        self,
        operation_id: str,
        model: type[_T],
        system_id: int,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        **path_params: str,
    ) -> _T:
        route = ROUTES[operation_id]
        path = route.path(system_id=validation.system_id(system_id), **path_params)
        return await self._request(route, path, params=params, body=body, parse=model)

    async def _request(
        self,
        route: Route,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        parse: type[_T],
    ) -> _T:
        if self._closed:
            raise InvalidRequestError("the client is closed")
        marker = _CALL_STARTED.set(time.monotonic())
        try:
            result: _T = await self._with_retries(route, path, params or {}, body, parse)
        except _Final as final:
            raise final.error from None
        finally:
            _CALL_STARTED.reset(marker)
        return result

    async def _attempt(
        self,
        route: Route,
        path: str,
        params: Mapping[str, Any],
        body: Any,
        parse: type[_T],
    ) -> _T:
        status, raw = await self._send_authorized(route, path, params, body)
        payload = self._decode(route, path, status, raw)
        try:
            return converter.structure(payload, parse)
        except Exception as err:
            raise ResponseFormatError(
                f"response does not match {parse.__name__}: {_describe_structure_error(err)}",
                status=status,
                body=self._redact(_truncate(raw)),
                method=route.method,
                path=path,
            ) from None

    async def _send_authorized(
        self, route: Route, path: str, params: Mapping[str, Any], body: Any
    ) -> tuple[int, bytes]:
        token = await self._fresh_token()
        status, raw = await self._send(route, path, params, body, token)
        if status != 401:
            return status, raw
        # A token can be refused just after passing the freshness check (clock skew,
        # revocation): refresh once, retry once; a second 401 is final.
        _LOGGER.debug("%s %s -> 401; refreshing the access token once", route.method, path)
        new_token = await self._fresh_token(refused=token)
        if new_token == token:
            return status, raw
        return await self._send(route, path, params, body, new_token)

    async def _fresh_token(self, refused: str | None = None) -> str:
        """A valid access token (a new one when ``refused`` was refused by the API)."""
        manager = self._token_manager
        try:
            if manager is None:
                return await self._token_provider()
            manager.lend_session(self._get_session())
            if refused is not None:
                await manager.refresh(stale_access_token=refused)
            return await manager.access_token()
        except EnphaseError as err:
            # The token manager has retried its own transient failures already; retrying
            # the API call would multiply its token requests.
            raise _Final(err) from None

    async def _send(
        self, route: Route, path: str, params: Mapping[str, Any], body: Any, token: str
    ) -> tuple[int, bytes]:
        remaining = self._quota.remaining
        if remaining is not None and remaining <= 0:
            raise QuotaExceededError(
                "the monthly request quota of the API plan is spent; no request was sent",
                status=None,
                period="month",
                limit=self._quota.quota,
                method=route.method,
                path=path,
            )
        await self._limiter.acquire()
        session = self._get_session()
        query = {"key": self._api_key, **params}
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._quota.record()
        self.requests_sent += 1
        started = time.perf_counter()
        try:
            async with session.request(
                route.method,
                self.base_url + path,
                params=query,
                json=body,
                headers=headers,
                timeout=self._timeout,
            ) as response:
                raw = await response.read()
                status = response.status
        except TimeoutError:
            raise EnphaseConnectionError(
                f"{route.method} {path}: no answer within {self._timeout_s:g} s"
            ) from None
        except aiohttp.ClientError as err:
            # Not chained: aiohttp's own messages may carry the URL with its key= query.
            raise EnphaseConnectionError(
                f"{route.method} {path}: {type(err).__name__}: {self._redact(str(err))}"
            ) from None
        if _LOGGER.isEnabledFor(logging.DEBUG):
            elapsed_ms = (time.perf_counter() - started) * 1000
            _LOGGER.debug("%s %s -> %s in %.1f ms", route.method, path, status, elapsed_ms)
        return status, raw

    def _decode(self, route: Route, path: str, status: int, raw: bytes) -> Any:
        if 200 <= status < 300:
            try:
                return json.loads(raw)
            except ValueError:
                raise ResponseFormatError(
                    "response body is not valid JSON",
                    status=status,
                    body=self._redact(_truncate(raw)),
                    method=route.method,
                    path=path,
                ) from None
        raise self._error_for(route, path, status, raw)

    def _error_for(self, route: Route, path: str, status: int, raw: bytes) -> ApiError:
        body: Any
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = _truncate(raw)
        body = self._redact(body)
        detail = _detail(body)
        where = {"status": status, "body": body, "method": route.method, "path": path}
        if status == 401:
            return AuthenticationError(
                "not authorized"
                + (f" ({detail})" if detail else "")
                + ": the access token was refused after a refresh, or the API key belongs to"
                " another app than the token",
                **where,
            )
        if status == 403:
            return PermissionDeniedError(
                f"not authorized to access {route.operation_id}: the API plan or the"
                " homeowner's grant lacks this access (system configuration needs the"
                " Megawatt or Partner plan, per-Encharge telemetry Kilowatt or above)",
                **where,
            )
        if status == 404:
            return NotFoundError(detail or "not found", **where)
        if status == 429:
            return self._rate_limit_error(body, where)
        return ApiError(detail or "the API returned an error", **where)

    def _rate_limit_error(self, body: Any, where: dict[str, Any]) -> RateLimitError:
        info = body if isinstance(body, dict) else {}
        period = info.get("period") if isinstance(info.get("period"), str) else None
        limit = info.get("limit") if isinstance(info.get("limit"), int) else None
        period_end = info.get("period_end")
        retry_after: float | None = None
        if isinstance(period_end, int | float) and not isinstance(period_end, bool):
            retry_after = max(0.0, period_end - time.time())
        message = _detail(info) or "Too Many Requests"
        if period == "month":
            until = (
                datetime.fromtimestamp(period_end, UTC)
                if isinstance(period_end, int | float) and not isinstance(period_end, bool)
                else None
            )
            self._quota.mark_exhausted(until)
            return QuotaExceededError(
                f"monthly quota spent: {message}",
                retry_after=retry_after,
                period=period,
                limit=limit,
                **where,
            )
        return RateLimitError(message, retry_after=retry_after, period=period, limit=limit, **where)

    # -- retries -----------------------------------------------------------------------

    def _giveup(self, err: Exception) -> bool:
        if isinstance(err, QuotaExceededError):
            return True
        if isinstance(err, RateLimitError):
            # A reset further away than what is left of the caller's bound surfaces now
            # rather than hang, or retry early and waste a request.
            if err.retry_after is None:
                return False
            started = _CALL_STARTED.get()
            elapsed = time.monotonic() - started if started is not None else 0.0
            return err.retry_after > self.max_retry_time - elapsed
        if isinstance(err, EnphaseConnectionError | ResponseFormatError):
            return False
        return not (type(err) is ApiError and err.status is not None and err.status >= 500)

    def _retry_waits(self) -> Generator[float | None, Exception | None, None]:
        """backoff wait generator: it is sent each failure and yields the next wait."""
        err = yield None
        attempt = 0
        while True:
            if isinstance(err, RateLimitError) and err.retry_after is not None:
                # The window resets at period_end; a little jitter keeps many clients
                # from arriving in the same instant.
                wait = err.retry_after + random.uniform(0.05, 0.5)
            else:
                wait = random.uniform(0, min(30.0, 0.5 * 2**attempt))
            attempt += 1
            err = yield wait

    @staticmethod
    def _log_retry(details: Any) -> None:
        err = details.get("exception")
        _LOGGER.debug(
            "retrying after try %s (waiting %.2f s): %s: %s",
            details.get("tries"),
            details.get("wait") or 0.0,
            type(err).__name__,
            err,
        )

    # -- helpers -----------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    def _secrets(self) -> tuple[str, ...]:
        values: list[str] = [self._api_key]
        if self._token_manager is not None:
            values.extend(self._token_manager.secrets())
        return tuple(v for v in values if v)

    def _redact(self, value: Any) -> Any:
        return scrub(value, self._secrets())


def _telemetry_params(
    start_at: datetime | None, start_date: date | None, granularity: Granularity | str
) -> dict[str, Any]:
    params: dict[str, Any] = {"granularity": validation.granularity(granularity).value}
    if start_at is not None and start_date is not None:
        raise InvalidRequestError("give start_at or start_date, not both")
    if start_at is not None:
        params["start_at"] = validation.aware_datetime("start_at", start_at)
    if start_date is not None:
        params["start_date"] = validation.plain_date("start_date", start_date)
    return params


def _detail(body: Any) -> str | None:
    if isinstance(body, dict):
        for key in ("details", "message", "error_description", "error", "errorMessages"):
            value = body.get(key)
            if isinstance(value, list):
                value = "; ".join(str(v) for v in value)
            if isinstance(value, str) and value:
                return value
    if isinstance(body, str) and body.strip():
        return body.strip()[:200]
    return None


def _truncate(raw: bytes) -> str:
    return raw[:_MAX_BODY_IN_ERROR].decode("utf-8", "replace")


def _describe_structure_error(err: Exception) -> str:
    # cattrs raises exception groups; their leaves say which field failed.
    leaves: list[str] = []

    def walk(exc: BaseException) -> None:
        inner = getattr(exc, "exceptions", None)
        if inner:
            for sub in inner:
                walk(sub)
        else:
            note = "; ".join(getattr(exc, "__notes__", []) or [])
            leaves.append(f"{type(exc).__name__}: {exc}" + (f" ({note})" if note else ""))

    walk(err)
    return "; ".join(leaves[:3]) or type(err).__name__
