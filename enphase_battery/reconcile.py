"""The hole check: do the 15-minute intervals add up to the batteries' lifetime counters?

``storage_meter_readings`` gives each battery's lifetime charged / discharged Wh at a
``read_at``; between two readings, the battery's 15-minute intervals must add up to
the counters' difference.  :func:`reconcile` reads the counters at ``start``, every
``step`` and ``end``, fetches the intervals in between (a week per request), and
reports each span whose energy does not add up, and each interval label missing.

**Tolerance.**  Every interval's energy is a whole Wh, and so is each counter; an
interval's rounding (or truncation) loses less than 1 Wh, each of the two readings less
than 1 Wh.  So honest data differ by at most ``intervals + 2`` Wh over a span:
:data:`TOLERANCE_WH_PER_INTERVAL` x intervals + :data:`TOLERANCE_WH_FIXED`.  A reading
taken inside an interval makes that interval straddle the span's edge: its energy is
counted as "may belong" (``edge_*_wh``), widening the bound on that side only.
"""

from __future__ import annotations

import enum
import itertools
from datetime import UTC, datetime, timedelta
from typing import Protocol

import attrs

from enphase_battery.exceptions import InvalidRequestError
from enphase_battery.models import BatteryTelemetry, EnchargeTelemetry, Granularity, validation
from enphase_battery.models.now import StorageMeterReadings, SystemSummary

__all__ = [
    "BATTERY_TOTAL",
    "TOLERANCE_WH_FIXED",
    "TOLERANCE_WH_PER_INTERVAL",
    "LifetimeReads",
    "Reconciliation",
    "SpanCheck",
    "Verdict",
    "check_span",
    "reconcile",
]

TOLERANCE_WH_PER_INTERVAL = 1
TOLERANCE_WH_FIXED = 2
#: ``SpanCheck.source`` when the system-level battery telemetry was checked against the
#: sum of all counters (``per_encharge=False``; the Watt plan has no per-Encharge data).
BATTERY_TOTAL = "battery"
_INTERVAL_S = 900
_WEEK_S = 7 * 86_400

#: end_at epoch -> (charge Wh, discharge Wh).
Series = dict[int, tuple[int, int]]


class LifetimeReads(Protocol):
    """The four reads the hole check makes: :class:`~enphase_battery.EnphaseClient`
    has them (passed down so that this module never imports the client)."""

    async def get_battery_telemetry(
        self, system_id: int, start_at: datetime | None = ..., granularity: Granularity | str = ...
    ) -> BatteryTelemetry: ...

    async def get_encharge_telemetry(
        self,
        system_id: int,
        serial_no: str,
        start_at: datetime | None = ...,
        granularity: Granularity | str = ...,
    ) -> EnchargeTelemetry: ...

    async def get_system_summary(self, system_id: int) -> SystemSummary: ...

    async def get_storage_meter_readings(
        self, system_id: int, end_at: datetime | None = ...
    ) -> StorageMeterReadings: ...


class Verdict(enum.StrEnum):
    """How a span came out."""

    OK = "ok"
    #: The counters moved more than the intervals show: energy is missing (a hole).
    SHORT = "short"
    #: The intervals show more than the counters moved: something counted twice.
    EXCESS = "excess"
    #: The energy adds up, but some interval labels are absent (idle intervals missing).
    MISSING_INTERVALS = "missing_intervals"


@attrs.frozen
class SpanCheck:
    """One battery (or the total) between two counter readings, ``(start, end]``."""

    source: str
    start: datetime
    end: datetime
    counter_charge_wh: int
    counter_discharge_wh: int
    intervals_charge_wh: int
    intervals_discharge_wh: int
    #: Energy of intervals straddling a reading (0 when readings fall on quarter-hours).
    edge_charge_wh: int
    edge_discharge_wh: int
    expected_intervals: int
    missing: tuple[datetime, ...]
    tolerance_wh: int

    @property
    def charge_shortfall_wh(self) -> int:
        """Counter minus intervals (positive: intervals are missing energy)."""
        return self.counter_charge_wh - self.intervals_charge_wh

    @property
    def discharge_shortfall_wh(self) -> int:
        """Counter minus intervals, for discharge."""
        return self.counter_discharge_wh - self.intervals_discharge_wh

    @property
    def verdict(self) -> Verdict:
        """OK, SHORT, EXCESS or MISSING_INTERVALS (SHORT wins over EXCESS)."""
        tol = self.tolerance_wh
        short = (
            self.charge_shortfall_wh - self.edge_charge_wh > tol
            or self.discharge_shortfall_wh - self.edge_discharge_wh > tol
        )
        if short:
            return Verdict.SHORT
        if self.charge_shortfall_wh < -tol or self.discharge_shortfall_wh < -tol:
            return Verdict.EXCESS
        return Verdict.MISSING_INTERVALS if self.missing else Verdict.OK

    @property
    def ok(self) -> bool:
        """Whether the span adds up with no interval missing."""
        return self.verdict is Verdict.OK


@attrs.frozen
class Reconciliation:
    """The result of :func:`reconcile`: every span checked, and what it cost."""

    system_id: int
    start: datetime
    end: datetime
    spans: tuple[SpanCheck, ...]
    #: API requests the check spent.
    requests: int
    #: Batteries or spans that could not be checked, and why.
    skipped: tuple[str, ...] = ()

    @property
    def problems(self) -> tuple[SpanCheck, ...]:
        """The spans that do not add up or miss intervals."""
        return tuple(s for s in self.spans if not s.ok)

    @property
    def ok(self) -> bool:
        """Whether every span adds up."""
        return not self.problems


def _dt(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def check_span(
    source: str,
    series: Series,
    a: tuple[int, int, int],
    b: tuple[int, int, int],
    *,
    extra_tolerance_wh: int = 0,
) -> SpanCheck:
    """Compare ``series`` over ``(a, b]`` with the counters; ``a`` and ``b`` are
    ``(read_at, charged_wh, discharged_wh)``.  Pure: no I/O."""
    t_a, charged_a, discharged_a = a
    t_b, charged_b, discharged_b = b
    # Wholly inside: (end_at - 900, end_at] within (t_a, t_b].
    first = -(-(t_a + _INTERVAL_S) // _INTERVAL_S) * _INTERVAL_S
    last = t_b - t_b % _INTERVAL_S
    inside = range(first, last + 1, _INTERVAL_S) if last >= first else range(0)
    charge = discharge = 0
    missing: list[datetime] = []
    for end_at in inside:
        values = series.get(end_at)
        if values is None:
            missing.append(_dt(end_at))
            continue
        charge += values[0]
        discharge += values[1]
    edge_charge = edge_discharge = 0
    for end_at in {first - _INTERVAL_S, last + _INTERVAL_S}:
        straddles = end_at - _INTERVAL_S < t_a < end_at or end_at - _INTERVAL_S < t_b < end_at
        if straddles and end_at in series:
            edge_charge += series[end_at][0]
            edge_discharge += series[end_at][1]
    return SpanCheck(
        source=source,
        start=_dt(t_a),
        end=_dt(t_b),
        counter_charge_wh=charged_b - charged_a,
        counter_discharge_wh=discharged_b - discharged_a,
        intervals_charge_wh=charge,
        intervals_discharge_wh=discharge,
        edge_charge_wh=edge_charge,
        edge_discharge_wh=edge_discharge,
        expected_intervals=len(inside),
        missing=tuple(missing),
        tolerance_wh=TOLERANCE_WH_PER_INTERVAL * len(inside)
        + TOLERANCE_WH_FIXED
        + extra_tolerance_wh,
    )


async def _series(
    client: LifetimeReads, system_id: int, serial: str | None, lo: int, hi: int
) -> tuple[Series, int]:
    """Intervals with end_at in (lo, hi] (and a little after), a week per request; and
    the request count."""
    series: Series = {}
    requests = 0
    start = lo
    while start < hi:
        at = _dt(start)
        requests += 1
        if serial is None:
            battery = await client.get_battery_telemetry(system_id, at, Granularity.WEEK)
            for iv in battery.intervals:
                series[int(iv.end_at.timestamp())] = (iv.charge.enwh, iv.discharge.enwh)
        else:
            device = await client.get_encharge_telemetry(system_id, serial, at, Granularity.WEEK)
            for ev in device.intervals:
                series[int(ev.end_at.timestamp())] = (ev.charge.enwh, ev.discharge.enwh)
        start += _WEEK_S
    return series, requests


def _data_begins(start: datetime, first_row: dict[str, tuple[int, int, int]]) -> datetime | None:
    """Where the counters begin, judged by the reading at ``start`` (the last reading at
    or before it): ``start`` when a battery has one, the earliest ``read_at`` when every
    reading is later (the system's data begins there), ``None`` when there is none."""
    if not first_row:
        return None
    earliest = min(read_at for read_at, _, _ in first_row.values())
    return max(start, _dt(earliest))


async def _first_interval(client: LifetimeReads, system_id: int, start: datetime) -> datetime:
    """The system's first interval from its summary (``operational_at``), or ``start``."""
    summary = await client.get_system_summary(system_id)
    first = summary.operational_at
    return start if first is None or first <= start else first


async def reconcile(
    client: LifetimeReads,
    system_id: int,
    start: datetime,
    end: datetime | None = None,
    *,
    step: timedelta = timedelta(days=1),
    per_encharge: bool = True,
    extra_tolerance_wh: int = 0,
) -> Reconciliation:
    """Check the intervals against the lifetime counters from ``start`` to ``end`` (now).

    Counters are read at ``start``, every ``step`` after it, and ``end``: one request
    each; the intervals cost one request per week per battery (``per_encharge=True``,
    Kilowatt plan and up) or per week in all (``per_encharge=False``: the system
    battery telemetry against the sum of the counters, Watt plan).  The steps before the
    system's first interval are skipped (the reading at ``start`` says where its
    counters begin; with no reading at all, one ``summary`` request does).

    Raises :class:`~enphase_battery.InvalidRequestError`, before any request, for a
    ``start`` in the future or more than two years back (what the API serves).
    """
    system_id = validation.system_id(system_id)
    validation.aware_datetime("start", start)
    now = datetime.now(UTC)
    # Checked before any request, on the only clock there is then (the local one, with
    # the same minute of slack as a poller's start_at): a future start has no counters
    # to read and would "add up" with nothing checked.
    if start > now + timedelta(minutes=1):
        raise InvalidRequestError(
            f"start {start.isoformat()} is in the future (now is"
            f" {now.isoformat(timespec='minutes')}): nothing to check yet"
        )
    if start < now - validation.MAX_BACKFILL:
        # The telemetry refuses a start over two years back: every counter reading
        # before it (one request a step) would be spent for nothing.
        raise InvalidRequestError(
            f"start {start.isoformat()} is more than two years back (the API serves"
            f" telemetry from {(now - validation.MAX_BACKFILL).isoformat(timespec='minutes')})"
        )
    if end is not None:
        validation.aware_datetime("end", end)
        if end <= start:
            raise InvalidRequestError("end must be after start")
    if not isinstance(step, timedelta) or step < timedelta(minutes=15):
        raise InvalidRequestError("step must be a timedelta of at least 15 minutes")
    if not isinstance(extra_tolerance_wh, int) or extra_tolerance_wh < 0:
        raise InvalidRequestError("extra_tolerance_wh must be an int >= 0")
    requests = 0
    skipped: list[str] = []

    async def read(at: datetime | None) -> dict[str, tuple[int, int, int]]:
        nonlocal requests
        answer = await client.get_storage_meter_readings(system_id, at)
        requests += 1
        row: dict[str, tuple[int, int, int]] = {}
        for reading in answer.meter_readings:
            if (
                reading.read_at is None
                or reading.value_charged is None
                or reading.value_discharged is None
            ):
                skipped.append(f"{reading.serial_num}: no counter value at {at or 'now'}")
                continue
            row[reading.serial_num] = (
                int(reading.read_at.timestamp()),
                reading.value_charged,
                reading.value_discharged,
            )
        return row

    last_row: dict[str, tuple[int, int, int]] | None = None
    if end is None:
        # "Now" is the server's: the newest reading says how far the meters have come.
        last_row = await read(None)
        newest = max((t for t, _, _ in last_row.values()), default=None)
        end = datetime.fromtimestamp(newest, UTC) if newest is not None else start
    # The counters at start first: they say where the system's data begins, and the
    # days before its first interval are skipped (one request each, nothing to check).
    readings: list[dict[str, tuple[int, int, int]]] = []
    begins = start
    if start < end:
        first_row = await read(start)
        found = _data_begins(start, first_row)
        if found is None:
            requests += 1  # the summary asked for the system's first interval
            found = await _first_interval(client, system_id, start)
            if start < found < end:
                first_row = await read(found)
        begins = found
        readings.append(first_row)
    # else: the newest reading is before start (the API's "now" may lag ours): nothing
    # after start to check, and a reading at start would be "in the future".
    moment = start + step
    while moment < end:
        if moment > begins:
            readings.append(await read(moment))
        moment += step
    readings.append(last_row if last_row is not None else await read(end))
    spans: list[SpanCheck] = []
    serials = sorted({serial for row in readings for serial in row})
    if per_encharge:
        for serial in serials:
            points = [row[serial] for row in readings if serial in row]
            if len(points) < 2:
                skipped.append(f"{serial}: fewer than two counter readings")
                continue
            series, cost = await _series(client, system_id, serial, points[0][0], points[-1][0])
            requests += cost
            spans.extend(
                check_span(serial, series, a, b, extra_tolerance_wh=extra_tolerance_wh)
                for a, b in itertools.pairwise(points)
                if b[0] > a[0]
            )
    else:
        totals = []
        for row in readings:
            if set(row) != set(serials) or len({t for t, _, _ in row.values()}) != 1:
                skipped.append("a reading is missing a battery or the read times differ")
                continue
            read_at = next(iter(row.values()))[0]
            totals.append(
                (read_at, sum(v[1] for v in row.values()), sum(v[2] for v in row.values()))
            )
        if len(totals) >= 2:
            series, cost = await _series(client, system_id, None, totals[0][0], totals[-1][0])
            requests += cost
            spans.extend(
                check_span(BATTERY_TOTAL, series, a, b, extra_tolerance_wh=extra_tolerance_wh)
                for a, b in itertools.pairwise(totals)
                if b[0] > a[0]
            )
    return Reconciliation(
        system_id=system_id,
        start=start,
        end=end,
        spans=tuple(spans),
        requests=requests,
        skipped=tuple(skipped),
    )
