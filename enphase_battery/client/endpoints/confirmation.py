"""Confirmed writes: read the state back until it shows what was asked, or time is up.

A PUT is answered before the gateway has applied it.  :func:`wait_until_applied` reads
the write's GET (through the client's own method, so every read passes the quota
governor and counts like any other call) every ``interval_s`` until a read shows every
asked field, or ``timeout_s`` has passed, and says which of three things happened
(:class:`~enphase_battery.models.confirmation.WriteOutcome`): applied, still pending, or
overridden (shown, then changed away while ``settle_s`` was watching it).

``latest_telemetry`` shows the batteries' state (charging, idle...), no setting, so the
confirmation reads only the write's GET.  The whole wait is bounded by ``timeout_s``: a
read still running then is cancelled (reads are safe to cut short) and the outcome is
decided by what was seen so far.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs

from enphase_battery.client.endpoints.base import EndpointBase
from enphase_battery.client.endpoints.writes import WRITES, PreparedWrite
from enphase_battery.exceptions import EnphaseError, InvalidRequestError
from enphase_battery.models import validation
from enphase_battery.models.confirmation import WriteConfirmation, WriteOutcome

__all__ = [
    "DEFAULT_INTERVAL_S",
    "DEFAULT_TIMEOUT_S",
    "MAX_TIMEOUT_S",
    "ConfirmationEndpoints",
    "WaitBounds",
    "send_write",
    "wait_until_applied",
]

_S = TypeVar("_S")
_A = TypeVar("_A")

#: How long a confirmation waits by default: gateways on Ethernet or Wi-Fi pick a change up
#: within a minute or two [inferred: the spec says nothing of the delay].
DEFAULT_TIMEOUT_S = 120.0
#: Seconds between reads by default (6 reads a minute; Partner allows 300 a minute).
DEFAULT_INTERVAL_S = 10.0
#: The longest wait accepted: a gateway that has not applied a change in an hour is
#: offline, and a caller should come back later rather than hold a task open.
MAX_TIMEOUT_S = 3600.0


@attrs.frozen
class WaitBounds:
    """How long a confirmation may take and how often it reads (checked when built).

    Attributes:
        timeout_s: the whole wait, reads included (0 < timeout_s <= 1 hour).
        interval_s: seconds between reads (> 0).
        settle_s: once a read shows the change, keep reading this long; a read that no
            longer shows it makes the outcome ``overridden`` (0: stop at the first match).
    """

    timeout_s: float = DEFAULT_TIMEOUT_S
    interval_s: float = DEFAULT_INTERVAL_S
    settle_s: float = 0.0

    @classmethod
    def checked(cls, timeout_s: object, interval_s: object, settle_s: object) -> WaitBounds:
        """The bounds, or :class:`InvalidRequestError` (before anything is sent)."""
        values: dict[str, float] = {}
        for name, value in (
            ("timeout_s", timeout_s),
            ("interval_s", interval_s),
            ("settle_s", settle_s),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidRequestError(f"{name} must be a number of seconds, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise InvalidRequestError(f"{name} must be finite and >= 0, got {value!r}")
            values[name] = float(value)
        if not 0 < values["timeout_s"] <= MAX_TIMEOUT_S:
            raise InvalidRequestError(
                f"timeout_s must be above 0 and at most {MAX_TIMEOUT_S:g} s, got {timeout_s!r}"
            )
        if values["interval_s"] <= 0:
            raise InvalidRequestError(f"interval_s must be above 0, got {interval_s!r}")
        if values["settle_s"] >= values["timeout_s"]:
            raise InvalidRequestError("settle_s must be shorter than timeout_s")
        return cls(**values)


async def send_write(
    endpoints: EndpointBase,
    write: PreparedWrite,
    model: type[_A],
    system_id: int,
    bounds: WaitBounds | None,
    read: Callable[[], Awaitable[_S]],
    **path_params: str,
) -> _A | WriteConfirmation[_S]:
    """Send ``write`` (its body, its resend rule); with ``bounds`` (``confirm=True``), then
    :func:`wait_until_applied` with ``read``, the operation's matching GET."""
    around: dict[str, Any] = dict(path_params)  # the path's other ids (activation_id)
    answer = await endpoints._call(
        write.operation_id,
        model,
        system_id,
        body=dict(write.body),
        full_state=write.full_state,
        **around,
    )
    if bounds is None:
        return answer
    return await wait_until_applied(read, write, system_id, bounds, answer=answer)


async def wait_until_applied(
    read: Callable[[], Awaitable[_S]],
    write: PreparedWrite,
    system_id: int,
    bounds: WaitBounds,
    *,
    answer: Any = None,
) -> WriteConfirmation[_S]:
    """Read with ``read`` until the state shows ``write``'s fields, or ``bounds`` run out.

    A read that fails raises as any call does (after the client's own retries), with a
    note saying the write had been sent.
    """
    started = time.monotonic()
    deadline = started + bounds.timeout_s
    reads = 0
    observed: _S | None = None
    mismatched: tuple[str, ...] = tuple(write.expected)
    matched_at: float | None = None

    def result(outcome: WriteOutcome) -> WriteConfirmation[_S]:
        return WriteConfirmation(
            operation_id=write.operation_id,
            system_id=system_id,
            outcome=outcome,
            requested=write.expected,
            answer=answer,
            observed=observed,
            mismatched=mismatched,
            reads=reads,
            waited_s=time.monotonic() - started,
        )

    while True:
        try:
            async with asyncio.timeout_at(_loop_time_at(deadline)):
                state = await read()
        except TimeoutError:
            break  # the deadline passed during the read: decide on what was seen
        except EnphaseError as err:
            err.add_note(
                f"{write.operation_id} was sent and answered; reading it back"
                f" ({write.read_operation_id}) failed after {reads} read(s)"
            )
            raise
        reads += 1
        observed, mismatched = state, write.mismatched(state)
        now = time.monotonic()
        if mismatched:
            if matched_at is not None:
                return result(WriteOutcome.OVERRIDDEN)
        elif matched_at is None:
            matched_at = now
        if matched_at is not None and now >= matched_at + bounds.settle_s:
            return result(WriteOutcome.APPLIED)
        if now >= deadline:
            break
        await asyncio.sleep(min(bounds.interval_s, deadline - now))
    return result(WriteOutcome.PENDING if matched_at is None else WriteOutcome.APPLIED)


def _loop_time_at(monotonic_deadline: float) -> float:
    """A ``time.monotonic()`` deadline on the running loop's clock."""
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())


class ConfirmationEndpoints(EndpointBase):
    """:meth:`wait_applied`: confirm a write sent earlier (or by someone else)."""

    async def wait_applied(
        self,
        operation_id: str,
        system_id: int,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        interval_s: float = DEFAULT_INTERVAL_S,
        settle_s: float = 0.0,
        **requested: Any,
    ) -> WriteConfirmation[Any]:
        """Wait until the system shows a write: ``await client.wait_applied(
        "update_battery_mode", system_id, cfg_allowed=True, dtg_allowed=False)``.

        ``operation_id`` names the write (``update_system_battery_settings``,
        ``update_system_storm_guard``, ``update_system_load_control``,
        ``update_battery_mode``); ``requested`` are that update method's keyword
        arguments (``enabled=`` for Storm Guard).  Reads the matching GET every
        ``interval_s`` until it shows them all, or ``timeout_s`` (at most an hour) has
        passed; with ``settle_s``, keeps reading that long after the first match to catch
        a revert.  Every read counts against the quota like any other call.

        Returns:
            a :class:`~enphase_battery.models.confirmation.WriteConfirmation`:
            ``applied``, ``pending`` or ``overridden``, with the last state read.

        Raises:
            InvalidRequestError: an unknown write, bad arguments or bounds (nothing is
                read then).
            EnphaseError: a read failed (after the client's retries).
        """
        prepare = WRITES.get(operation_id)
        if prepare is None:
            raise InvalidRequestError(
                f"unknown write {operation_id!r}: one of {', '.join(sorted(WRITES))}"
            )
        try:
            write = prepare(**requested)
        except TypeError as err:
            raise InvalidRequestError(f"{operation_id}: {err}") from None
        bounds = WaitBounds.checked(timeout_s, interval_s, settle_s)
        checked = validation.system_id(system_id)
        read: Callable[[int], Awaitable[Any]] = getattr(self, write.read_operation_id)
        return await wait_until_applied(lambda: read(checked), write, checked, bounds)
