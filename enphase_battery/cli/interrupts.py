"""Ctrl-C from the first line of ``main`` to its last: exit 130 and one line, no traceback.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the main thread happens to be.  That
suits the start-up (imports, parsing: nothing to clean up), but not ``asyncio.run`` building
or tearing down its loop (a coroutine never awaited, a task's exception never retrieved,
each a traceback on stderr), nor the last lines of ``main`` (a ``KeyboardInterrupt`` raised
while it writes the error line escapes it).  So one handler, installed first, does what the
moment needs, by :attr:`StopSignal.mode`:

``RAISE``
    start-up: ``KeyboardInterrupt``, which ``main`` reports as "interrupted", 130.
``HOLD``
    while the loop is set up or torn down, and in ``main``'s last lines: the signal is
    noted, and acted on at the next safe point (the command does not start, or the run
    ends with 130).
``CANCEL``
    while the command's coroutine runs: its task is cancelled, so that its ``async with``
    blocks close (``stream`` commits and saves its checkpoint), as Ctrl-C always did.

SIGTERM is asyncio's signal handler's, while the command runs (before: the default, the
process ends at once; nothing has started that could be saved).
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Any

from enphase_battery.cli.errors import _Interrupted

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from types import FrameType

    from enphase_battery.cli.settings import _Context

RAISE = "raise"
HOLD = "hold"
CANCEL = "cancel"


class StopSignal:
    """The process's SIGINT handler for one run of ``main`` (see the module docstring).

    Set :attr:`mode` with a plain assignment, never through a method: a pending signal is
    acted on at a call, and a method call would let it through as ``KeyboardInterrupt``
    just before the new mode takes effect.
    """

    __slots__ = ("_on_cancel", "_previous", "mode", "received")

    def __init__(self) -> None:
        self.mode = RAISE
        #: The first SIGINT held or turned into a cancellation (not one raised as
        #: ``KeyboardInterrupt``: that one reports itself).
        self.received: int | None = None
        self._on_cancel: Callable[[int], object] | None = None
        self._previous: Any = None

    def install(self) -> None:
        """Take SIGINT, unless it is ignored or someone else's (then leave it be)."""
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return  # SIG_IGN (a background job) or an embedding program's own handler
        try:
            signal.signal(signal.SIGINT, self._handle)
        except ValueError:
            return  # not the main thread: asyncio.run's own handling applies
        self._previous = signal.default_int_handler

    def restore(self) -> None:
        """Give SIGINT back to the handler it had before :meth:`install`."""
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def cancel_with(self, on_cancel: Callable[[int], object]) -> None:
        """From now on a SIGINT calls ``on_cancel(signum)`` (once), from the signal handler."""
        self._on_cancel = on_cancel
        self.mode = CANCEL

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.mode == RAISE:
            raise KeyboardInterrupt
        if self.received is not None:
            return  # a second Ctrl-C: the first one's cleanup is under way; let it finish
        self.received = signum
        if self.mode == CANCEL and self._on_cancel is not None:
            self._on_cancel(signum)


async def run_command(
    handler: Callable[[_Context], Coroutine[Any, Any, int]], ctx: _Context, stops: StopSignal
) -> int:
    """Run ``handler``; SIGINT/SIGTERM cancel it so that ``async with`` blocks clean up.

    Raises :class:`_Interrupted` when a signal stopped it (or arrived while the loop was
    being set up: then the command does not start).
    """
    import asyncio  # loaded by now: this runs under asyncio.run
    import contextlib

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    received: list[int] = []

    def stop(signum: int) -> None:
        if not received:
            received.append(signum)
            task.cancel()

    installed: list[int] = []
    # Only possible in the main thread; elsewhere SIGTERM keeps its default.
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGTERM, stop, int(signal.SIGTERM))
        installed.append(signal.SIGTERM)
    # The signal handler runs between two bytecodes of whatever the loop is doing: it
    # only schedules the cancellation, as asyncio's own SIGINT handling does.
    stops.cancel_with(lambda signum: loop.call_soon_threadsafe(stop, signum))
    try:
        if stops.received is not None:
            raise _Interrupted(stops.received)  # held while the loop was set up
        code = await handler(ctx)
        if getattr(ctx.args, "stopped_gracefully", False):
            # `serve`: a stop signal is its normal end; it has saved and says so.
            stops.received = None
        return code
    except asyncio.CancelledError:
        if not received:
            raise
        task.uncancel()
        raise _Interrupted(received[0]) from None
    finally:
        stops.mode = HOLD
        for signum in installed:
            loop.remove_signal_handler(signum)
