"""The poll engine's settings: one frozen object, validated on construction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest

from enphase_battery import InvalidRequestError
from enphase_battery.poll.settings import DEFAULT_REVISE_FOR, PollSettings


def test_defaults_and_the_seconds_the_engine_reads() -> None:
    settings = PollSettings()
    assert settings.settle == timedelta(hours=1)
    assert settings.late_horizon == timedelta(days=6)
    assert settings.revise_for == DEFAULT_REVISE_FOR
    assert (settings.settle_s, settings.late_horizon_s, settings.revise_s) == (
        3600.0,
        6 * 86_400.0,
        DEFAULT_REVISE_FOR.total_seconds(),
    )
    assert settings.start_at_s is None
    start = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    assert PollSettings(start_at=start).start_at_s == int(start.timestamp())


def test_frozen() -> None:
    settings = PollSettings()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        settings.settle = timedelta(0)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"settle": 3600}, "settle must be a non-negative timedelta"),
        ({"settle": timedelta(seconds=-1)}, "settle must be a non-negative timedelta"),
        ({"late_horizon": timedelta(minutes=1)}, "late_horizon must lie between settle"),
        ({"late_horizon": timedelta(days=7)}, "late_horizon must lie between settle"),
        ({"revise_for": timedelta(hours=1)}, "revise_for must be 0"),
        ({"revise_for": timedelta(days=7)}, "revise_for must be 0"),
        ({"start_at": datetime(2026, 1, 1)}, "start_at must be timezone-aware"),
        ({"start_at": "2026-01-01"}, "start_at must be a datetime"),
        ({"concurrency": 0}, "concurrency must be an int >= 1"),
        ({"concurrency": True}, "concurrency must be an int >= 1"),
    ],
)
def test_a_bad_value_is_refused_with_the_pollers_message(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        PollSettings(**kwargs)  # type: ignore[arg-type]


def test_no_revisions_is_allowed() -> None:
    assert PollSettings(revise_for=timedelta(0)).revise_s == 0.0
