"""Intervals and hourly rows into InfluxDB through the 1.x HTTP write API.

InfluxDB 1.x serves ``POST /write?db=DB&precision=s``; InfluxDB 2 serves the same
endpoint for a bucket mapped to a database (DBRP mapping).  Each point:

* measurement ``battery_interval``, tags ``system_id`` and ``source``, integer fields
  ``charge_wh``, ``discharge_wh``, ``soc_percent`` (left out when unknown) and
  ``revision``, boolean ``partial``; the point's time is the interval's ``end_at``, in
  seconds;
* measurement ``battery_hour`` (``stream --hourly``), same tags, integer fields
  ``charge_wh``, ``discharge_wh``, ``charge_sum_wh``, ``discharge_sum_wh``, ``soc_min``,
  ``soc_max``, ``intervals``, float ``soc_mean``, boolean ``partial``; time: the hour's
  start.

A point's key is its measurement, tags and time, so a point written again (a repeat
after a crash, a revision, an hour recomputed) overwrites its fields instead of adding
a point.  A batch is one request (split at :data:`MAX_POINTS` points).  A write that
fails for a reason that may pass (connection refused or reset, a timeout, 5xx, 429) is
retried with exponential back-off (capped at :data:`MAX_BACKOFF_S`) until it succeeds:
never skipped.  A refusal that retrying cannot fix (400 bad points, 401/403 credentials,
404 no database) raises :class:`InfluxWriteError`; the batch then does not count as
delivered, so the next run writes it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiohttp
import attrs

from enphase_battery.exceptions import EnphaseError
from enphase_battery.models.delivered import TelemetryInterval
from enphase_battery.statistics import HourlyRow

__all__ = [
    "MAX_BACKOFF_S",
    "MAX_POINTS",
    "InfluxCredentials",
    "InfluxWriteError",
    "InfluxWriter",
    "hour_line",
    "interval_line",
]

_LOGGER = logging.getLogger(__name__)

#: Points per request (InfluxDB's advice: 5,000 to 10,000).
MAX_POINTS = 5000
#: The longest wait between two attempts of a failing write.
MAX_BACKOFF_S = 30.0
#: The first wait after a failed write.
FIRST_BACKOFF_S = 0.5

#: The statuses that retrying cannot fix.
_FATAL = frozenset({400, 401, 403, 404, 413})


class InfluxWriteError(EnphaseError):
    """InfluxDB refused a write for a reason retrying cannot fix (bad points, wrong
    credentials, no such database).  ``status`` is the HTTP status."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@attrs.frozen(repr=False)
class InfluxCredentials:
    """A user and password for InfluxDB (``repr`` never shows the password)."""

    user: str
    password: str

    def __repr__(self) -> str:
        return f"InfluxCredentials(user={self.user!r}, password=***)"

    @classmethod
    def load(
        cls, config: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> InfluxCredentials | None:
        """``ENPHASE_INFLUXDB_USER`` / ``ENPHASE_INFLUXDB_PASSWORD``, else
        ``influxdb_user`` / ``influxdb_password`` of ``config`` (``config.json``);
        ``None`` when neither gives a user (InfluxDB without authentication)."""
        env = os.environ if environ is None else environ
        user = env.get("ENPHASE_INFLUXDB_USER") or config.get("influxdb_user")
        password = env.get("ENPHASE_INFLUXDB_PASSWORD") or config.get("influxdb_password")
        if not user:
            return None
        return cls(str(user), str(password or ""))


def _tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _bool(value: bool) -> str:
    return "true" if value else "false"


def interval_line(iv: TelemetryInterval) -> str:
    """One ``battery_interval`` point in line protocol (time in seconds)."""
    fields = f"charge_wh={iv.charge_wh}i,discharge_wh={iv.discharge_wh}i"
    if iv.soc_percent is not None:
        fields += f",soc_percent={iv.soc_percent}i"
    fields += f",revision={iv.revision}i,partial={_bool(iv.partial)}"
    return (
        f"battery_interval,system_id={iv.system_id},source={_tag(iv.source)}"
        f" {fields} {int(iv.end_at.timestamp())}"
    )


def hour_line(row: HourlyRow) -> str:
    """One ``battery_hour`` point in line protocol (time: the hour's start, in seconds)."""
    fields = (
        f"charge_wh={row.charge_wh}i,discharge_wh={row.discharge_wh}i"
        f",charge_sum_wh={row.charge_sum_wh}i,discharge_sum_wh={row.discharge_sum_wh}i"
        f",intervals={row.intervals}i,partial={_bool(row.partial)}"
    )
    if row.soc_mean is not None:
        fields += f",soc_mean={float(row.soc_mean)!r}"
    if row.soc_min is not None:
        fields += f",soc_min={row.soc_min}i"
    if row.soc_max is not None:
        fields += f",soc_max={row.soc_max}i"
    return (
        f"battery_hour,system_id={row.system_id},source={_tag(row.source)}"
        f" {fields} {int(row.start.timestamp())}"
    )


class InfluxWriter:
    """Batched, retried writes of line-protocol points to one InfluxDB database.

    Args:
        base_url: the server's HTTP root, ``http://HOST:PORT``.
        database: the database (created on :meth:`open` when the user may).
        credentials: a user and password, or ``None``.
        timeout: seconds for one request.
        max_backoff: the longest wait between two attempts.
    """

    def __init__(
        self,
        base_url: str,
        database: str,
        *,
        credentials: InfluxCredentials | None = None,
        timeout: float = 30.0,
        first_backoff: float = FIRST_BACKOFF_S,
        max_backoff: float = MAX_BACKOFF_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.database = database
        self._auth = (
            aiohttp.BasicAuth(credentials.user, credentials.password) if credentials else None
        )
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._session: aiohttp.ClientSession | None = None
        #: Points written (acknowledged by the server).
        self.points_written = 0
        #: Requests that failed and were retried.
        self.retries = 0
        #: Loop time since which writes fail (``None``: the last one succeeded).
        self.failing_since: float | None = None
        #: The last failure, one line (``None`` once a write succeeds).
        self.last_error: str | None = None

    async def __aenter__(self) -> InfluxWriter:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the HTTP session and ``CREATE DATABASE`` (harmless when it exists; a user
        without the right is left to the first write to report)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, auth=self._auth)
        await self._retrying(self._create_database, what="creating the database")

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def write_intervals(self, intervals: Iterable[TelemetryInterval]) -> None:
        """Write ``intervals`` as ``battery_interval`` points (returns once acknowledged)."""
        await self.write_lines([interval_line(iv) for iv in intervals])

    async def write_hours(self, rows: Iterable[HourlyRow]) -> None:
        """Write hourly ``rows`` as ``battery_hour`` points (returns once acknowledged)."""
        await self.write_lines([hour_line(row) for row in rows])

    async def write_lines(self, lines: Sequence[str]) -> None:
        """Write line-protocol ``lines``, one request per :data:`MAX_POINTS`, each retried
        until acknowledged.

        Raises:
            InfluxWriteError: a refusal retrying cannot fix.
        """
        for start in range(0, len(lines), MAX_POINTS):
            chunk = lines[start : start + MAX_POINTS]
            body = ("\n".join(chunk) + "\n").encode()

            async def post(body: bytes = body) -> None:
                await self._post(body)

            await self._retrying(post, what=f"writing {len(chunk)} points")
            self.points_written += len(chunk)

    async def _create_database(self) -> None:
        session = self._open_session()
        async with session.post(
            f"{self.base_url}/query", data={"q": f'CREATE DATABASE "{self.database}"'}
        ) as response:
            if response.status in (401, 403):
                return  # not allowed to: the database may exist; the writes will tell
            await self._check(response)

    async def _post(self, body: bytes) -> None:
        session = self._open_session()
        async with session.post(
            f"{self.base_url}/write",
            params={"db": self.database, "precision": "s"},
            data=body,
            headers={"Content-Type": "text/plain; charset=utf-8"},
        ) as response:
            await self._check(response)

    async def _check(self, response: aiohttp.ClientResponse) -> None:
        if response.status < 300:
            await response.read()
            return
        text = " ".join((await response.text(errors="replace")).split())[:300]
        message = f"InfluxDB {self.base_url} answered {response.status}: {text}"
        if response.status in _FATAL:
            raise InfluxWriteError(message, status=response.status)
        raise _Transient(message)

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("InfluxWriter.open() was not called")
        return self._session

    async def _retrying(self, attempt: Any, *, what: str) -> None:
        delay = self._first_backoff
        loop = asyncio.get_running_loop()
        while True:
            try:
                await attempt()
            except (_Transient, aiohttp.ClientError, TimeoutError, OSError) as err:
                reason = str(err) or type(err).__name__
                if self.failing_since is None:
                    self.failing_since = loop.time()
                    _LOGGER.warning(
                        "InfluxDB %s: %s failed (%s); retrying with back-off, nothing skipped",
                        self.base_url,
                        what,
                        reason,
                    )
                self.last_error = reason
                self.retries += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
                continue
            if self.failing_since is not None:
                _LOGGER.warning(
                    "InfluxDB %s: writing again after %.0f s",
                    self.base_url,
                    loop.time() - self.failing_since,
                )
            self.failing_since = None
            self.last_error = None
            return


class _Transient(Exception):
    """A failed write worth retrying."""
