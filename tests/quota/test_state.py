"""An admission carries every field of the governor's state it does not change.

The admission builds the new state on every request; a field it forgot would be reset to
its default each time (an API-named month forgotten, a bucket refilled).  The test sets
every field of :class:`GovernorState` to a value other than its default and lists them
all: a field added later fails it until it is listed here and carried.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

from enphase_battery import RateLimits
from enphase_battery.quota.file_backend import FileGovernorBackend
from enphase_battery.quota.governor import SPACING_MARGIN, QuotaGovernor
from enphase_battery.quota.state import GovernorState, MemoryGovernorBackend

NOW = datetime(2026, 6, 10, tzinfo=UTC).timestamp()


class FrozenClock:
    def time(self) -> float:
        return NOW

    async def sleep(self, seconds: float) -> None:
        raise AssertionError(f"an admission with a free slot waited {seconds} s")


def seeded_state(plan: str) -> GovernorState:
    values: dict[str, Any] = {
        "plan": plan,
        # An API-named month (a 429 body said so), not the calendar month.
        "month_start": NOW - 3 * 86_400 - 1234.5,
        "month_end": NOW + 27 * 86_400 - 1234.5,
        "used": 41,
        "used_background": 17,
        # Past: cleared on admission, which is the rule (the API's word has run out).
        "exhausted_until": NOW - 60.0,
        "next_slot_at": NOW - 5.0,
        "bucket_tokens": 123.25,
        "bucket_at": NOW - 30.0,
        "month_from_api": True,
        # The last admission's clock: a little earlier (not stepped back).
        "clock_at": NOW - 10.0,
        # Background work began this month a day ago.
        "background_since": NOW - 86_400.0,
    }
    names = {field.name for field in attrs.fields(GovernorState)}
    assert set(values) == names, f"list the new GovernorState fields here: {names - set(values)}"
    state = GovernorState(**values)
    for field in attrs.fields(GovernorState):
        if field.name != "exhausted_until":
            assert getattr(state, field.name) != field.default, field.name
    return state


async def stored_state(governor: QuotaGovernor) -> GovernorState:
    def read(stored: GovernorState | None) -> tuple[GovernorState, GovernorState]:
        assert stored is not None
        return stored, stored

    return await governor.backend.transact(governor.key, read)


@pytest.mark.parametrize("backend_kind", ["memory", "file"])
async def test_a_user_admission_carries_every_field_it_does_not_count(
    backend_kind: str, tmp_path: Path
) -> None:
    backend = (
        MemoryGovernorBackend()
        if backend_kind == "memory"
        else FileGovernorBackend(tmp_path / "usage.json")
    )
    governor = QuotaGovernor(RateLimits.KILOWATT, backend=backend, clock=FrozenClock())
    seeded = seeded_state(governor.plan)
    await backend.transact(governor.key, lambda _stored: (seeded, None))

    admission = await governor.admit()

    state = await stored_state(governor)
    assert admission.slot_at == NOW  # the next slot was free already
    assert admission.month_start == seeded.month_start
    assert attrs.asdict(state) == {
        **attrs.asdict(seeded),
        "used": 42,
        "exhausted_until": None,
        "next_slot_at": NOW + RateLimits.KILOWATT.min_spacing_s * SPACING_MARGIN,
        "clock_at": NOW,
    }


async def test_a_background_admission_carries_every_field_it_does_not_count() -> None:
    governor = QuotaGovernor(RateLimits.KILOWATT, clock=FrozenClock())
    seeded = seeded_state(governor.plan)
    await governor.backend.transact(governor.key, lambda _stored: (seeded, None))

    admission = await governor.admit(background=True)

    state = await stored_state(governor)
    assert admission.background
    changed = {"used", "used_background", "exhausted_until", "next_slot_at"}
    changed |= {"bucket_tokens", "bucket_at", "clock_at"}
    assert {k: v for k, v in attrs.asdict(state).items() if k not in changed} == {
        k: v for k, v in attrs.asdict(seeded).items() if k not in changed
    }
    assert (state.used, state.used_background, state.bucket_at) == (42, 18, NOW)
    assert state.clock_at == NOW
    # The bucket refilled for 30 s at the budget line's rate, then paid one token.
    budget = governor.background_budget
    assert budget is not None
    assert seeded.bucket_tokens is not None
    rate = (budget - seeded.used_background) / (seeded.month_end - NOW)
    assert state.bucket_tokens == pytest.approx(seeded.bucket_tokens + rate * 30.0 - 1.0)
