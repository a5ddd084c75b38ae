"""What ``enphase-battery serve`` exports: cached state, read by Prometheus scrapes.

:class:`ExporterState` holds what the exporter knows, updated by its poll loop as
batches are delivered and every few seconds from the poller's progress; a scrape reads
it and never triggers an API request (the data is 15-minute data; Prometheus's advice
for slow sources).  :func:`registry` returns a ``prometheus_client`` registry whose
collector renders that state in the Prometheus text format (the ``exporter`` extra:
``pip install 'enphase-battery[exporter]'``).  No sample carries a timestamp.

Series (labels in braces):

* ``enphase_battery_soc_percent{system_id,source}``: state of charge at the end of the
  newest delivered interval;
* ``enphase_battery_interval_end_timestamp_seconds{system_id,source}``: that end;
* ``enphase_battery_charge_wh_total`` / ``enphase_battery_discharge_wh_total
  {system_id,source}``: Wh delivered since the exporter started; a revision adds its
  difference from the value delivered before (a revision of an interval delivered by an
  earlier process adds nothing: that process counted it);
* ``enphase_battery_intervals_delivered_total``: intervals delivered (revisions too);
* ``enphase_battery_api_requests_total{outcome}``: API answers by status class
  (``2xx``, ``4xx``, ``429``, ``5xx``...), and ``error`` for a request that got no answer;
* ``enphase_battery_quota_used_requests``, ``enphase_battery_quota_forecast_requests``,
  ``enphase_battery_quota_limit_requests``: the API key's month as the quota governor
  counts it (used, forecast for the month, the plan's monthly quota);
* ``enphase_battery_lag_seconds{system_id}``: how far the system's most lagging stream
  is behind the newest interval the API has shown;
* ``enphase_battery_systems``, ``enphase_battery_systems_in_backoff``: followed, and
  waiting after failures;
* ``enphase_battery_last_success_timestamp_seconds``: the last answered API request;
* ``enphase_battery_healthy``: 1 when ``/healthz`` answers 200, else 0.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from enphase_battery.http.calls import RequestOutcome
from enphase_battery.models.delivered import StreamKey, TelemetryInterval

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from enphase_battery.poll.views import FleetProgress, SystemProblem

__all__ = ["ExporterState", "RequestCounter", "registry"]

#: How long a value delivered partial is remembered, for the difference its revision adds
#: (beyond the pollers' longest ``revise_for`` of 6 h by default).
REVISABLE_S = 2 * 86400.0


class ExporterState:
    """What the exporter knows, and whether polling works.

    Args:
        stall_after_s: no answered API request for this long: unhealthy.
        clock: wall time in seconds (a test's own).
    """

    def __init__(self, *, stall_after_s: float, clock: Callable[[], float] = time.time) -> None:
        self.stall_after_s = stall_after_s
        self._clock = clock
        self.started = clock()
        #: Newest delivered interval per stream: (end, soc).
        self.newest: dict[StreamKey, tuple[float, int | None]] = {}
        self.charge_wh: Counter[StreamKey] = Counter()
        self.discharge_wh: Counter[StreamKey] = Counter()
        self.intervals_delivered = 0
        #: Values delivered partial, by (system, source, end): a revision adds the change.
        self._revisable: dict[tuple[int, str, float], tuple[int, int]] = {}
        self._pruned_at = 0.0
        #: API answers by outcome.
        self.requests: Counter[str] = Counter()
        #: Wall time of the last answered API request.
        self.last_success: float | None = None
        #: The last failure a request ended with (one line).
        self.last_error: str | None = None
        #: Why polling stopped (token refused, quota spent); ``None`` while it runs.
        self.stopped: str | None = None
        #: The fleet's progress and problems, refreshed by the poll loop.
        self.progress: FleetProgress | None = None
        self.lag_s: dict[int, float] = {}
        self.problems: tuple[SystemProblem, ...] = ()

    # -- updates from the poll loop ------------------------------------------------------

    def record(self, intervals: Iterable[TelemetryInterval]) -> None:
        """Count delivered intervals (call it once the batch is delivered)."""
        for iv in intervals:
            stream = (iv.system_id, iv.source)
            end = iv.end_at.timestamp()
            key = (iv.system_id, iv.source, end)
            self.intervals_delivered += 1
            if iv.revision == 0:
                self.charge_wh[stream] += iv.charge_wh
                self.discharge_wh[stream] += iv.discharge_wh
            else:
                before = self._revisable.pop(key, None)
                if before is not None:
                    self.charge_wh[stream] += iv.charge_wh - before[0]
                    self.discharge_wh[stream] += iv.discharge_wh - before[1]
            if iv.partial:
                self._revisable[key] = (iv.charge_wh, iv.discharge_wh)
            newest = self.newest.get(stream)
            if newest is None or end >= newest[0]:
                self.newest[stream] = (end, iv.soc_percent)
        now = self._clock()
        if now - self._pruned_at > 3600:
            self._pruned_at = now
            horizon = max((end for end, _ in self.newest.values()), default=0.0) - REVISABLE_S
            for key in [k for k in self._revisable if k[2] < horizon]:
                del self._revisable[key]

    def answered(self, status: int) -> None:
        """An API request was answered with ``status``."""
        outcome = "429" if status == 429 else f"{status // 100}xx"
        self.requests[outcome] += 1
        if status < 400:
            self.last_success = self._clock()
            self.last_error = None

    def failed(self, reason: str) -> None:
        """An API request got no answer (or one worth a retry): ``reason``, one line."""
        self.last_error = reason

    def unanswered(self) -> None:
        """An API request got no answer at all."""
        self.requests["error"] += 1

    # -- health ----------------------------------------------------------------------------

    def health(self) -> tuple[bool, str]:
        """``(healthy, one line)``: what ``/healthz`` answers (200 or 503)."""
        now = self._clock()
        if self.stopped is not None:
            return False, self.stopped
        refused = [p for p in self.problems if p.error in _TOKEN_ERRORS]
        if refused:
            return False, f"token refused: {refused[0].message}"
        since = self.last_success if self.last_success is not None else self.started
        if now - since > self.stall_after_s:
            what = "no answered API request" if self.last_success is None else "no API answer"
            reason = f"; last error: {self.last_error}" if self.last_error else ""
            return False, f"stalled: {what} for {now - since:.0f} s{reason}"
        progress = self.progress
        if progress is None:
            return True, "ok: starting"
        lag = "" if progress.max_lag_s is None else f", max lag {progress.max_lag_s:.0f} s"
        return True, (
            f"ok: {progress.systems} systems, {progress.systems_in_backoff} in backoff{lag}"
        )


_TOKEN_ERRORS = frozenset({"AuthenticationError", "NotSignedInError"})


class RequestCounter:
    """Counts API requests by outcome: a :data:`~enphase_battery.http.calls.RequestObserver`
    for :meth:`EnphaseClient.observe_requests <enphase_battery.EnphaseClient.observe_requests>`."""

    def __init__(self, state: ExporterState) -> None:
        self.state = state

    def __call__(self, outcome: RequestOutcome) -> None:
        """One try: its status, or no answer."""
        status = outcome.status
        if status is None:
            self.state.unanswered()
            self.state.failed(outcome.error or "no answer")
            return
        self.state.answered(status)
        if status == 429 or status >= 500:
            self.state.failed(f"{outcome.operation_id} answered HTTP {status}")


def _stream_labels(key: StreamKey) -> list[str]:
    return [str(key[0]), key[1]]


class _Collector:
    """Renders an :class:`ExporterState` for ``prometheus_client`` at each scrape."""

    def __init__(self, state: ExporterState) -> None:
        self.state = state

    def describe(self) -> list[Metric]:
        return []  # no checks at registration: the series come and go with the systems

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        state = self.state
        labels = ["system_id", "source"]
        soc = GaugeMetricFamily(
            "enphase_battery_soc_percent",
            "State of charge at the end of the newest delivered interval.",
            labels=labels,
        )
        end = GaugeMetricFamily(
            "enphase_battery_interval_end_timestamp_seconds",
            "End of the newest delivered interval (Unix time).",
            labels=labels,
        )
        for key, (end_s, soc_percent) in state.newest.items():
            if soc_percent is not None:
                soc.add_metric(_stream_labels(key), soc_percent)
            end.add_metric(_stream_labels(key), end_s)
        yield soc
        yield end
        for name, counts, what in (
            ("enphase_battery_charge_wh", state.charge_wh, "into"),
            ("enphase_battery_discharge_wh", state.discharge_wh, "out of"),
        ):
            family = CounterMetricFamily(
                name,
                f"Energy {what} the battery in the intervals delivered since the exporter"
                " started, Wh (a revision adds its difference).",
                labels=labels,
            )
            for key, value in counts.items():
                family.add_metric(_stream_labels(key), value)
            yield family
        yield CounterMetricFamily(
            "enphase_battery_intervals_delivered",
            "Intervals delivered (revisions included).",
            value=state.intervals_delivered,
        )
        requests = CounterMetricFamily(
            "enphase_battery_api_requests",
            "API requests by outcome: the answer's status class, or error (no answer).",
            labels=["outcome"],
        )
        for outcome, count in sorted(state.requests.items()):
            requests.add_metric([outcome], count)
        yield requests
        progress = state.progress
        if progress is not None:
            yield _gauge(
                "enphase_battery_quota_used_requests",
                "API requests this month as the quota governor counts them (every caller).",
                progress.requests_this_month,
            )
            yield _gauge(
                "enphase_battery_quota_forecast_requests",
                "Forecast of this month's API requests at the current pace.",
                progress.forecast_this_month,
            )
            if progress.monthly_quota is not None:
                yield _gauge(
                    "enphase_battery_quota_limit_requests",
                    "The plan's monthly quota of API requests.",
                    progress.monthly_quota,
                )
            yield _gauge("enphase_battery_systems", "Systems followed.", progress.systems)
            yield _gauge(
                "enphase_battery_systems_in_backoff",
                "Systems waiting after failures.",
                progress.systems_in_backoff,
            )
        lag = GaugeMetricFamily(
            "enphase_battery_lag_seconds",
            "How far the system's most lagging stream is behind the newest interval the"
            " API has shown.",
            labels=["system_id"],
        )
        for system_id, lag_s in state.lag_s.items():
            lag.add_metric([str(system_id)], lag_s)
        yield lag
        if state.last_success is not None:
            yield _gauge(
                "enphase_battery_last_success_timestamp_seconds",
                "When an API request was last answered (Unix time).",
                state.last_success,
            )
        healthy, _ = state.health()
        yield _gauge("enphase_battery_healthy", "1 when /healthz answers 200.", int(healthy))


def _gauge(name: str, documentation: str, value: float) -> Any:
    from prometheus_client.core import GaugeMetricFamily

    return GaugeMetricFamily(name, documentation, value=value)


def registry(state: ExporterState) -> CollectorRegistry:
    """A registry holding only the exporter's collector (no process or platform
    metrics: a scrape shows the batteries).

    Raises:
        ImportError: ``prometheus_client`` is not installed.
    """
    from prometheus_client import CollectorRegistry

    found = CollectorRegistry(auto_describe=False)
    found.register(_Collector(state))
    return found
