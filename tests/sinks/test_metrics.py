"""The exporter's state alone: counters with revisions' differences, /healthz's reasons,
and the text format prometheus_client renders from it."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import generate_latest

from enphase_battery.models.delivered import TelemetryInterval
from enphase_battery.poll.views import SystemProblem
from enphase_battery.sinks.metrics import ExporterState, registry

END = datetime(2026, 5, 31, 12, 15, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def iv(charge: int, *, partial: bool = False, revision: int = 0) -> TelemetryInterval:
    return TelemetryInterval(7, "battery", END, charge, 10, 55, 1, 2, partial, revision)


def test_a_revision_adds_its_difference_and_an_unknown_one_adds_nothing() -> None:
    state = ExporterState(stall_after_s=60, clock=Clock())
    state.record([iv(100, partial=True)])
    state.record([iv(150, revision=1)])
    assert state.charge_wh[(7, "battery")] == 150
    # A revision of an interval this process never delivered (delivered before a restart).
    later = TelemetryInterval(7, "battery", END.replace(minute=30), 90, 0, 56, 2, 2, False, 1)
    state.record([later])
    assert state.charge_wh[(7, "battery")] == 150
    assert state.intervals_delivered == 3
    assert state.newest[(7, "battery")] == (later.end_at.timestamp(), 56)


def test_health_says_why_in_one_line() -> None:
    clock = Clock()
    state = ExporterState(stall_after_s=60, clock=clock)
    assert state.health() == (True, "ok: starting")
    state.answered(200)
    clock.now += 61
    healthy, line = state.health()
    assert not healthy
    assert line == "stalled: no API answer for 61 s"
    state.failed("EnphaseConnectionError: cannot connect")
    assert state.health()[1].endswith("; last error: EnphaseConnectionError: cannot connect")
    state.answered(200)
    assert state.health()[0]
    state.problems = (
        SystemProblem(7, "AuthenticationError", 401, "refresh token refused", END, 1, END),
    )
    assert state.health() == (False, "token refused: refresh token refused")
    state.problems = ()
    state.stopped = "quota spent: the month's 1000 requests are used"
    assert state.health() == (False, "quota spent: the month's 1000 requests are used")


def test_the_text_format() -> None:
    state = ExporterState(stall_after_s=60, clock=Clock())
    state.record([iv(100)])
    state.answered(200)
    state.answered(503)
    text = generate_latest(registry(state)).decode()
    assert 'enphase_battery_soc_percent{source="battery",system_id="7"} 55.0' in text
    assert 'enphase_battery_charge_wh_total{source="battery",system_id="7"} 100.0' in text
    assert 'enphase_battery_api_requests_total{outcome="2xx"} 1.0' in text
    assert 'enphase_battery_api_requests_total{outcome="5xx"} 1.0' in text
    assert "enphase_battery_healthy 1.0" in text
    # Prometheus's advice for slow sources: no timestamps on samples.
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    values = [
        line.rsplit("} ", 1)[-1] if "}" in line else line.split(" ", 1)[1] for line in samples
    ]
    assert all(len(value.split()) == 1 for value in values), samples
