"""EnphaseSimulator: the whole fake API, its state, and the loopback server running it."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from enphase_battery.auth.manager import TokenManager
from enphase_battery.auth.tokens import OAuth2Token
from enphase_battery.client.client import EnphaseClient
from enphase_battery.quota.limits import RateLimits
from enphase_battery.simulator.app import create_app
from enphase_battery.simulator.arrival import ArrivalModel
from enphase_battery.simulator.battery import (
    INTERVAL_S,
    BatteryInterval,
    BatterySystem,
    Encharge,
    EnchargeInterval,
)
from enphase_battery.simulator.clock import DEFAULT_START, SimClock
from enphase_battery.simulator.errors import ApiProblem
from enphase_battery.simulator.faults import Faults
from enphase_battery.simulator.fleet import Fleet
from enphase_battery.simulator.gateway import GatewayWrites
from enphase_battery.simulator.live import LiveStreams
from enphase_battery.simulator.oauth import OAuthAuthority
from enphase_battery.simulator.ratelimit import PlanLimiter
from enphase_battery.simulator.uplink import FleetMix, Uplink

__all__ = ["EnphaseSimulator"]


def _epoch(value: datetime | float) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("datetimes must be timezone-aware")
        return value.timestamp()
    return float(value)


def _credential(seed: int, purpose: str, length: int) -> str:
    # Deterministic per seed: a simulator's credentials are not secrets, and stable ones
    # let a demo's config file survive restarts.
    return hashlib.sha256(f"{purpose}:{seed}".encode()).hexdigest()[:length]


class EnphaseSimulator:
    """A faithful stand-in of the Enphase v4 battery API on a loopback HTTP server.

    Use as ``async with EnphaseSimulator(seed=1) as sim:`` then point a client at
    ``sim.base_url`` with ``sim.api_key`` and ``sim.token`` (or the OAuth2 flow at
    ``sim.authorize_url`` / ``sim.token_url`` with ``sim.client_id`` /
    ``sim.client_secret``).  With ``speed=0`` the simulated clock moves only through
    ``sim.clock.advance()``; data is identical for identical seeds and call sequences.

    ``history`` is how long the systems have operated before ``start``; each device
    interval becomes visible ``reporting_latency`` (+ jitter, + device lag) after it
    ends, and with ``late_probability`` some arrive ``late_delay`` later still.
    ``access_token_lifetime`` is real (wall-clock) time.  ``plan`` sets the per-minute
    limit (real-time fixed window) and the monthly quota (per simulated calendar month).
    ``enforce_plan_access`` makes lower plans get 403 for device-level (below Kilowatt)
    and configuration (below Megawatt) routes, and for ``live_data`` (below Kilowatt),
    as the real access controls do.  ``live_frame_period_s`` (real seconds between live
    frames) and ``live_duration_scale`` (real seconds per second of a stream's
    ``duration``) make live streams fast in tests; see :attr:`live`.
    ``plan`` may also be a custom :class:`~enphase_battery.RateLimits`;
    ``minute_clock="simulated"`` counts the per-minute window on the simulated clock
    (for clients pacing on ``sim.clock``).  ``fleet_mix`` puts some systems on cellular
    (6-hourly batches) or offline for a while (see :mod:`.uplink`).
    ``write_delay_s`` (real seconds) is how long an accepted write takes to reach the
    gateway, that is, to show in the GETs; :attr:`writes` can also refuse or revert the
    next writes (see :mod:`.gateway`).
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        systems: int = 2,
        encharges: int | Sequence[int] = 2,
        plan: str | RateLimits = "partner",
        start: datetime | None = None,
        speed: float = 0.0,
        history: timedelta = timedelta(days=7),
        reporting_latency: timedelta = timedelta(minutes=15),
        late_probability: float = 0.0,
        late_delay: timedelta = timedelta(hours=3),
        access_token_lifetime: timedelta = timedelta(seconds=86393),
        host: str = "127.0.0.1",
        port: int = 0,
        enforce_plan_access: bool = False,
        live_frame_period_s: float = 3.0,
        live_duration_scale: float = 1.0,
        minute_clock: str = "real",
        fleet_mix: FleetMix | None = None,
        write_delay_s: float = 0.0,
    ) -> None:
        if not 0.0 <= late_probability <= 1.0:
            raise ValueError("late_probability must be within 0..1")
        if history < timedelta(0):
            raise ValueError("history must be >= 0")
        self.seed = seed
        self.host = host
        self.port = port
        self.enforce_plan_access = enforce_plan_access
        self.clock = SimClock(start or DEFAULT_START, speed=speed)
        self.limiter = PlanLimiter(plan, self.clock, minute_clock=minute_clock)
        self.plan = self.limiter.plan
        first_end_at = Fleet.first_end_at_after(self.clock.timestamp() - history.total_seconds())
        if first_end_at > self.clock.timestamp():
            # No history: the first interval is the one in progress now.
            first_end_at = Fleet.first_end_at_after(self.clock.timestamp())
        self.fleet = Fleet(
            seed=seed,
            systems=systems,
            encharges=encharges,
            first_end_at=first_end_at,
            late_probability=late_probability,
        )
        self.arrival = ArrivalModel(
            seed=seed,
            latency_s=reporting_latency.total_seconds(),
            late_delay_s=late_delay.total_seconds(),
        )
        self.fleet_mix = fleet_mix or FleetMix()
        #: Each system's uplink (Wi-Fi unless the fleet mix says otherwise).
        self.uplinks: dict[int, Uplink] = {}
        for system_id in self.fleet.systems:
            self._assign_uplink(system_id)
        self.api_key = _credential(seed, "api-key", 32)
        self.client_id = _credential(seed, "client-id", 32)
        self.client_secret = _credential(seed, "client-secret", 32)
        self.oauth = OAuthAuthority(
            client_id=self.client_id,
            client_secret=self.client_secret,
            access_lifetime_s=access_token_lifetime.total_seconds(),
            enl_uid=1_000_000 + seed,
        )
        self.faults = Faults(
            on_revoke_tokens=self.oauth.revoke_all,
            on_exhaust_quota=self.limiter.exhaust_month,
        )
        #: Writes on their way to the gateways: delay, refuse, revert (:mod:`.gateway`).
        self.writes = GatewayWrites(delay_s=write_delay_s)
        #: API requests received (``/api/v4/...``; token and admin routes excluded).
        self.request_count = 0
        #: The same, per request path.
        self.path_counts: Counter[str] = Counter()
        #: Requests to ``/oauth/token``, and the same by ``grant_type``.
        self.token_requests = 0
        self.token_grants: Counter[str] = Counter()
        self.token = OAuth2Token.from_response(self.oauth.issue())
        #: live_data streams: timing, faults, connections and their cost.
        self.live = LiveStreams(
            self, frame_period_s=live_frame_period_s, duration_scale=live_duration_scale
        )
        self.app: web.Application = create_app(self)
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Serve on ``host:port`` (an ephemeral port by default) and issue a new token."""
        if self._runner is not None:
            return
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.port = port
        shown = f"[{host}]" if ":" in str(host) else str(host)
        self._base_url = f"http://{shown}:{port}"
        self.token = OAuth2Token.from_response(self.oauth.issue())

    async def close(self) -> None:
        """Stop serving (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``; clients append ``/api/v4/...``."""
        if self._base_url is None:
            raise RuntimeError("the simulator is not serving: use `async with` or start()")
        return self._base_url

    @property
    def token_url(self) -> str:
        """The OAuth2 token endpoint."""
        return self.base_url + "/oauth/token"

    @property
    def authorize_url(self) -> str:
        """The OAuth2 authorization endpoint (auto-approves)."""
        return self.base_url + "/oauth/authorize"

    def make_client(
        self, *, rate_limits: RateLimits | None = None, **client_options: Any
    ) -> EnphaseClient:
        """An :class:`~enphase_battery.EnphaseClient` signed in to this simulator.

        Its :class:`~enphase_battery.TokenManager` holds :attr:`token` and refreshes at
        :attr:`token_url`.  ``rate_limits`` defaults to the simulator's plan (pass a fast
        ``RateLimits(...)`` in tests); other options go to the client.  Use it as
        ``async with sim.make_client() as client:``.
        """
        auth = TokenManager(
            client_id=self.client_id,
            client_secret=self.client_secret,
            token=self.token,
            token_url=self.token_url,
        )
        if rate_limits is None:
            rate_limits = self.limiter.limits or RateLimits(1_000_000)
        return EnphaseClient(
            api_key=self.api_key,
            auth=auth,
            base_url=self.base_url,
            rate_limits=rate_limits,
            **client_options,
        )

    # -- fleet ------------------------------------------------------------------------

    @property
    def system_ids(self) -> tuple[int, ...]:
        """Every simulated system id, ascending."""
        return tuple(self.fleet.systems)

    def system(self, system_id: int) -> BatterySystem:
        """The system's state, stepped up to the simulated now."""
        system = self.fleet.systems.get(system_id)
        if system is None:
            raise KeyError(f"no simulated system {system_id}")
        system.step_until(self.clock.timestamp())
        # Writes due by now reach the gateway after the physics has stepped to now.
        self.writes.settle(system_id)
        return system

    def find_system(self, system_id: int) -> BatterySystem:
        """Like :meth:`system` but raising the API's 404 problem."""
        try:
            return self.system(system_id)
        except KeyError:
            raise ApiProblem(404, f'System not found for {{:id=>"{system_id}"}}') from None

    def encharge_serials(self, system_id: int) -> tuple[str, ...]:
        """Serial numbers of the system's Encharges, in installation order."""
        return tuple(d.serial for d in self.system(system_id).encharges)

    def _device(self, serial: str) -> tuple[BatterySystem, Encharge]:
        for system in self.fleet.systems.values():
            device = system.encharge(serial)
            if device is not None:
                return self.system(system.system_id), device
        raise KeyError(f"no simulated Encharge {serial}")

    def add_encharge(self, system_id: int, capacity_wh: int | None = None) -> str:
        """Install a new Encharge (the system's model unless ``capacity_wh`` is given).

        It reports from the interval in progress now on; returns its serial.
        """
        system = self.system(system_id)
        model = system.template.battery_model if capacity_wh is None else capacity_wh
        serial = self.fleet.add_encharge(system, model, system.next_end_at).serial
        self.arrival.set_uplink(serial, self.uplinks.get(system_id, Uplink()))
        return serial

    def _assign_uplink(self, system_id: int) -> None:
        uplink = self.fleet_mix.uplink_for(self.seed, system_id, self.clock.timestamp())
        self.uplinks[system_id] = uplink
        for device in self.fleet.systems[system_id].encharges:
            self.arrival.set_uplink(device.serial, uplink)

    def set_uplink(self, system_id: int, uplink: Uplink) -> None:
        """Put the system's gateway on ``uplink`` (say, offline from now for a day)."""
        self.system(system_id)
        self.uplinks[system_id] = uplink
        for device in self.fleet.systems[system_id].encharges:
            self.arrival.set_uplink(device.serial, uplink)

    def add_system(self, encharges: int = 2, *, history: timedelta = timedelta(0)) -> int:
        """Commission a new system (listed from now on, reporting from now or ``history``
        ago); returns its id."""
        first_end_at = Fleet.first_end_at_after(self.clock.timestamp() - history.total_seconds())
        system_id = self.fleet.add_system(encharges, first_end_at)
        self._assign_uplink(system_id)
        return system_id

    def remove_system(self, system_id: int) -> None:
        """Decommission a system: it leaves the systems list and its routes answer 404."""
        self.system(system_id)
        del self.fleet.systems[system_id]
        self.uplinks.pop(system_id, None)

    def set_grid_outage(self, system_id: int, off_grid: bool) -> None:
        """Island the system (``grid_status`` "Off Grid", battery carries the load)."""
        self.system(system_id).off_grid = off_grid

    def set_storm_alert(self, system_id: int, alert: bool) -> None:
        """Raise or clear a severe-weather alert for the system's locality."""
        self.system(system_id).storm_alert = alert

    def set_device_lag(self, serial: str, lag: timedelta) -> None:
        """Delay the device's intervals ending from now on by ``lag`` (a slow uplink)."""
        self._device(serial)
        self.arrival.set_lag(serial, lag.total_seconds(), from_end_at=self.clock.epoch())

    def sync(self) -> None:
        """Step every system up to the simulated now."""
        now = self.clock.timestamp()
        for system in self.fleet.systems.values():
            system.step_until(now)

    def expire_access_tokens(self) -> None:
        """Expire every access token immediately (refresh tokens stay valid)."""
        self.oauth.expire_access_tokens()

    # -- ground truth -----------------------------------------------------------------

    def ground_truth_battery(
        self, system_id: int, start: datetime | float, end: datetime | float
    ) -> list[BatteryInterval]:
        """Final values of every system interval with end_at in (start, end], up to now.

        Visibility plays no part: this is what telemetry converges to.
        """
        system = self.system(system_id)
        return list(system.ground_truth(int(_epoch(start)), int(_epoch(end))))

    def ground_truth_encharge(
        self, system_id: int, serial: str, start: datetime | float, end: datetime | float
    ) -> list[EnchargeInterval]:
        """Final values of one Encharge's intervals with end_at in (start, end], up to now."""
        system = self.system(system_id)
        device = system.encharge(serial)
        if device is None:
            raise KeyError(f"system {system_id} has no Encharge {serial}")
        first = max(0, device.index((int(_epoch(start)) // INTERVAL_S + 1) * INTERVAL_S))
        end_s = int(_epoch(end))
        last = min(len(device) - 1, device.index(end_s - end_s % INTERVAL_S))
        return [device.interval(i) for i in range(first, last + 1)]

    # -- bookkeeping used by the app --------------------------------------------------

    def count_request(self, path: str) -> None:
        """Record one API request for ``path``."""
        self.request_count += 1
        self.path_counts[path] += 1

    def reset_counters(self) -> None:
        """Zero the request counters (not the rate-limit windows)."""
        self.request_count = 0
        self.path_counts.clear()
        self.token_requests = 0
        self.token_grants.clear()

    def __repr__(self) -> str:
        where = self._base_url or "not serving"
        return f"EnphaseSimulator({where}, systems={len(self.fleet.systems)}, plan={self.plan})"
