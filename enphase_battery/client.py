"""The async client: one awaitable method per battery operation of the v4 API.

Every method validates its arguments, then hands the request to
:class:`~enphase_battery.transport.Transport`, the single choke point (quota, limiter,
token, send, retries, error mapping, structuring).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import date, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import aiohttp
import attrs

from . import validation
from .auth import AccessTokenProvider, TokenManager
from .exceptions import InvalidRequestError
from .governor import QuotaGovernor
from .limits import RateLimits
from .live.budget import LiveBudget, LiveLedger
from .live.connect import open_live_stream as connect_live_stream
from .live.errors import LiveDataError, live_error
from .live.frames import frame_from_event
from .live.session import MAX_DURATION_S, MIN_DURATION_S, LiveSession
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
)
from .models.live import LiveFrame
from .models.now import LatestTelemetry, StorageMeterReadings, SystemSummary
from .retry import RetryPolicy
from .routes import ROUTES, Route
from .sse import aiter_sse
from .transport import Transport

if TYPE_CHECKING:
    from .reconcile import Reconciliation

__all__ = ["DEFAULT_BASE_URL", "EnphaseClient"]

_T = TypeVar("_T")

DEFAULT_BASE_URL = "https://api.enphaseenergy.com"
_PAGE_SIZE = 100


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
        max_retries: retries after the first try for transient failures of a read.
        max_retry_time: seconds one call may take from its first send to its end, every
            timeout, token refresh and retry wait included; a 429 whose reset lies further
            away raises :class:`RateLimitError` at once instead of hanging.
        quota_used: requests already spent this month (by earlier runs, other programs),
            for the default governor.
        governor: the :class:`~enphase_battery.QuotaGovernor` every request asks first
            (plan spacing, the month's count, the background share); share one between
            clients of one API key.  Default: one of ``rate_limits`` in memory.
        write_retries: how often a write (PUT) may be sent again, and only where the
            server cannot have applied it or the write sets the whole state (README,
            "Errors and retries"); a write that got any 2xx is never sent again.

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
        governor: QuotaGovernor | None = None,
        write_retries: int = 1,
    ) -> None:
        if not api_key or not isinstance(api_key, str):
            raise InvalidRequestError("api_key is required")
        token_manager: TokenManager | None
        token_provider: AccessTokenProvider
        if isinstance(auth, TokenManager):
            token_manager, token_provider = auth, auth.access_token
        elif callable(auth):
            token_manager, token_provider = None, auth
        else:
            raise InvalidRequestError("auth must be a TokenManager or a coroutine function")
        if governor is not None:
            if not isinstance(governor, QuotaGovernor):
                raise InvalidRequestError("governor must be a QuotaGovernor")
            rate_limits = governor.limits
        if not isinstance(rate_limits, RateLimits):
            raise InvalidRequestError("rate_limits must be a RateLimits")
        for name, value in (("max_retries", max_retries), ("write_retries", write_retries)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidRequestError(f"{name} must be an int >= 0")
        if not timeout > 0 or not max_retry_time > 0:
            raise InvalidRequestError("timeout and max_retry_time must be positive")
        self._transport = Transport(
            api_key=api_key,
            token_manager=token_manager,
            token_provider=token_provider,
            session=session,
            base_url=validation.http_url("base_url", base_url).rstrip("/"),
            rate_limits=rate_limits,
            timeout=timeout,
            retry_policy=RetryPolicy(
                max_retries=max_retries,
                max_retry_time=max_retry_time,
                write_retries=write_retries,
            ),
            quota_used=quota_used,
            governor=governor,
        )

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
        await self._transport.close()

    @property
    def base_url(self) -> str:
        """The API host requests go to."""
        return self._transport.base_url

    @property
    def rate_limits(self) -> RateLimits:
        """The plan's limits this client paces itself by."""
        return self._transport.rate_limits

    @property
    def max_retries(self) -> int:
        """Retries after the first try for transient failures of a read."""
        return self._transport.retry_policy.max_retries

    @property
    def max_retry_time(self) -> float:
        """Seconds one call may take from its first send, timeouts and waits included."""
        return self._transport.retry_policy.max_retry_time

    @property
    def write_retries(self) -> int:
        """How often a write may be sent again where that cannot apply it twice."""
        return self._transport.retry_policy.write_retries

    @property
    def requests_sent(self) -> int:
        """HTTP requests this client has sent to the API (token requests not included)."""
        return self._transport.requests_sent

    @property
    def token_manager(self) -> TokenManager | None:
        """The :class:`TokenManager` given as ``auth`` (``None`` for a token provider)."""
        return self._transport.token_manager

    @property
    def quota_remaining(self) -> int | None:
        """Requests left in this month's quota (``None`` when the plan has no monthly cap)."""
        return self._transport.governor.usage_now().remaining

    @property
    def quota_used(self) -> int:
        """Requests counted against this month's quota."""
        return self._transport.governor.usage_now().used

    @property
    def governor(self) -> QuotaGovernor:
        """The quota governor every request of this client asks first."""
        return self._transport.governor

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
            "update_system_battery_settings",
            BatterySettings,
            system_id,
            body=body,
            full_state=len(body) == 3,
        )

    async def get_system_storm_guard(self, system_id: int) -> StormGuard:
        """Whether Storm Guard is enabled and whether a storm alert is active."""
        return await self._call("get_system_storm_guard", StormGuard, system_id)

    async def update_system_storm_guard(self, system_id: int, enabled: bool) -> StormGuard:
        """Turn Storm Guard on or off."""
        if not isinstance(enabled, bool):
            raise InvalidRequestError(f"enabled must be a bool, got {enabled!r}")
        body = {"storm_guard_status": "enabled" if enabled else "disabled"}
        return await self._call(
            "update_system_storm_guard", StormGuard, system_id, body=body, full_state=True
        )

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
        # Every field of the circuit given: sending it twice sets the same state.
        return await self._call(
            "update_system_load_control",
            LoadControl,
            system_id,
            body=body,
            full_state=len(body) == 6,
        )

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

    # -- now, live and counters (fact sheet §7) -----------------------------------------

    async def get_latest_telemetry(self, system_id: int) -> LatestTelemetry:
        """Each Encharge's power (W, signed) and mode now (Watt plan and up; cheap).

        Values are ``None`` for a device whose last report is over 7 days old.
        """
        return await self._call("get_latest_telemetry", LatestTelemetry, system_id)

    async def get_storage_meter_readings(
        self, system_id: int, end_at: datetime | None = None
    ) -> StorageMeterReadings:
        """Each battery's lifetime charged / discharged counters (Wh), as of ``end_at``."""
        params: dict[str, Any] = {}
        if end_at is not None:
            params["end_at"] = validation.aware_datetime("end_at", end_at)
        return await self._call(
            "get_storage_meter_readings", StorageMeterReadings, system_id, params=params
        )

    async def get_system_summary(
        self, system_id: int, summary_date: date | None = None
    ) -> SystemSummary:
        """The system summary (battery capacity and power ratings, last report times)."""
        params: dict[str, Any] = {}
        if summary_date is not None:
            params["summary_date"] = validation.plain_date("summary_date", summary_date)
        return await self._call("get_system_summary", SystemSummary, system_id, params=params)

    def open_live_stream(
        self,
        system_id: int,
        *,
        duration_s: int = 300,
        last_event_id: str | None = None,
        idle_timeout_s: float = 90.0,
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """Low level: one open ``live_data`` response (``async with``), its body unread.

        Most callers want :meth:`live` (typed frames, reconnects, a budget) or
        :meth:`stream_live_data` (typed frames of one connection).  Each call is one
        billed connection (Kilowatt plan and up).
        """

        system_id = validation.system_id(system_id)
        if isinstance(duration_s, bool) or not isinstance(duration_s, int):
            raise InvalidRequestError("duration_s must be an int")
        if not MIN_DURATION_S <= duration_s <= MAX_DURATION_S:
            raise InvalidRequestError(f"duration_s must be 30-300, got {duration_s}")
        return connect_live_stream(
            self._transport,
            system_id,
            duration_s=duration_s,
            last_event_id=last_event_id,
            idle_timeout_s=idle_timeout_s,
        )

    async def stream_live_data(
        self, system_id: int, *, duration_s: int = 300
    ) -> AsyncIterator[LiveFrame]:
        """The frames of ONE ``live_data`` connection, until the server closes it.

        One billed connection; no reconnect, no budget, error events raised as
        :class:`LiveDataError`.  :meth:`live` is the managed version.
        """

        async with self.open_live_stream(system_id, duration_s=duration_s) as response:
            async for event in aiter_sse(response.content.iter_any()):
                result = frame_from_event(event)
                if isinstance(result, int):
                    raise live_error(result) or LiveDataError(
                        f"live_data error event {result}", code=result
                    )
                if result is not None:
                    yield result

    def live(
        self,
        system_id: int,
        *,
        budget: LiveBudget | None = None,
        ledger: LiveLedger | None = None,
        **options: Any,
    ) -> LiveSession:
        """Stay live: ``async with client.live(id, budget=LiveBudget(per_hour=12)) as s:
        async for frame in s: ...``.

        Reconnects as each stream expires, counts every connection against ``budget``
        (or a shared ``ledger``), and falls back to polling ``latest_telemetry`` on a
        403, 466/472, a spent budget (``frame.source`` says which).  ``options`` go to
        :class:`~enphase_battery.live.LiveSession` (``duration_s``, ``fallback``,
        ``fallback_interval_s``, ``cool_down_s``, ``idle_timeout_s``).
        """

        return LiveSession(
            self, validation.system_id(system_id), budget=budget, ledger=ledger, **options
        )

    async def reconcile(
        self, system_id: int, start: datetime, end: datetime, **options: Any
    ) -> Reconciliation:
        """The hole check: do the 15-minute intervals add up to the lifetime counters?

        See :func:`enphase_battery.reconcile.reconcile` for ``options``.
        """
        from .reconcile import reconcile

        return await reconcile(self, system_id, start, end, **options)

    # -- the choke point ---------------------------------------------------------------

    async def _call(
        self,
        operation_id: str,
        model: type[_T],
        system_id: int,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        full_state: bool = False,
        **path_params: str,
    ) -> _T:
        route = ROUTES[operation_id]
        path = route.path(system_id=validation.system_id(system_id), **path_params)
        return await self._transport.request(
            route, path, params=params, body=body, parse=model, full_state=full_state
        )

    async def _request(
        self,
        route: Route,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        parse: type[_T],
    ) -> _T:
        return await self._transport.request(route, path, params=params, body=body, parse=parse)


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
