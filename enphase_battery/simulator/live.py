"""``GET /systems/{id}/live_data``: the server-sent-events stream, billed per connection.

Each connection: checks the plan (Kilowatt and up when the simulator enforces plan
access), reads ``duration`` (the request header, 30-300, default 30), then sends
``retry:``, a frame at once and one every :attr:`LiveStreams.frame_period_s` real seconds
with a ``: keep-alive`` comment between frames, and closes after ``duration x
duration_scale`` real seconds.  Frames come from the battery physics (the
newest interval's average power, the SoC now, the settings and grid state).

Refusals are HTTP responses with live_data's JSON error envelope (fact sheet §8:
``{"error": {code, details, message, status}, ...}``), ``duration`` is read from the
request header the spec declares (a query parameter is ignored).

Faults on demand (``sim.live`` or ``POST /__admin/live``): an error event with any code
after N frames (older notes' way, still accepted by clients), the answer's HTTP status
set to any code, a stream cut in the middle of an event.  ``/__admin/state`` shows the
connections and their cost.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, deque
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs
from aiohttp import web

from enphase_battery.simulator.battery import BatterySystem
from enphase_battery.simulator.context import path_system_id, simulator
from enphase_battery.simulator.errors import live_envelope
from enphase_battery.simulator.now import device_discharge_w

if TYPE_CHECKING:
    from enphase_battery.simulator.server import EnphaseSimulator

__all__ = ["LIVE_PLANS", "LiveFault", "LiveStreams", "register"]

#: Plans that may call live_data (fact sheet §7: Kilowatt and up).
LIVE_PLANS = frozenset({"kilowatt", "megawatt", "partner", "unlimited"})
#: What the simulator charges per connection, for /__admin/state (fact sheet §7).
PRICE_PER_CONNECTION = Decimal("0.10")
_DEFAULT_DURATION_S = 30
#: Which invalid-duration code for which mistake (fact sheet §8).
_TOO_SHORT, _TOO_LONG, _NOT_A_NUMBER = 461, 462, 463
_MESSAGES = {
    403: "Not authorized to access this resource",
    461: "Invalid duration: minimum is 30",
    462: "Invalid duration: maximum is 300",
    463: "Invalid duration: must be an integer",
    466: "Gateway firmware does not support live data",
    468: "Invalid system id",
    472: "Live stream not supported",
    473: "IQ Gateway is not reporting",
    550: "Live data service unreachable",
    551: "Live data service unreachable",
    552: "Live data connection not established",
}


@attrs.define
class LiveFault:
    """One armed fault for the next live connection."""

    #: ``"error"``: an error event with ``code``; ``"status"``: answer with HTTP ``code``
    #: and the error envelope;
    #: ``"cut"``: stop in the middle of an event and drop the connection.
    kind: str
    code: int = 550
    after_frames: int = 0


class LiveStreams:
    """The simulator's live-data state: timing knobs, faults, counters and cost."""

    def __init__(
        self, sim: EnphaseSimulator, *, frame_period_s: float = 3.0, duration_scale: float = 1.0
    ) -> None:
        if not frame_period_s > 0 or not duration_scale > 0:
            raise ValueError("frame_period_s and duration_scale must be > 0")
        self._sim = sim
        #: Real seconds between frames.
        self.frame_period_s = frame_period_s
        #: Real seconds per second of ``duration`` (0.01 makes a 30 s stream 0.3 s).
        self.duration_scale = duration_scale
        #: ``retry:`` sent at the start of each stream (milliseconds; None: not sent).
        self.retry_ms: int | None = 1000
        self.faults: deque[LiveFault] = deque()
        #: Streams opened (status 200), in all and per system.
        self.connections = 0
        self.per_system: Counter[int] = Counter()
        #: Connections refused (plan, duration, injected status).
        self.refused = 0
        self.open_now = 0
        self.frames_sent = 0
        #: The ``duration`` each accepted connection asked for, in order.
        self.durations: list[int] = []

    @property
    def cost(self) -> Decimal:
        """What the accepted connections would cost (US$)."""
        return PRICE_PER_CONNECTION * self.connections

    def send_error(self, code: int, *, after_frames: int = 0) -> None:
        """The next connection sends an error event with ``code`` after ``after_frames``."""
        self.faults.append(LiveFault("error", code, after_frames))

    def refuse_next(self, code: int) -> None:
        """The next connection is answered with HTTP status ``code`` and the error
        envelope (a live error code, a 5xx, any 4xx)."""
        self.faults.append(LiveFault("status", code))

    def cut_next(self, *, after_frames: int = 1) -> None:
        """The next connection stops in the middle of an event after ``after_frames``."""
        self.faults.append(LiveFault("cut", after_frames=after_frames))

    def configure(self, spec: dict[str, Any]) -> None:
        """The ``POST /__admin/live`` body: ``{"error": 473, "after_frames": 1}``,
        ``{"status": 472}``, ``{"cut_after_frames": 2}``, ``{"frame_period_s": 0.05,
        "duration_scale": 0.01, "retry_ms": 500}``, ``{"clear": true}``."""
        if spec.get("clear"):
            self.faults.clear()
        if "frame_period_s" in spec:
            period = float(spec["frame_period_s"])
            if not period > 0:
                raise ValueError("frame_period_s must be > 0")
            self.frame_period_s = period
        if "duration_scale" in spec:
            scale = float(spec["duration_scale"])
            if not scale > 0:
                raise ValueError("duration_scale must be > 0")
            self.duration_scale = scale
        if "retry_ms" in spec:
            self.retry_ms = None if spec["retry_ms"] is None else int(spec["retry_ms"])
        if "error" in spec:
            self.send_error(int(spec["error"]), after_frames=int(spec.get("after_frames", 0)))
        if "status" in spec:
            self.refuse_next(int(spec["status"]))
        if "cut_after_frames" in spec:
            self.cut_next(after_frames=int(spec["cut_after_frames"]))

    def state(self) -> dict[str, Any]:
        """What ``/__admin/state`` shows under ``"live"``."""
        return {
            "connections": self.connections,
            "per_system": {str(k): v for k, v in sorted(self.per_system.items())},
            "refused": self.refused,
            "open_now": self.open_now,
            "frames_sent": self.frames_sent,
            "price_per_connection": str(PRICE_PER_CONNECTION),
            "cost": str(self.cost),
            "faults_pending": [attrs.asdict(f) for f in self.faults],
            "frame_period_s": self.frame_period_s,
            "duration_scale": self.duration_scale,
        }

    # -- serving ------------------------------------------------------------------------

    def frame(self, system: BatterySystem, gateway_serial: str) -> dict[str, Any]:
        """One event's JSON from the physics now."""
        # battery_power is positive while discharging, grid_power while importing
        # (fact sheet §8).
        discharge_w = 0
        for device in system.encharges:
            i = device.index(system.last_end_at)
            if 0 <= i < len(device):
                discharge_w += device_discharge_w(device, i)
        pv_w = round(system.last_solar_w)
        load_w = round(system.last_load_w)
        return {
            "data": {
                "pv_power": pv_w,
                "grid_power": load_w - pv_w - discharge_w,
                "battery_power": discharge_w,
                "battery_soc": system.current_soc_percent() if system.encharges else None,
                "battery_mode": system.settings.battery_mode,
                "grid_status": "Off Grid" if system.off_grid else "On Grid",
                "consumption_power": load_w,
                "generator_power": 0,
                "envoy_serial_number": [gateway_serial],
                "system_id": system.system_id,
            },
            "timestamp_epoch": int(self._sim.clock.timestamp() * 1000),
            "type": "response",
        }

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The ``live_data`` handler."""
        sim = self._sim
        system_id = path_system_id(request)
        system = sim.find_system(system_id)
        if sim.enforce_plan_access and sim.plan not in LIVE_PLANS:
            return self.refuse(403)
        duration = self._duration(request)
        if isinstance(duration, web.Response):
            return duration
        fault = self.faults.popleft() if self.faults else None
        if fault is not None and fault.kind == "status":
            return self.refuse(fault.code)
        self.connections += 1
        self.per_system[system_id] += 1
        self.durations.append(duration)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        self.open_now += 1
        try:
            await self._serve(request, response, system, duration, fault)
        except (ConnectionResetError, asyncio.CancelledError):
            # The client went away (a session's aclose()): nothing more to send.
            return response
        finally:
            self.open_now -= 1
        return response

    def refuse(self, code: int, message: str | None = None) -> web.Response:
        """An HTTP ``code`` answer with live_data's error envelope (counted as refused)."""
        self.refused += 1
        body = live_envelope(code, message or _MESSAGES.get(code), now=self._sim.clock.timestamp())
        return web.json_response(body, status=code)

    def _duration(self, request: web.Request) -> int | web.Response:
        raw = request.headers.get("duration")
        if raw is None:
            return _DEFAULT_DURATION_S
        try:
            duration = int(raw)
        except ValueError:
            code = _NOT_A_NUMBER
        else:
            if 30 <= duration <= 300:
                return duration
            code = _TOO_SHORT if duration < 30 else _TOO_LONG
        return self.refuse(code)

    async def _serve(
        self,
        request: web.Request,
        response: web.StreamResponse,
        system: BatterySystem,
        duration: int,
        fault: LiveFault | None,
    ) -> None:
        sim = self._sim
        loop = asyncio.get_running_loop()
        deadline = loop.time() + duration * self.duration_scale
        gateway = _gateway_serial(sim, system.system_id)
        if self.retry_ms is not None:
            await response.write(f"retry: {self.retry_ms}\n\n".encode())
        number = 0
        while True:
            if fault is not None and fault.after_frames == number:
                if fault.kind == "error":
                    body = {
                        "type": "error",
                        "code": fault.code,
                        "message": _MESSAGES.get(fault.code),
                    }
                    await response.write(f"event: error\ndata: {json.dumps(body)}\n\n".encode())
                    break
                # "cut": half an event, then the connection drops.
                await response.write(b'id: cut\ndata: {"data": {"battery_soc"')
                if request.transport is not None:
                    request.transport.abort()
                return
            system = sim.system(system.system_id)
            number += 1
            event = json.dumps(self.frame(system, gateway), separators=(",", ":"))
            await response.write(f"id: {self.connections}-{number}\ndata: {event}\n\n".encode())
            self.frames_sent += 1
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            wait = min(self.frame_period_s, remaining)
            await asyncio.sleep(wait / 2)
            await response.write(b": keep-alive\n\n")
            await asyncio.sleep(wait / 2)
            if loop.time() >= deadline:
                break
        await response.write_eof()


def _gateway_serial(sim: EnphaseSimulator, system_id: int) -> str:
    # The same serial ``/devices`` lists for the system's gateway.
    return f"12{sim.seed % 100:02d}{sim.fleet.system_index(system_id):02d}800001"


async def _admin_live(request: web.Request) -> web.StreamResponse:
    sim = simulator(request)
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        sim.live.configure(body)
    except (ValueError, TypeError) as err:
        return web.json_response({"error": str(err)}, status=400)
    return web.json_response(sim.live.state())


def register(router: web.UrlDispatcher, api: str) -> None:
    """Add ``live_data`` under ``api`` (``/api/v4``) and ``POST /__admin/live``."""

    async def live_data(request: web.Request) -> web.StreamResponse:
        return await simulator(request).live.handle(request)

    router.add_get(api + "/systems/{system_id}/live_data", live_data)
    router.add_post("/__admin/live", _admin_live)
